/* codec.h — MQTT 3.1.1 and 5.0 packets to and from bytes.
 *
 * Decoding is strict and zero-copy: a decoded packet's strings, binary data
 * and payload point into the input buffer, valid while it is. Everything a
 * server must refuse as malformed or as a protocol error is refused here,
 * once, for every caller (the broker, the fuzzer, the tests): a remaining
 * length that is over-long or disagrees with the content, reserved flag
 * bits, strings that are not UTF-8 or hold U+0000 or a UTF-16 surrogate
 * (MQTT-1.5.4-1/2), a property not allowed in the packet or given twice
 * where once is the rule, a PUBLISH topic with a wildcard, QoS 3, a packet
 * id of 0, an empty SUBSCRIBE or UNSUBSCRIBE, … The error is the 5.0
 * reason code the broker answers or disconnects with (MQTT_RC_MALFORMED_
 * PACKET, MQTT_RC_PROTOCOL_ERROR, MQTT_RC_PACKET_TOO_LARGE, MQTT_RC_TOPIC_
 * NAME_INVALID …); a 3.1.1 server closes the connection on any of them.
 *
 * What the codec does not judge is the session's: whether a topic alias
 * is known, a packet id in use, a subscription allowed, a topic filter's
 * wildcards well placed (SUBACK 0x8F per filter, mqtt/topic.h), a
 * client id acceptable. Nor the direction: a PUBLISH's subscription
 * identifiers decode (a client receives them), and the broker refuses an
 * inbound PUBLISH that carries one (MQTT-3.3.4-6, protocol error).
 *
 * Encoding appends one whole packet to an ss_buf. Pure functions, no
 * global state, any thread. */
#ifndef SS_MQTT_CODEC_H
#define SS_MQTT_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "mqtt/protocol.h"

/* SPEC §4: 256 KiB per MQTT packet, both ways (the CONNACK's Maximum
 * Packet Size); the broker may be configured lower, never higher. */
#define MQTT_PACKET_MAX (256u * 1024u)
/* Subscription identifiers one outgoing PUBLISH carries at most (one per
 * matching subscription of the session, MQTT-3.3.4-3): bounded by the
 * subscriptions a client may hold. */
#define MQTT_SUB_IDS_MAX 32u

/* decode's answers besides 0 and the reason codes (which are positive). */
#define MQTT_DECODE_MORE (-1)   /* the packet is not all there yet */

typedef struct mqtt_str {
    const char *p;     /* not NUL-terminated */
    uint16_t len;
} mqtt_str;

typedef struct mqtt_bin {
    const uint8_t *p;
    uint16_t len;
} mqtt_bin;

/* Which properties a packet carried: bit MQTT_PROP_x of `has` (every
 * identifier is below 64). */
#define MQTT_HAS(pr, id) (((pr)->has >> ((id) & 63u)) & 1u)
#define MQTT_SET(pr, id) ((pr)->has |= (uint64_t)1u << ((id) & 63u))

/* The 5.0 properties of one packet (all zero for 3.1.1). */
typedef struct mqtt_props {
    uint64_t has;                  /* bit MQTT_PROP_x set when present */
    uint8_t payload_format;
    uint32_t message_expiry;       /* seconds */
    mqtt_str content_type;
    mqtt_str response_topic;
    mqtt_bin correlation_data;
    uint32_t sub_ids[MQTT_SUB_IDS_MAX];  /* SUBSCRIBE: one; PUBLISH out: up to MQTT_SUB_IDS_MAX */
    uint32_t n_sub_ids;
    uint32_t session_expiry;       /* seconds */
    mqtt_str assigned_client_id;
    uint16_t server_keep_alive;
    mqtt_str auth_method;
    mqtt_bin auth_data;
    uint8_t request_problem_info;
    uint32_t will_delay;           /* seconds */
    uint8_t request_response_info;
    mqtt_str response_info;
    mqtt_str server_reference;
    mqtt_str reason_string;
    uint16_t receive_max;
    uint16_t topic_alias_max;
    uint16_t topic_alias;
    uint8_t max_qos;
    uint8_t retain_available;
    uint32_t max_packet_size;
    uint8_t wildcard_sub_available;
    uint8_t sub_id_available;
    uint8_t shared_sub_available;
    /* User properties, in order, as their encoded bytes (each: 0x26, key,
     * value): passed through unchanged (MQTT-3.3.2-17/18). The span runs
     * from the first user property to the end of the last, whole
     * properties only; others standing between them are stepped over by
     * mqtt_user_prop_next, which reads them one by one. Encoding writes
     * the user properties only. */
    const uint8_t *user;
    uint32_t user_len;
    uint32_t n_user;
} mqtt_props;

