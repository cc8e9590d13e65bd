/*
 * validate.h - the field rules of DESIGN.md, shared by server and gateway so
 * both give the same answer with the same field name.
 *
 * Every function returns 0 or STM_EINVAL and, on error, fills `err` (may be
 * NULL) with the field name it was given and a sentence saying what is
 * wrong. Strings are (pointer, length); they need not be NUL-terminated.
 */
#ifndef STM_VALIDATE_H
#define STM_VALIDATE_H

#include "error.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STM_MAX_CONCEPT_PATH 512
#define STM_MAX_PATH_SEGMENTS 32
#define STM_MAX_PREDICATE 128
#define STM_MAX_STRING_VALUE 65536
#define STM_MAX_SOURCE_ID 256
#define STM_MAX_REQUEST_BYTES (1024 * 1024)
#define STM_MAX_BATCH 10000

/*
 * The limits the validators and the batch checks apply. The STM_MAX_*
 * above are the defaults; stemedb-server sets its own from --max-*-bytes
 * and --max-batch once at start, before any thread validates (the CLI
 * lifts them: lengths are the server's to judge). `flag` names say which
 * option to change in the error messages.
 */
struct stm_limits {
  uint32_t concept_path; /* bytes; --max-concept-path-bytes */
  uint32_t predicate;    /* bytes; --max-predicate-bytes */
  uint32_t string_value; /* bytes; --max-value-bytes */
  uint32_t source_id;    /* bytes; --max-source-id-bytes */
  uint32_t batch;        /* claims per AssertBatch; --max-batch */
};
/* The ceilings a configured limit may not pass (what the formats carry). */
#define STM_LIMIT_CONCEPT_PATH_CEIL 4096
#define STM_LIMIT_PREDICATE_CEIL 1024
#define STM_LIMIT_STRING_VALUE_CEIL (16 * 1024 * 1024)
#define STM_LIMIT_SOURCE_ID_CEIL 4096
#define STM_LIMIT_BATCH_CEIL 100000

const struct stm_limits *stm_limits_get(void);
/* Not thread-safe: call before starting threads. */
void stm_limits_set(const struct stm_limits *l);

/*
 * prefix + name into buf (cut to size), for the field names the validators
 * report, e.g. "assertions[3]." + "value". Returns buf. Built for every
 * field of every request, so it is a plain copy, not snprintf.
 */
const char *stm_field_name(char *buf, size_t size, const char *prefix,
                           const char *name);
/* array + "[" + i + "]." + name into buf: "assertions[3].value". */
const char *stm_field_name_at(char *buf, size_t size, const char *array,
                              size_t i, const char *name);

/* 1-512 bytes (stm_limits_get), 1-32 '/'-separated segments of [A-Za-z0-9_.-], none empty. */
int stm_validate_concept_path(const char *field, const char *s, size_t len,
                              struct stm_error *err);
/* Like a concept path, but the empty string is allowed (watch prefixes). */
int stm_validate_concept_prefix(const char *field, const char *s, size_t len,
                                struct stm_error *err);
/* 1-128 bytes (stm_limits_get) of [A-Za-z0-9_.:-]. */
int stm_validate_predicate(const char *field, const char *s, size_t len,
                           struct stm_error *err);
/* Valid UTF-8 of at most 64 KiB (stm_limits_get). */
int stm_validate_string_value(const char *field, const char *s, size_t len,
                              struct stm_error *err);
/* A concept path or a 64-hex hash. */
int stm_validate_ref_value(const char *field, const char *s, size_t len,
                           struct stm_error *err);
/* Finite (not NaN, not infinite). */
int stm_validate_number(const char *field, double v, struct stm_error *err);
/* Finite and within [0, 1]. */
int stm_validate_unit_interval(const char *field, double v,
                               struct stm_error *err);
/* Exactly 64 hex characters. Empty is allowed only when `optional`. */
int stm_validate_hash_hex(const char *field, const char *s, size_t len,
                          bool optional, struct stm_error *err);
/* Optional; at most 256 bytes (stm_limits_get) of printable ASCII without spaces. */
int stm_validate_source_id(const char *field, const char *s, size_t len,
                           struct stm_error *err);
/* True when s[0..len) is well-formed UTF-8 (no overlongs, no surrogates). */
bool stm_utf8_valid(const char *s, size_t len);

#endif
