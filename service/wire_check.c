#include "wire_check.h"

#include "common/validate.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define MAX_DEPTH 16
#define MAX_FIELDS 64 /* per message; more fields are not counted per index */

struct cursor {
  const uint8_t *p, *end;
};

static bool read_varint(struct cursor *c, uint64_t *out) {
  uint64_t v = 0;
  for (int shift = 0; shift < 64 && c->p < c->end; shift += 7) {
    uint8_t b = *c->p++;
    v |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) {
      *out = v;
      return true;
    }
  }
  return false;
}

/* Skip a field's payload of wire type wt; false on malformed input. */
static bool skip(struct cursor *c, unsigned wt, const uint8_t **span,
                 size_t *span_len) {
  uint64_t n;
  switch (wt) {
  case 0:
    return read_varint(c, &n);
  case 1:
    n = 8;
    break;
  case 5:
    n = 4;
    break;
  case 2:
    if (!read_varint(c, &n))
      return false;
    break;
  default:
    return false; /* groups are not used by our protos */
  }
  if (n > (uint64_t)(c->end - c->p))
    return false;
  *span = c->p;
  *span_len = (size_t)n;
  c->p += n;
  return true;
}

/* Where a bad string was found: the field at each level (with its index
 * when repeated), so the name is built only when there is an error. */
struct bad {
  const ProtobufCFieldDescriptor *field[MAX_DEPTH + 1];
  size_t index[MAX_DEPTH + 1];
  int depth;   /* levels used */
  size_t at;   /* byte offset of the NUL, or SIZE_MAX: invalid UTF-8 */
  bool field0; /* a field numbered 0 (see check_message) */
};

/* 1 when a string is bad (filled into *b from `depth` down), else 0. */
static int check_message(const ProtobufCMessageDescriptor *desc,
                         const uint8_t *data, size_t len, int depth,
                         struct bad *b) {
  struct cursor c = {data, data + len};
  size_t seen[MAX_FIELDS] = {0};
  while (c.p < c.end) {
    uint64_t key;
    const uint8_t *span = NULL;
    size_t n = 0;
    if (!read_varint(&c, &key) || !skip(&c, (unsigned)(key & 7), &span, &n))
      return 0; /* malformed: the decoder reports it */
    /* Field number 0 is invalid, but protobuf-c accepts it when the tag is
     * over-long (80 00) and keeps it as an unknown field that it writes
     * back as 00 - which it then refuses: a forwarded request would fail on
     * the owner node. Found by test/fuzz/fuzz_proto_requests. */
    if (key >> 3 == 0) {
      b->depth = depth;
      b->field0 = true;
      return 1;
    }
    const ProtobufCFieldDescriptor *f =
        key >> 3 <= UINT32_MAX ? protobuf_c_message_descriptor_get_field(
                                     desc, (unsigned)(key >> 3))
                               : NULL;
    if (f == NULL || (key & 7) != 2)
      continue;
    size_t idx = (size_t)(f - desc->fields);
    size_t index = idx < MAX_FIELDS ? seen[idx]++ : 0;
    b->field[depth] = f;
    b->index[depth] = index;
    if (f->type == PROTOBUF_C_TYPE_MESSAGE && depth < MAX_DEPTH) {
      if (check_message(f->descriptor, span, n, depth + 1, b))
        return 1;
    } else if (f->type == PROTOBUF_C_TYPE_STRING) {
      const uint8_t *nul = memchr(span, 0, n);
      if (nul || !stm_utf8_valid((const char *)span, n)) {
        b->depth = depth + 1;
        b->at = nul ? (size_t)(nul - span) : SIZE_MAX;
        return 1;
      }
    }
  }
  return 0;
}

int stm_wire_check_strings(const ProtobufCMessageDescriptor *desc,
                           const void *data, size_t len,
                           struct stm_error *err) {
  struct bad b = {.depth = 0};
  if (!check_message(desc, data, len, 0, &b))
    return 0;
  char name[256];
  size_t used = 0;
  name[0] = '\0';
  for (int i = 0; i < b.depth && used < sizeof name; i++) {
    const ProtobufCFieldDescriptor *f = b.field[i];
    int w = f->label == PROTOBUF_C_LABEL_REPEATED
                ? snprintf(name + used, sizeof name - used, "%s%s[%zu]",
                           i ? "." : "", f->name, b.index[i])
                : snprintf(name + used, sizeof name - used, "%s%s",
                           i ? "." : "", f->name);
    used += w > 0 ? (size_t)w : 0;
  }
  if (b.field0)
    return stm_error_set(err, STM_EINVAL, name,
                         "%s holds a field numbered 0, which protobuf does "
                         "not allow",
                         name[0] ? name : "the request");
  if (b.at == SIZE_MAX)
    return stm_error_set(err, STM_EINVAL, name, "%s is not valid UTF-8", name);
  return stm_error_set(err, STM_EINVAL, name,
                       "%s contains a NUL byte (at byte %zu); no string "
                       "field may contain NUL",
                       name, b.at);
}