typedef struct mqtt_connect {
    uint8_t version;               /* MQTT_V311 or MQTT_V5 */
    uint8_t clean_start;
    uint16_t keep_alive;           /* seconds, 0: none */
    mqtt_props props;
    mqtt_str client_id;            /* may be empty */
    uint8_t will;                  /* a will message follows */
    uint8_t will_qos;
    uint8_t will_retain;
    mqtt_props will_props;
    mqtt_str will_topic;           /* a valid topic name (no wildcards) */
    mqtt_bin will_payload;
    uint8_t has_username;
    mqtt_str username;
    uint8_t has_password;
    mqtt_bin password;
} mqtt_connect;

typedef struct mqtt_connack {
    uint8_t session_present;
    uint8_t reason;                /* 3.1.1 return code or 5.0 reason code */
    mqtt_props props;
} mqtt_connack;

typedef struct mqtt_publish {
    uint8_t qos;
    uint8_t retain;
    uint8_t dup;
    mqtt_str topic;                /* may be empty in 5.0 when a topic alias is given */
    uint16_t packet_id;            /* QoS > 0 only */
    mqtt_props props;
    const uint8_t *payload;
    size_t payload_len;
} mqtt_publish;

/* PUBACK, PUBREC, PUBREL, PUBCOMP. */
typedef struct mqtt_ack {
    uint16_t packet_id;
    uint8_t reason;                /* 5.0; MQTT_RC_SUCCESS when absent */
    mqtt_props props;
} mqtt_ack;

/* SUBSCRIBE and UNSUBSCRIBE: the topic filters stay encoded (all checked
 * by decode) and are read one by one with mqtt_filter_next. */
typedef struct mqtt_subscribe {
    uint16_t packet_id;
    mqtt_props props;
    const uint8_t *list;
    size_t list_len;
    uint32_t count;                /* >= 1 */
} mqtt_subscribe;

/* SUBACK and UNSUBACK: one reason per filter (UNSUBACK's only in 5.0;
 * encoding for 3.1.1 writes any SUBACK failure >= 0x80 as 0x80). */
typedef struct mqtt_suback {
    uint16_t packet_id;
    mqtt_props props;
    const uint8_t *reasons;
    uint32_t count;
} mqtt_suback;

typedef struct mqtt_disconnect {
    uint8_t reason;                /* MQTT_RC_NORMAL_DISCONNECTION when absent */
    mqtt_props props;
} mqtt_disconnect;

typedef struct mqtt_auth {
    uint8_t reason;
    mqtt_props props;
} mqtt_auth;

typedef struct mqtt_packet {
    uint8_t type;                  /* MQTT_CONNECT … MQTT_AUTH */
    uint8_t flags;                 /* the low nibble of the first byte */
    union {
        mqtt_connect connect;
        mqtt_connack connack;
        mqtt_publish publish;
        mqtt_ack ack;              /* PUBACK PUBREC PUBREL PUBCOMP */
        mqtt_subscribe subscribe;  /* SUBSCRIBE UNSUBSCRIBE */
        mqtt_suback suback;        /* SUBACK UNSUBACK */
        mqtt_disconnect disconnect;
        mqtt_auth auth;
    };
} mqtt_packet;

