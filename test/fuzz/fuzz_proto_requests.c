/*
 * libFuzzer target for the server's request decoding: the first byte picks
 * one method of the StemeDB, Admin, Cluster or Health service, the rest is
 * its encoded request. As grpc_call.c does, service/wire_check.c checks
 * every string field and then protobuf-c unpacks the message; whatever
 * unpacks must pack again, and its repacked form must round-trip
 * exactly. Build: scripts/fuzz.sh.
 */
#include "grpc/health/v1/health.pb-c.h"
#include "service/wire_check.h"
#include "stemedb/v1/admin.pb-c.h"
#include "stemedb/v1/cluster.pb-c.h"
#include "stemedb/v1/stemedb.pb-c.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const ProtobufCServiceDescriptor *const services[] = {
    &stemedb__v1__steme_db__descriptor,
    &stemedb__v1__admin__descriptor,
    &stemedb__v1__cluster__descriptor,
    &grpc__health__v1__health__descriptor,
};

/* The request type of method number `pick` over all services. */
static const ProtobufCMessageDescriptor *request_type(unsigned pick) {
  unsigned total = 0;
  for (size_t i = 0; i < sizeof services / sizeof services[0]; i++)
    total += services[i]->n_methods;
  pick %= total;
  for (size_t i = 0; i < sizeof services / sizeof services[0]; i++) {
    if (pick < services[i]->n_methods)
      return services[i]->methods[pick].input;
    pick -= services[i]->n_methods;
  }
  abort();
}

/* Pack m into *buf (caller frees) and unpack it again; NULL if refused. */
static ProtobufCMessage *repack(const ProtobufCMessageDescriptor *desc,
                                const ProtobufCMessage *m, uint8_t **buf) {
  size_t n = protobuf_c_message_get_packed_size(m);
  *buf = malloc(n ? n : 1);
  if (*buf == NULL || protobuf_c_message_pack(m, *buf) != n)
    abort();
  return protobuf_c_message_unpack(desc, NULL, n, *buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0)
    return 0;
  const ProtobufCMessageDescriptor *desc = request_type(data[0]);
  data++, size--;
  struct stm_error err;
  stm_error_clear(&err);
  if (stm_wire_check_strings(desc, data, size, &err) != 0) {
    if (err.message[0] == '\0')
      abort(); /* a refusal names the field */
    return 0;
  }
  ProtobufCMessage *m = protobuf_c_message_unpack(desc, NULL, size, data);
  if (m == NULL)
    return 0;
  uint8_t *buf = NULL;
  ProtobufCMessage *back = repack(desc, m, &buf);
  /* Unknown fields (an over-long tag, field number 0) are kept but re-sent
   * in another form, so only the second round trip must be exact. */
  uint8_t *buf2 = NULL;
  ProtobufCMessage *again = back ? repack(desc, back, &buf2) : NULL;
  if (back && (again == NULL || protobuf_c_message_get_packed_size(again) !=
                                    protobuf_c_message_get_packed_size(back)))
    abort();
  if (again)
    protobuf_c_message_free_unpacked(again, NULL);
  if (back)
    protobuf_c_message_free_unpacked(back, NULL);
  free(buf);
  free(buf2);
  protobuf_c_message_free_unpacked(m, NULL);
  return 0;
}
