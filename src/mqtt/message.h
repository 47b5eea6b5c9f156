/* message.h — an application message as the broker keeps it: published
 * once, then shared by every session queue it is delivered to and by the
 * retained store, freed with its last reference.
 *
 * One allocation holds the struct, the topic, the payload and the 5.0
 * properties forwarded to subscribers unchanged (payload format, content
 * type, response topic, correlation data, user properties: MQTT-3.3.2-4,
 * -15, -17, -20); `props` points into it. Message expiry is kept as the
 * interval and the time of publication, so every delivery sends what is
 * left of it (MQTT-3.3.2-6). Loop thread only (the refcount is plain). */
#ifndef SS_MQTT_MESSAGE_H
#define SS_MQTT_MESSAGE_H

#include <stddef.h>
#include <stdint.h>

#include "core/limits.h"
#include "mqtt/codec.h"

typedef struct mqtt_msg {
    uint32_t refs;
    uint64_t id;               /* the store's id once persisted, else 0 */
    uint64_t origin;           /* the publishing session's serial (no-local), 0: none */
    char org_id[SS_ID_LEN + 1];
    uint8_t qos;               /* as published */
    uint8_t retain;            /* as published */
    int64_t published_ms;
    mqtt_props props;          /* forwardable properties only; message_expiry
                                * (has bit) is the interval as published */
    const char *topic;         /* NUL-terminated, topic_len bytes */
    uint16_t topic_len;
    const uint8_t *payload;
    uint32_t payload_len;
} mqtt_msg;

/* Copies topic, payload and the forwardable properties of `props` (may be
 * NULL) into a new message with one reference. NULL when out of memory. */
mqtt_msg *mqtt_msg_new(const char *org_id, const char *topic, size_t topic_len,
                       const uint8_t *payload, size_t payload_len, uint8_t qos, uint8_t retain,
                       const mqtt_props *props, int64_t now_ms);
mqtt_msg *mqtt_msg_ref(mqtt_msg *m);
/* Drops a reference; frees the message with the last. NULL is harmless. */
void mqtt_msg_unref(mqtt_msg *m);

/* 1 once the message's expiry interval has passed (never without one; an
 * interval of 0 is none, as in Mosquitto). */
int mqtt_msg_expired(const mqtt_msg *m, int64_t now_ms);
/* The expiry interval left, in whole seconds (rounded up, at least 1), for
 * a delivery now; 0 when the message has none (then send no expiry
 * property). */
uint32_t mqtt_msg_expiry_left(const mqtt_msg *m, int64_t now_ms);
/* Bytes the message holds: what session queues count against their
 * limits. */
size_t mqtt_msg_size(const mqtt_msg *m);

#endif
