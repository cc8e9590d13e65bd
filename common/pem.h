/*
 * pem.h - reading a PEM file (certificate, key or CA bundle) for TLS
 * settings, shared by the server's listener and the gateway's client
 * credentials.
 */
#ifndef STM_PEM_H
#define STM_PEM_H

#include "common/error.h"

/* Largest PEM file accepted (a CA bundle fits many times over). */
#define STM_PEM_MAX (1024 * 1024)

/*
 * Reads the whole file at `path`, which must look like PEM (contain a
 * "-----BEGIN " line) and be under STM_PEM_MAX bytes. `option` is the flag
 * that named the file ("tls-cert"): errors say "--OPTION: ..." and name it
 * as the field. Returns the NUL-terminated contents (caller owns the
 * result; free with free()), or NULL with `err` set (STM_EINVAL).
 */
char *stm_pem_read(const char *path, const char *option, struct stm_error *err);

#endif
