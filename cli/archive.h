/*
 * archive.h - the backup archive container: a POSIX ustar stream inside one
 * zstd frame with its content checksum on (docs/formats.md, "Backup
 * archive"). `zstd -dc FILE | tar -t` lists it. Members are written and
 * read whole, in order; the writer goes to FILE.partial and renames it to
 * FILE only after the last byte is fsync'd. Single-threaded objects.
 */
#ifndef STM_CLI_ARCHIVE_H
#define STM_CLI_ARCHIVE_H

#include "common/error.h"

#include <stddef.h>
#include <stdint.h>

struct stm_tar_out;
struct stm_tar_in;

/* Create FILE.partial. Returns 0 or STM_EIO/STM_ENOMEM with err. */
int stm_tar_out_open(const char *path, struct stm_tar_out **out,
                     struct stm_error *err);
/* Append one regular-file member (name < 100 bytes). */
int stm_tar_out_add(struct stm_tar_out *t, const char *name, const void *data,
                    size_t len, struct stm_error *err);
/* Finish, fsync, rename to FILE, free. Returns 0 or an error (then the
 * partial file is removed). */
int stm_tar_out_close(struct stm_tar_out *t, struct stm_error *err);
/* Remove the partial file and free. NULL is a no-op. */
void stm_tar_out_abort(struct stm_tar_out *t);

int stm_tar_in_open(const char *path, struct stm_tar_in **out,
                    struct stm_error *err);
/* The same reader over an archive in memory (borrowed until close); label
 * names it in errors. Used by the fuzz target. */
int stm_tar_in_open_mem(const void *data, size_t len, const char *label,
                        struct stm_tar_in **out, struct stm_error *err);
/*
 * The next member: returns 1 and its name and bytes (borrowed; valid until
 * the next call), 0 after the end-of-archive blocks, or a negative code
 * with err saying what is wrong (truncated, zstd checksum, bad header).
 */
int stm_tar_in_next(struct stm_tar_in *t, const char **name,
                    const uint8_t **data, size_t *len, struct stm_error *err);
void stm_tar_in_close(struct stm_tar_in *t);

#endif
