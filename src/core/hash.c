#include "core/hash.h"

#include <string.h>

/* Fibonacci hashing's multiplier: odd, bits well spread. */
#define HASH_MUL 0x9E3779B97F4A7C15ULL

static uint64_t mix(uint64_t h, uint64_t w)
{
    h = (h ^ w) * HASH_MUL;
    return h ^ (h >> 32);
}

uint64_t hash_id(const char *id)
{
    size_t len = strlen(id);
    uint64_t h = mix(0, len);
    uint64_t w;
    for (; len >= sizeof w; id += sizeof w, len -= sizeof w) {
        memcpy(&w, id, sizeof w);
        h = mix(h, w);
    }
    if (len) {
        w = 0;
        memcpy(&w, id, len);
        h = mix(h, w);
    }
    return h ^ (h >> 29);
}
