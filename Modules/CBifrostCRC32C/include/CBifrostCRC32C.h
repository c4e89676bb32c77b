// CRC-32C in hardware, for BifrostStorage's `CRC32C`: the x86-64 SSE4.2 `crc32` instruction, or the Armv8 CRC
// extension. The Swift side keeps its software path (slicing-by-8) for processors that have neither.
#ifndef BIFROST_CRC32C_H
#define BIFROST_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/// 1 when this processor computes CRC-32C in hardware (checked with `cpuid` on x86-64), 0 otherwise.
int bifrost_crc32c_hardware_available(void);

/// Feeds `count` bytes at `data` into the running (already inverted) CRC-32C `state` and returns the new state.
/// Only call it when `bifrost_crc32c_hardware_available()` is 1: elsewhere it returns `state` unchanged.
uint32_t bifrost_crc32c_hardware_update(uint32_t state, const void *data, size_t count);

#endif
