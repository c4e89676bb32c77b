#include "CBifrostCRC32C.h"

#include <string.h>

#if defined(__x86_64__)
#include <cpuid.h>

int bifrost_crc32c_hardware_available(void) {
    unsigned int eax = 0, ebx = 0, ecx = 0, edx = 0;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return 0;
    return (ecx & bit_SSE4_2) != 0;
}

__attribute__((target("sse4.2"))) uint32_t bifrost_crc32c_hardware_update(uint32_t state, const void *data,
                                                                          size_t count) {
    const unsigned char *bytes = (const unsigned char *)data;
    uint64_t crc = state;
    while (count >= 8) {
        uint64_t word;
        memcpy(&word, bytes, 8);  // unaligned load
        crc = __builtin_ia32_crc32di(crc, word);
        bytes += 8;
        count -= 8;
    }
    uint32_t low = (uint32_t)crc;
    while (count > 0) {
        low = __builtin_ia32_crc32qi(low, *bytes);
        bytes += 1;
        count -= 1;
    }
    return low;
}

#elif defined(__aarch64__) && defined(__ARM_FEATURE_CRC32)
#include <arm_acle.h>

int bifrost_crc32c_hardware_available(void) { return 1; }

uint32_t bifrost_crc32c_hardware_update(uint32_t state, const void *data, size_t count) {
    const unsigned char *bytes = (const unsigned char *)data;
    uint32_t crc = state;
    while (count >= 8) {
        uint64_t word;
        memcpy(&word, bytes, 8);
        crc = __crc32cd(crc, word);
        bytes += 8;
        count -= 8;
    }
    while (count > 0) {
        crc = __crc32cb(crc, *bytes);
        bytes += 1;
        count -= 1;
    }
    return crc;
}

#else

int bifrost_crc32c_hardware_available(void) { return 0; }

uint32_t bifrost_crc32c_hardware_update(uint32_t state, const void *data, size_t count) {
    (void)data;
    (void)count;
    return state;
}

#endif
