/* message.c — the refcounted application message: one allocation for the
 * struct, the topic, the payload and the forwarded properties. */
#include "mqtt/message.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The properties a subscriber receives as published (MQTT-3.3.2-4, -15,
 * -17, -20); the rest (topic alias, subscription ids) are per delivery. */
static const uint64_t forwarded =
    (uint64_t)1u << MQTT_PROP_PAYLOAD_FORMAT_INDICATOR |
    (uint64_t)1u << MQTT_PROP_MESSAGE_EXPIRY_INTERVAL | (uint64_t)1u << MQTT_PROP_CONTENT_TYPE |
    (uint64_t)1u << MQTT_PROP_RESPONSE_TOPIC | (uint64_t)1u << MQTT_PROP_CORRELATION_DATA |
    (uint64_t)1u << MQTT_PROP_USER_PROPERTY;

/* Bytes of the properties' variable parts. */
static size_t props_bytes(const mqtt_props *p)
{
    if (!p)
        return 0;
    return (size_t)p->content_type.len + p->response_topic.len + p->correlation_data.len +
           p->user_len;
}

static size_t msg_bytes(size_t topic_len, size_t payload_len, const mqtt_props *props)
{
    return sizeof(mqtt_msg) + topic_len + 1 + payload_len + props_bytes(props);
}

static uint8_t *put(uint8_t *at, const void *src, size_t n)
{
    if (n)
        memcpy(at, src, n);
    return at + n;
}

/* Copies the forwarded properties, their bytes placed from `at` on. */
static void copy_props(mqtt_props *dst, const mqtt_props *src, uint8_t *at)
{
    dst->has = src->has & forwarded;
    dst->payload_format = src->payload_format;
    dst->message_expiry = src->message_expiry;
    /* Like Mosquitto: an interval of 0 sets no expiry at all. */
    if (dst->message_expiry == 0)
        dst->has &= ~((uint64_t)1u << MQTT_PROP_MESSAGE_EXPIRY_INTERVAL);
    dst->content_type = (mqtt_str){(const char *)at, src->content_type.len};
    at = put(at, src->content_type.p, src->content_type.len);
    dst->response_topic = (mqtt_str){(const char *)at, src->response_topic.len};
    at = put(at, src->response_topic.p, src->response_topic.len);
    dst->correlation_data = (mqtt_bin){at, src->correlation_data.len};
    at = put(at, src->correlation_data.p, src->correlation_data.len);
    dst->user = src->user_len ? at : NULL;
    dst->user_len = src->user_len;
    dst->n_user = src->n_user;
    put(at, src->user, src->user_len);
}

mqtt_msg *mqtt_msg_new(const char *org_id, const char *topic, size_t topic_len,
                       const uint8_t *payload, size_t payload_len, uint8_t qos, uint8_t retain,
                       const mqtt_props *props, int64_t now_ms)
{
    if (topic_len > UINT16_MAX || payload_len > UINT32_MAX)
        return NULL;
    mqtt_msg *m = calloc(1, msg_bytes(topic_len, payload_len, props));
    if (!m)
        return NULL;
    uint8_t *at = (uint8_t *)(m + 1);
    m->refs = 1;
    snprintf(m->org_id, sizeof m->org_id, "%s", org_id);
    m->qos = qos;
    m->retain = retain;
    m->published_ms = now_ms;
    m->topic = (const char *)at;
    m->topic_len = (uint16_t)topic_len;
    at = put(at, topic, topic_len);
    *at++ = '\0';
    m->payload = at;
    m->payload_len = (uint32_t)payload_len;
    at = put(at, payload, payload_len);
    if (props)
        copy_props(&m->props, props, at);
    return m;
}

mqtt_msg *mqtt_msg_ref(mqtt_msg *m)
{
    m->refs++;
    return m;
}

void mqtt_msg_unref(mqtt_msg *m)
{
    if (m && --m->refs == 0)
        free(m);
}

/* The time the message expires at, or INT64_MAX without an expiry. */
static int64_t expires_at(const mqtt_msg *m)
{
    if (!MQTT_HAS(&m->props, MQTT_PROP_MESSAGE_EXPIRY_INTERVAL))
        return INT64_MAX;
    return m->published_ms + (int64_t)m->props.message_expiry * 1000;
}

int mqtt_msg_expired(const mqtt_msg *m, int64_t now_ms)
{
    return now_ms >= expires_at(m);
}

uint32_t mqtt_msg_expiry_left(const mqtt_msg *m, int64_t now_ms)
{
    int64_t at = expires_at(m);
    if (at == INT64_MAX)
        return 0;
    /* At least 1: a message with an expiry never goes out as one without. */
    int64_t left_s = (at - now_ms + 999) / 1000;
    return left_s < 1 ? 1u : (uint32_t)left_s;
}

size_t mqtt_msg_size(const mqtt_msg *m)
{
    return msg_bytes(m->topic_len, m->payload_len, &m->props);
}