/* The fixed header alone: how long the packet is, before it is all there,
 * so a reader refuses an oversized packet before buffering it.
 * OUT total: header plus remaining length. 0; MQTT_DECODE_MORE (fewer than
 * the header's bytes); MQTT_RC_MALFORMED_PACKET (a length of more than
 * four bytes, MQTT-1.5.5); MQTT_RC_PACKET_TOO_LARGE when total > max. */
int mqtt_frame(const uint8_t *buf, size_t len, uint32_t max, size_t *total);

/* Decodes one packet from the start of buf.
 * IN version: the connection's protocol level, 0 before CONNECT (then the
 * packet's own level is read when it is a CONNECT; any other packet
 * decodes by its fixed header and body as 3.1.1 would, and the caller
 * refuses it). IN max: the largest packet accepted.
 * OUT p, *used (bytes of the whole packet).
 * 0; MQTT_DECODE_MORE; or a 5.0 reason code > 0: MQTT_RC_MALFORMED_PACKET,
 * MQTT_RC_PROTOCOL_ERROR, MQTT_RC_PACKET_TOO_LARGE, MQTT_RC_TOPIC_NAME_
 * INVALID, MQTT_RC_TOPIC_ALIAS_INVALID (alias 0),
 * MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION (a CONNECT of another level or
 * protocol name: answer CONNACK 0x01 / 0x84, then close;
 * p->connect.version holds the level read, 3 for 3.1's "MQIsdp").
 * A CONNECT is always read by its own level. */
int mqtt_decode(const uint8_t *buf, size_t len, uint8_t version, uint32_t max, mqtt_packet *p,
                size_t *used);

/* Reads the next filter of a decoded SUBSCRIBE / UNSUBSCRIBE.
 * IN/OUT *pos (start at 0). OUT filter, options (SUBSCRIBE: the options
 * byte; UNSUBSCRIBE: 0). 1 while there is one, 0 at the end. */
int mqtt_filter_next(const mqtt_packet *p, size_t *pos, mqtt_str *filter, uint8_t *options);

/* Reads the next user property of props: 1 while there is one, 0 at the
 * end. IN/OUT *pos (start at 0). */
int mqtt_user_prop_next(const mqtt_props *props, size_t *pos, mqtt_str *key, mqtt_str *val);

/* The packet's encoded size for `version`, header included: compare with
 * the peer's Maximum Packet Size before sending (MQTT-3.1.2-24). 0 when
 * mqtt_encode would answer SS_INVAL. */
size_t mqtt_encoded_size(const mqtt_packet *p, uint8_t version);

/* Appends the packet encoded for `version` to out (a CONNECT: its own
 * connect.version when `version` is 0). 3.1.1 drops properties and reason
 * codes it has no place for (a PUBACK is 2 bytes of id; a DISCONNECT
 * from the server is not sent: answer nothing and close). A PUBLISH's
 * flags come from qos/retain/dup (DUP never with QoS 0), not p->flags;
 * only the properties allowed in the packet type are written.
 * 0, SS_NOMEM, SS_TOO_LARGE (over MQTT_VARINT_MAX; out unchanged) or
 * SS_INVAL (no such type, or AUTH for 3.1.1). */
int mqtt_encode(const mqtt_packet *p, uint8_t version, ss_buf *out);

/* A property list alone, as it stands in a packet of `type` after its
 * length (the form a message's properties are persisted in): encode
 * appends it without the length, leaving out what `type` does not allow;
 * decode checks each property is allowed in `type`. type 0: a will's
 * properties. 0, SS_NOMEM / a reason code as mqtt_decode. */
int mqtt_props_encode(const mqtt_props *props, uint8_t type, ss_buf *out);
int mqtt_props_decode(const uint8_t *buf, size_t len, uint8_t type, mqtt_props *out);

/* 1 when s is well-formed UTF-8 without U+0000 and U+D800..U+DFFF
 * (MQTT-1.5.4-1, -2): the rule for every string the codec reads. */
int mqtt_utf8_valid(const char *s, size_t len);

#endif
