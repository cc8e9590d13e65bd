/*
 * index_keys.c - the API key records ('y' keys, index_records.h): every
 * creation and revocation, read whole when the server starts
 * (service/auth.c). Latest state, no read view: a key table is about now.
 */
#include "index_records.h"

#include "index_internal.h"

#include <string.h>

#define KEY_API_KEY 'y'

struct keys_walk {
  stm_store_record_visit_cb cb;
  void *ctx;
  struct stm_error *err;
};

static int on_key_record(void *ctx, const uint8_t *key, size_t klen,
                         const uint8_t *val, size_t vlen) {
  (void)key;
  (void)klen;
  struct keys_walk *w = ctx;
  if (vlen == 0 || !stm_record_kind_is_key(val[0]))
    return stm_error_set(w->err, STM_ECORRUPT, NULL,
                         "index: an API key record has kind %u",
                         vlen ? val[0] : 0);
  struct stm_record rec;
  int rc =
      stm_record_decode((enum stm_record_kind)val[0], val, vlen, &rec, w->err);
  if (rc)
    return rc;
  rc = w->cb(w->ctx, &rec);
  stm_record_destroy(&rec);
  return rc;
}

int stm_index_scan_keys(struct stm_index *idx, stm_store_record_visit_cb cb,
                        void *ctx, struct stm_error *err) {
  uint8_t prefix = KEY_API_KEY;
  struct keys_walk w = {.cb = cb, .ctx = ctx, .err = err};
  struct stm__index_rd r;
  stm__index_rd_begin(&r, idx, true);
  int rc =
      stm__index_iterate(&r, &prefix, 1, &prefix, 1, on_key_record, &w, err);
  stm__index_rd_end(&r);
  return rc;
}
