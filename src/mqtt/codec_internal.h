/* codec_internal.h — what codec.c (packets) and codec_props.c (properties,
 * strings) share: the bounds-checked reader and the two-pass writer.
 * Nothing outside the codec includes it.
 *
 * Reader: every read checks the bytes are there and answers
 * MQTT_RC_MALFORMED_PACKET when they are not, so a field never runs past
 * the remaining length.
 *
 * Writer: the same encoding functions run twice, first with p NULL to
 * count (so mqtt_encoded_size is exact by construction and the output is
 * reserved once), then writing into the reserved room. */
#ifndef SS_MQTT_CODEC_INTERNAL_H
#define SS_MQTT_CODEC_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "mqtt/codec.h"
#include "mqtt/protocol.h"

typedef struct mqtt_rd {
    const uint8_t *p;
    const uint8_t *end;
} mqtt_rd;

typedef struct mqtt_wr {
    uint8_t *p;   /* NULL: count only */
    size_t n;     /* bytes written (or counted) */
} mqtt_wr;

/* Index of the will's property set in the allowed-property table: packet
 * types use 1..15, the will's properties (CONNECT payload) use 0. */
#define MQTT_PROPSET_WILL 0u

static inline size_t mqtt_rd_left(const mqtt_rd *r)
{
    return (size_t)(r->end - r->p);
}

static inline int mqtt_rd_u8(mqtt_rd *r, uint8_t *v)
{
    if (r->p >= r->end)
        return MQTT_RC_MALFORMED_PACKET;
    *v = *r->p++;
    return 0;
}

static inline int mqtt_rd_u16(mqtt_rd *r, uint16_t *v)
{
    if (mqtt_rd_left(r) < 2)
        return MQTT_RC_MALFORMED_PACKET;
    *v = (uint16_t)((r->p[0] << 8) | r->p[1]);
    r->p += 2;
    return 0;
}

static inline int mqtt_rd_u32(mqtt_rd *r, uint32_t *v)
{
    if (mqtt_rd_left(r) < 4)
        return MQTT_RC_MALFORMED_PACKET;
    *v = ((uint32_t)r->p[0] << 24) | ((uint32_t)r->p[1] << 16) | ((uint32_t)r->p[2] << 8) |
         r->p[3];
    r->p += 4;
    return 0;
}

/* A Variable Byte Integer (§1.5.5): at most four bytes, and in the fewest
 * bytes that hold the value (MQTT-1.5.5-1): a longer form is malformed. */
int mqtt_rd_varint(mqtt_rd *r, uint32_t *v);
/* Two-byte length, then that many bytes of UTF-8 (checked) / binary. */
int mqtt_rd_str(mqtt_rd *r, mqtt_str *s);
int mqtt_rd_bin(mqtt_rd *r, mqtt_bin *b);

static inline void mqtt_wr_u8(mqtt_wr *w, uint8_t v)
{
    if (w->p)
        w->p[w->n] = v;
    w->n += 1;
}

static inline void mqtt_wr_u16(mqtt_wr *w, uint16_t v)
{
    if (w->p) {
        w->p[w->n] = (uint8_t)(v >> 8);
        w->p[w->n + 1] = (uint8_t)v;
    }
    w->n += 2;
}

static inline void mqtt_wr_u32(mqtt_wr *w, uint32_t v)
{
    if (w->p) {
        w->p[w->n] = (uint8_t)(v >> 24);
        w->p[w->n + 1] = (uint8_t)(v >> 16);
        w->p[w->n + 2] = (uint8_t)(v >> 8);
        w->p[w->n + 3] = (uint8_t)v;
    }
    w->n += 4;
}

static inline void mqtt_wr_raw(mqtt_wr *w, const void *src, size_t len)
{
    if (w->p && len)
        memcpy(w->p + w->n, src, len);
    w->n += len;
}

static inline void mqtt_wr_str(mqtt_wr *w, const void *src, uint16_t len)
{
    mqtt_wr_u16(w, len);
    mqtt_wr_raw(w, src, len);
}

/* Bytes the Variable Byte Integer of v takes (v <= MQTT_VARINT_MAX). */
static inline size_t mqtt_varint_size(uint32_t v)
{
    return v < 128u ? 1u : v < 16384u ? 2u : v < 2097152u ? 3u : 4u;
}

static inline void mqtt_wr_varint(mqtt_wr *w, uint32_t v)
{
    do {
        uint8_t b = (uint8_t)(v & 127u);
        v >>= 7;
        mqtt_wr_u8(w, v ? (uint8_t)(b | 128u) : b);
    } while (v);
}

/* Parses a property list (no length in front) for the property set `set`
 * (a packet type, or MQTT_PROPSET_WILL) into pr, which the caller zeroed.
 * 0 or a reason code (mqtt_decode's). */
int mqtt_props_parse(mqtt_rd *r, unsigned set, mqtt_props *pr);
/* Reads a Property Length and the list it covers. */
int mqtt_rd_props(mqtt_rd *r, unsigned set, mqtt_props *pr);
/* Writes the properties of pr allowed in `set`, without / with the
 * Property Length in front. */
void mqtt_props_write(mqtt_wr *w, const mqtt_props *pr, unsigned set);
void mqtt_wr_props(mqtt_wr *w, const mqtt_props *pr, unsigned set);
/* Bytes mqtt_props_write would write. */
size_t mqtt_props_size(const mqtt_props *pr, unsigned set);

#endif
