/*
 * crc32c.h - CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the
 * checksum of WAL segment headers and records.
 *
 * Test vector: stm_crc32c("123456789", 9) == 0xE3069283.
 *
 * The implementation picks SSE4.2's crc32 instruction when the CPU has it
 * and otherwise a slicing-by-8 table. The choice and the tables are made
 * once per process (pthread_once) and are read-only afterwards: the only
 * global state of this module. All functions are thread-safe.
 */
#ifndef STM_CRC32C_H
#define STM_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* CRC-32C of (data, len). */
uint32_t stm_crc32c(const void *data, size_t len);

/*
 * Continue a CRC: stm_crc32c_extend(stm_crc32c(a, n), b, m) equals the CRC
 * of a followed by b. Start with crc = 0.
 */
uint32_t stm_crc32c_extend(uint32_t crc, const void *data, size_t len);

/* The portable table-driven path, always available (tests compare both). */
uint32_t stm__crc32c_extend_sw(uint32_t crc, const void *data, size_t len);
/* True when stm_crc32c uses the SSE4.2 instruction on this CPU. */
int stm__crc32c_hw_available(void);

#endif
