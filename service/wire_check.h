/*
 * wire_check.h - checks every string field of an encoded request before
 * protobuf-c decodes it.
 *
 * protobuf-c hands string fields to C as NUL-terminated copies without
 * checking their content, so a string with an embedded NUL would reach the
 * handlers cut at the NUL ("p\0zzz" read as "p") and be stored as less than
 * the client sent. One rule therefore holds for EVERY string field of every
 * request, whatever its handler checks later: no NUL byte, and valid UTF-8
 * (proto3 requires it). Other control characters are left to the field's
 * own rule (identifiers have character sets; free text such as string
 * values, epoch reasons and source names keeps tabs and newlines).
 * A field numbered 0 (invalid protobuf that protobuf-c lets through when
 * its tag is over-long) is refused too.
 */
#ifndef STM_WIRE_CHECK_H
#define STM_WIRE_CHECK_H

#include "common/error.h"

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>

/*
 * Walk the protobuf wire bytes data[0..len) as message `desc` (recursing
 * into sub-messages) and check each string field. Returns 0, or STM_EINVAL
 * with err naming the field as the handlers do ("predicate",
 * "assertions[3].predicate", "source.name"; for a field 0, the message
 * holding it, "" at the top). Malformed wire data returns 0:
 * the decoder that runs next rejects it with its own message.
 */
int stm_wire_check_strings(const ProtobufCMessageDescriptor *desc,
                           const void *data, size_t len, struct stm_error *err);

#endif
