/* codec.c — MQTT 3.1.1 and 5.0 packets to and from bytes: the fixed
 * header, then each packet's variable header and payload (the properties
 * and strings are codec_props.c's).
 *
 * Decoding is one pass over the packet with no allocation; every rule of
 * packet shape a server must enforce is checked on the way, and the
 * packet must end exactly where its remaining length says. Encoding
 * counts first, reserves once, then writes. */
#include "mqtt/codec.h"

#include "core/err.h"
#include "mqtt/codec_internal.h"

/* ---- reason codes each packet may carry (5.0 §2.4, per packet §3.x.2.1) --- */

static const uint8_t rc_connack[] = {0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86,
                                     0x87, 0x88, 0x89, 0x8A, 0x8C, 0x90, 0x95, 0x97,
                                     0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F};
static const uint8_t rc_puback[] = {0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99};
static const uint8_t rc_pubrel[] = {0x00, 0x92};
static const uint8_t rc_suback[] = {0x00, 0x01, 0x02, 0x80, 0x83, 0x87,
                                    0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2};
static const uint8_t rc_unsuback[] = {0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91};
static const uint8_t rc_disconnect[] = {0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89,
                                        0x8B, 0x8D, 0x8E, 0x8F, 0x90, 0x93, 0x94, 0x95,
                                        0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D,
                                        0x9E, 0x9F, 0xA0, 0xA1, 0xA2};
static const uint8_t rc_auth[] = {0x00, 0x18, 0x19};
/* 3.1.1 SUBACK return codes (MQTT-3.9.3-2). */
static const uint8_t rc_suback_311[] = {0x00, 0x01, 0x02, 0x80};

#define RC_IN(list, rc) (memchr((list), (rc), sizeof(list)) != NULL)

static int reason_check(int ok)
{
    return ok ? 0 : MQTT_RC_PROTOCOL_ERROR;
}

/* ---- fixed header --------------------------------------------------------- */

/* OUT hdr (bytes of the fixed header), rl (the remaining length). */
static int frame_read(const uint8_t *buf, size_t len, size_t *hdr, uint32_t *rl)
{
    uint32_t v = 0;
    for (size_t i = 0; i < 4; i++) {
        if (1 + i >= len)
            return MQTT_DECODE_MORE;
        uint8_t b = buf[1 + i];
        v |= (uint32_t)(b & 127u) << (7 * i);
        if (!(b & 128u)) {
            if (i > 0 && b == 0)
                return MQTT_RC_MALFORMED_PACKET; /* MQTT-1.5.5-1 */
            *hdr = 2 + i;
            *rl = v;
            return 0;
        }
    }
    return MQTT_RC_MALFORMED_PACKET; /* a fifth length byte (§1.5.5) */
}

int mqtt_frame(const uint8_t *buf, size_t len, uint32_t max, size_t *total)
{
    size_t hdr;
    uint32_t rl;
    int rc = frame_read(buf, len, &hdr, &rl);
    if (rc)
        return rc;
    if (hdr + rl > max)
        return MQTT_RC_PACKET_TOO_LARGE;
    *total = hdr + rl;
    return 0;
}

/* The fixed-header flags every type but PUBLISH must carry
 * (MQTT-2.1.3-1, 5.0 §2.1.3). */
static int flags_valid(uint8_t type, uint8_t flags)
{
    if (type == MQTT_PUBLISH)
        return 1;
    if (type == MQTT_PUBREL || type == MQTT_SUBSCRIBE || type == MQTT_UNSUBSCRIBE)
        return flags == 0x02;
    return flags == 0;
}

/* ---- decoding ------------------------------------------------------------- */

static int rd_end(const mqtt_rd *r)
{
    return r->p == r->end ? 0 : MQTT_RC_MALFORMED_PACKET;
}

static int rd_packet_id(mqtt_rd *r, uint16_t *id)
{
    int rc = mqtt_rd_u16(r, id);
    if (!rc && *id == 0)
        rc = MQTT_RC_PROTOCOL_ERROR; /* MQTT-2.3.1-1 */
    return rc;
}

static int has_wildcard(const char *s, size_t len)
{
    return memchr(s, '+', len) != NULL || memchr(s, '#', len) != NULL;
}

/* "MQTT" at level 4 or 5; anything else (3.1's "MQIsdp" at 3, another
 * name or level) is a protocol this server does not speak. */
static int connect_protocol(mqtt_rd *r, mqtt_connect *c)
{
    mqtt_bin name;
    int rc = mqtt_rd_bin(r, &name);
    if (!rc)
        rc = mqtt_rd_u8(r, &c->version);
    if (rc)
        return rc;
    if (name.len != 4 || memcmp(name.p, "MQTT", 4) != 0)
        return MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION;
    if (c->version != MQTT_V311 && c->version != MQTT_V5)
        return MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION;
    return 0;
}

static int connect_flags(uint8_t fl, mqtt_connect *c)
{
    if (fl & MQTT_CONNECT_RESERVED)
        return MQTT_RC_MALFORMED_PACKET; /* MQTT-3.1.2-3 */
    c->clean_start = !!(fl & MQTT_CONNECT_CLEAN_START);
    c->will = !!(fl & MQTT_CONNECT_WILL);
    c->will_qos = (uint8_t)((fl & MQTT_CONNECT_WILL_QOS_MASK) >> MQTT_CONNECT_WILL_QOS_SHIFT);
    c->will_retain = !!(fl & MQTT_CONNECT_WILL_RETAIN);
    c->has_username = !!(fl & MQTT_CONNECT_USERNAME);
    c->has_password = !!(fl & MQTT_CONNECT_PASSWORD);
    if (!c->will && (c->will_qos || c->will_retain))
        return MQTT_RC_MALFORMED_PACKET; /* MQTT-3.1.2-11, -13 */
    if (c->will_qos == 3)
        return MQTT_RC_MALFORMED_PACKET; /* MQTT-3.1.2-14 */
    if (c->version == MQTT_V311 && c->has_password && !c->has_username)
        return MQTT_RC_MALFORMED_PACKET; /* 3.1.1: MQTT-3.1.2-22 */
    return 0;
}

static int connect_will(mqtt_rd *r, mqtt_connect *c)
{
    int rc = 0;
    if (c->version == MQTT_V5)
        rc = mqtt_rd_props(r, MQTT_PROPSET_WILL, &c->will_props);
    if (!rc)
        rc = mqtt_rd_str(r, &c->will_topic);
    if (!rc)
        rc = mqtt_rd_bin(r, &c->will_payload);
    if (rc)
        return rc;
    if (c->will_topic.len == 0 || has_wildcard(c->will_topic.p, c->will_topic.len))
        return MQTT_RC_TOPIC_NAME_INVALID; /* MQTT-3.1.2-9: a topic name */
    return 0;
}

/* A CONNECT is read by its own protocol level, whatever the connection's. */
static int decode_connect(mqtt_rd *r, mqtt_connect *c)
{
    memset(c, 0, sizeof *c);
    uint8_t fl;
    int rc = connect_protocol(r, c);
    if (!rc)
        rc = mqtt_rd_u8(r, &fl);
    if (!rc)
        rc = mqtt_rd_u16(r, &c->keep_alive);
    if (!rc)
        rc = connect_flags(fl, c);
    if (!rc && c->version == MQTT_V5)
        rc = mqtt_rd_props(r, MQTT_CONNECT, &c->props);
    if (!rc)
        rc = mqtt_rd_str(r, &c->client_id);
    if (!rc && c->will)
        rc = connect_will(r, c);
    if (!rc && c->has_username)
        rc = mqtt_rd_str(r, &c->username);
    if (!rc && c->has_password)
        rc = mqtt_rd_bin(r, &c->password);
    return rc ? rc : rd_end(r);
}

static int decode_connack(mqtt_rd *r, uint8_t v, mqtt_connack *a)
{
    memset(a, 0, sizeof *a);
    uint8_t fl;
    int rc = mqtt_rd_u8(r, &fl);
    if (!rc)
        rc = mqtt_rd_u8(r, &a->reason);
    if (rc)
        return rc;
    if (fl & 0xFEu)
        return MQTT_RC_MALFORMED_PACKET; /* MQTT-3.2.2-1: reserved bits */
    a->session_present = fl;
    if (v == MQTT_V5) {
        rc = reason_check(RC_IN(rc_connack, a->reason));
        if (!rc)
            rc = mqtt_rd_props(r, MQTT_CONNACK, &a->props);
    } else {
        rc = reason_check(a->reason <= MQTT_311_NOT_AUTHORIZED);
    }
    if (!rc && a->session_present && a->reason != 0)
        rc = MQTT_RC_PROTOCOL_ERROR; /* MQTT-3.2.2-4 (3.1.1), -6 (5.0) */
    return rc ? rc : rd_end(r);
}

static int publish_topic_check(uint8_t v, const mqtt_publish *m)
{
    if (has_wildcard(m->topic.p, m->topic.len))
        return MQTT_RC_TOPIC_NAME_INVALID; /* MQTT-3.3.2-2 */
    if (m->topic.len > 0)
        return 0;
    if (v != MQTT_V5)
        return MQTT_RC_TOPIC_NAME_INVALID; /* MQTT-4.7.3-1 */
    /* 5.0 §3.3.2.1: an empty topic name needs a topic alias */
    return MQTT_HAS(&m->props, MQTT_PROP_TOPIC_ALIAS) ? 0 : MQTT_RC_PROTOCOL_ERROR;
}

static int decode_publish(mqtt_rd *r, uint8_t v, uint8_t flags, mqtt_publish *m)
{
    memset(m, 0, sizeof *m);
    m->qos = (uint8_t)((flags & MQTT_PUBLISH_QOS_MASK) >> MQTT_PUBLISH_QOS_SHIFT);
    m->retain = !!(flags & MQTT_PUBLISH_RETAIN);
    m->dup = !!(flags & MQTT_PUBLISH_DUP);
    if (m->qos == 3)
        return MQTT_RC_MALFORMED_PACKET; /* MQTT-3.3.1-4 */
    if (m->dup && m->qos == 0)
        return MQTT_RC_MALFORMED_PACKET; /* MQTT-3.3.1-2 */
    int rc = mqtt_rd_str(r, &m->topic);
    if (!rc && m->qos > 0)
        rc = rd_packet_id(r, &m->packet_id);
    if (!rc && v == MQTT_V5)
        rc = mqtt_rd_props(r, MQTT_PUBLISH, &m->props);
    if (!rc)
        rc = publish_topic_check(v, m);
    if (rc)
        return rc;
    m->payload = r->p;
    m->payload_len = mqtt_rd_left(r);
    r->p = r->end;
    return 0;
}

/* PUBACK PUBREC PUBREL PUBCOMP: 5.0 may leave out the reason (success)
 * and the properties (§3.4.2.1). */
static int decode_ack(mqtt_rd *r, uint8_t v, uint8_t type, mqtt_ack *a)
{
    memset(a, 0, sizeof *a);
    int rc = rd_packet_id(r, &a->packet_id);
    if (rc || v != MQTT_V5 || mqtt_rd_left(r) == 0)
        return rc ? rc : rd_end(r);
    rc = mqtt_rd_u8(r, &a->reason);
    if (!rc)
        rc = reason_check(type == MQTT_PUBACK || type == MQTT_PUBREC ? RC_IN(rc_puback, a->reason)
                                                                     : RC_IN(rc_pubrel, a->reason));
    if (!rc && mqtt_rd_left(r) > 0)
        rc = mqtt_rd_props(r, type, &a->props);
    return rc ? rc : rd_end(r);
}

/* 3.1.1: QoS only, the rest reserved (MQTT-3.8.3-4). 5.0 §3.8.3.1:
 * reserved bits (MQTT-3.8.3-5), retain handling 3, no-local on a shared
 * subscription (MQTT-3.8.3-4). QoS 3 is malformed in both. */
static int sub_options_check(uint8_t v, uint8_t opt, const mqtt_bin *filter)
{
    if ((opt & MQTT_SUBOPT_QOS_MASK) == 3)
        return MQTT_RC_MALFORMED_PACKET;
    if (v != MQTT_V5)
        return (opt & ~MQTT_SUBOPT_QOS_MASK) ? MQTT_RC_MALFORMED_PACKET : 0;
    if (opt & MQTT_SUBOPT_RESERVED_MASK)
        return MQTT_RC_MALFORMED_PACKET;
    if ((opt & MQTT_SUBOPT_RETAIN_HANDLING_MASK) == MQTT_SUBOPT_RETAIN_HANDLING_MASK)
        return MQTT_RC_PROTOCOL_ERROR;
    if ((opt & MQTT_SUBOPT_NO_LOCAL) && filter->len >= 7 && memcmp(filter->p, "$share/", 7) == 0)
        return MQTT_RC_PROTOCOL_ERROR;
    return 0;
}

static int filter_read(mqtt_rd *r, uint8_t v, uint8_t type)
{
    mqtt_str f;
    int rc = mqtt_rd_str(r, &f);
    if (rc)
        return rc;
    if (f.len == 0)
        return MQTT_RC_MALFORMED_PACKET; /* MQTT-4.7.3-1 */
    if (type != MQTT_SUBSCRIBE)
        return 0;
    uint8_t opt;
    mqtt_bin fb = {(const uint8_t *)f.p, f.len};
    rc = mqtt_rd_u8(r, &opt);
    return rc ? rc : sub_options_check(v, opt, &fb);
}

static int decode_subscribe(mqtt_rd *r, uint8_t v, uint8_t type, mqtt_subscribe *s)
{
    memset(s, 0, sizeof *s);
    int rc = rd_packet_id(r, &s->packet_id);
    if (!rc && v == MQTT_V5)
        rc = mqtt_rd_props(r, type, &s->props);
    if (rc)
        return rc;
    s->list = r->p;
    s->list_len = mqtt_rd_left(r);
    while (!rc && mqtt_rd_left(r) > 0) {
        rc = filter_read(r, v, type);
        s->count++;
    }
    if (!rc && s->count == 0)
        rc = MQTT_RC_PROTOCOL_ERROR; /* MQTT-3.8.3-3, MQTT-3.10.3-2 */
    return rc;
}

static int suback_reasons_check(uint8_t v, uint8_t type, const uint8_t *p, size_t n)
{
    if (n == 0)
        return MQTT_RC_PROTOCOL_ERROR; /* one per filter, and there is one at least */
    for (size_t i = 0; i < n; i++) {
        int ok = type == MQTT_UNSUBACK ? RC_IN(rc_unsuback, p[i])
                 : v == MQTT_V5        ? RC_IN(rc_suback, p[i])
                                       : RC_IN(rc_suback_311, p[i]);
        if (!ok)
            return MQTT_RC_PROTOCOL_ERROR;
    }
    return 0;
}

/* SUBACK; UNSUBACK (whose 3.1.1 form is the packet id alone). */
static int decode_suback(mqtt_rd *r, uint8_t v, uint8_t type, mqtt_suback *s)
{
    memset(s, 0, sizeof *s);
    int rc = rd_packet_id(r, &s->packet_id);
    if (!rc && v == MQTT_V5)
        rc = mqtt_rd_props(r, type, &s->props);
    if (rc)
        return rc;
    if (type == MQTT_UNSUBACK && v != MQTT_V5)
        return rd_end(r);
    s->reasons = r->p;
    s->count = (uint32_t)mqtt_rd_left(r);
    r->p = r->end;
    return suback_reasons_check(v, type, s->reasons, s->count);
}

/* DISCONNECT and AUTH share a shape: 5.0 may leave out the reason and the
 * properties; 3.1.1's DISCONNECT is empty. */
static int decode_reason_props(mqtt_rd *r, uint8_t v, uint8_t type, uint8_t *reason,
                               mqtt_props *pr)
{
    memset(pr, 0, sizeof *pr);
    *reason = 0;
    if (v != MQTT_V5 || mqtt_rd_left(r) == 0)
        return rd_end(r);
    int rc = mqtt_rd_u8(r, reason);
    if (!rc)
        rc = reason_check(type == MQTT_AUTH ? RC_IN(rc_auth, *reason)
                                            : RC_IN(rc_disconnect, *reason));
    if (!rc && mqtt_rd_left(r) > 0)
        rc = mqtt_rd_props(r, type, pr);
    return rc ? rc : rd_end(r);
}

static int decode_body(mqtt_rd *r, uint8_t v, mqtt_packet *p)
{
    switch (p->type) {
    case MQTT_CONNECT: return decode_connect(r, &p->connect);
    case MQTT_CONNACK: return decode_connack(r, v, &p->connack);
    case MQTT_PUBLISH: return decode_publish(r, v, p->flags, &p->publish);
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBREL:
    case MQTT_PUBCOMP: return decode_ack(r, v, p->type, &p->ack);
    case MQTT_SUBSCRIBE:
    case MQTT_UNSUBSCRIBE: return decode_subscribe(r, v, p->type, &p->subscribe);
    case MQTT_SUBACK:
    case MQTT_UNSUBACK: return decode_suback(r, v, p->type, &p->suback);
    case MQTT_PINGREQ:
    case MQTT_PINGRESP: return rd_end(r);
    case MQTT_DISCONNECT:
        return decode_reason_props(r, v, p->type, &p->disconnect.reason, &p->disconnect.props);
    case MQTT_AUTH:
        if (v != MQTT_V5)
            return MQTT_RC_MALFORMED_PACKET; /* type 15 is reserved in 3.1.1 */
        return decode_reason_props(r, v, p->type, &p->auth.reason, &p->auth.props);
    default: return MQTT_RC_MALFORMED_PACKET; /* type 0 is reserved */
    }
}

int mqtt_decode(const uint8_t *buf, size_t len, uint8_t version, uint32_t max, mqtt_packet *p,
                size_t *used)
{
    size_t hdr;
    uint32_t rl;
    int rc = frame_read(buf, len, &hdr, &rl);
    if (rc)
        return rc;
    if (hdr + rl > max)
        return MQTT_RC_PACKET_TOO_LARGE;
    if (hdr + rl > len)
        return MQTT_DECODE_MORE;
    p->type = buf[0] >> 4;
    p->flags = buf[0] & 0x0Fu;
    if (!flags_valid(p->type, p->flags))
        return MQTT_RC_MALFORMED_PACKET; /* MQTT-2.1.3-1 */
    mqtt_rd r = {buf + hdr, buf + hdr + rl};
    rc = decode_body(&r, version == MQTT_V5 ? MQTT_V5 : MQTT_V311, p);
    if (rc)
        return rc;
    *used = hdr + rl;
    return 0;
}

int mqtt_filter_next(const mqtt_packet *p, size_t *pos, mqtt_str *filter, uint8_t *options)
{
    const mqtt_subscribe *s = &p->subscribe;
    if (*pos >= s->list_len)
        return 0;
    mqtt_rd r = {s->list + *pos, s->list + s->list_len};
    mqtt_bin f;
    uint8_t opt = 0;
    if (mqtt_rd_bin(&r, &f))
        return 0;
    if (p->type == MQTT_SUBSCRIBE && mqtt_rd_u8(&r, &opt))
        return 0;
    filter->p = (const char *)f.p;
    filter->len = f.len;
    *options = opt;
    *pos = (size_t)(r.p - s->list);
    return 1;
}

/* ---- encoding ------------------------------------------------------------- */

static void enc_connect(mqtt_wr *w, const mqtt_connect *c, uint8_t v)
{
    uint8_t fl = (uint8_t)((c->clean_start ? MQTT_CONNECT_CLEAN_START : 0) |
                           (c->has_username ? MQTT_CONNECT_USERNAME : 0) |
                           (c->has_password ? MQTT_CONNECT_PASSWORD : 0));
    if (c->will)
        fl |= (uint8_t)(MQTT_CONNECT_WILL | ((c->will_qos & 3u) << MQTT_CONNECT_WILL_QOS_SHIFT) |
                        (c->will_retain ? MQTT_CONNECT_WILL_RETAIN : 0));
    mqtt_wr_str(w, "MQTT", 4);
    mqtt_wr_u8(w, v);
    mqtt_wr_u8(w, fl);
    mqtt_wr_u16(w, c->keep_alive);
    if (v == MQTT_V5)
        mqtt_wr_props(w, &c->props, MQTT_CONNECT);
    mqtt_wr_str(w, c->client_id.p, c->client_id.len);
    if (c->will) {
        if (v == MQTT_V5)
            mqtt_wr_props(w, &c->will_props, MQTT_PROPSET_WILL);
        mqtt_wr_str(w, c->will_topic.p, c->will_topic.len);
        mqtt_wr_str(w, c->will_payload.p, c->will_payload.len);
    }
    if (c->has_username)
        mqtt_wr_str(w, c->username.p, c->username.len);
    if (c->has_password)
        mqtt_wr_str(w, c->password.p, c->password.len);
}

static void enc_connack(mqtt_wr *w, const mqtt_connack *a, uint8_t v)
{
    mqtt_wr_u8(w, a->session_present ? 1 : 0);
    mqtt_wr_u8(w, a->reason);
    if (v == MQTT_V5)
        mqtt_wr_props(w, &a->props, MQTT_CONNACK);
}

static void enc_publish(mqtt_wr *w, const mqtt_publish *m, uint8_t v)
{
    mqtt_wr_str(w, m->topic.p, m->topic.len);
    if (m->qos > 0)
        mqtt_wr_u16(w, m->packet_id);
    if (v == MQTT_V5)
        mqtt_wr_props(w, &m->props, MQTT_PUBLISH);
    mqtt_wr_raw(w, m->payload, m->payload_len);
}

/* 5.0's short forms (§3.4.2.1, §3.14.2.1, §3.15.2.1): no properties and
 * a success reason are left out, in that order. */
static void enc_reason_props(mqtt_wr *w, uint8_t reason, const mqtt_props *pr, uint8_t type)
{
    size_t n = mqtt_props_size(pr, type);
    if (n == 0 && reason == 0)
        return;
    mqtt_wr_u8(w, reason);
    if (n > 0)
        mqtt_wr_props(w, pr, type);
}

static void enc_ack(mqtt_wr *w, const mqtt_ack *a, uint8_t v, uint8_t type)
{
    mqtt_wr_u16(w, a->packet_id);
    if (v == MQTT_V5)
        enc_reason_props(w, a->reason, &a->props, type);
}

/* The filters are rewritten one by one: 3.1.1 keeps only the QoS bits of
 * each option byte. */
static void enc_subscribe(mqtt_wr *w, const mqtt_packet *p, uint8_t v)
{
    mqtt_wr_u16(w, p->subscribe.packet_id);
    if (v == MQTT_V5)
        mqtt_wr_props(w, &p->subscribe.props, p->type);
    size_t pos = 0;
    mqtt_str f;
    uint8_t opt;
    while (mqtt_filter_next(p, &pos, &f, &opt)) {
        mqtt_wr_str(w, f.p, f.len);
        if (p->type == MQTT_SUBSCRIBE)
            mqtt_wr_u8(w, v == MQTT_V5 ? opt : (uint8_t)(opt & MQTT_SUBOPT_QOS_MASK));
    }
}

/* 3.1.1 has one failure code for SUBACK and no reasons in UNSUBACK. */
static void enc_suback(mqtt_wr *w, const mqtt_suback *s, uint8_t v, uint8_t type)
{
    mqtt_wr_u16(w, s->packet_id);
    if (v == MQTT_V5) {
        mqtt_wr_props(w, &s->props, type);
        mqtt_wr_raw(w, s->reasons, s->count);
        return;
    }
    if (type == MQTT_UNSUBACK)
        return;
    for (uint32_t i = 0; i < s->count; i++)
        mqtt_wr_u8(w, s->reasons[i] >= 0x80 ? MQTT_311_SUBACK_FAILURE : s->reasons[i]);
}

static uint8_t enc_flags(const mqtt_packet *p)
{
    if (p->type == MQTT_PUBREL || p->type == MQTT_SUBSCRIBE || p->type == MQTT_UNSUBSCRIBE)
        return 0x02;
    if (p->type != MQTT_PUBLISH)
        return 0;
    const mqtt_publish *m = &p->publish;
    uint8_t qos = m->qos & 3u;
    return (uint8_t)((m->retain ? MQTT_PUBLISH_RETAIN : 0) | (qos << MQTT_PUBLISH_QOS_SHIFT) |
                     (m->dup && qos ? MQTT_PUBLISH_DUP : 0)); /* MQTT-3.3.1-2 */
}

/* The variable header and payload. SS_INVAL for what `v` cannot carry. */
static int enc_body(mqtt_wr *w, const mqtt_packet *p, uint8_t v)
{
    switch (p->type) {
    case MQTT_CONNECT: enc_connect(w, &p->connect, v); return 0;
    case MQTT_CONNACK: enc_connack(w, &p->connack, v); return 0;
    case MQTT_PUBLISH: enc_publish(w, &p->publish, v); return 0;
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBREL:
    case MQTT_PUBCOMP: enc_ack(w, &p->ack, v, p->type); return 0;
    case MQTT_SUBSCRIBE:
    case MQTT_UNSUBSCRIBE: enc_subscribe(w, p, v); return 0;
    case MQTT_SUBACK:
    case MQTT_UNSUBACK: enc_suback(w, &p->suback, v, p->type); return 0;
    case MQTT_PINGREQ:
    case MQTT_PINGRESP: return 0;
    case MQTT_DISCONNECT:
        if (v == MQTT_V5)
            enc_reason_props(w, p->disconnect.reason, &p->disconnect.props, p->type);
        return 0;
    case MQTT_AUTH:
        if (v != MQTT_V5)
            return SS_INVAL;
        enc_reason_props(w, p->auth.reason, &p->auth.props, p->type);
        return 0;
    default: return SS_INVAL;
    }
}

/* A CONNECT says its own level when the caller gives none. */
static uint8_t enc_version(const mqtt_packet *p, uint8_t version)
{
    if (version == MQTT_V5 || version == MQTT_V311)
        return version;
    if (p->type == MQTT_CONNECT && p->connect.version == MQTT_V5)
        return MQTT_V5;
    return MQTT_V311;
}

size_t mqtt_encoded_size(const mqtt_packet *p, uint8_t version)
{
    mqtt_wr count = {NULL, 0};
    if (enc_body(&count, p, enc_version(p, version)))
        return 0;
    uint32_t rl = count.n > MQTT_VARINT_MAX ? MQTT_VARINT_MAX : (uint32_t)count.n;
    return 1 + mqtt_varint_size(rl) + count.n;
}

int mqtt_encode(const mqtt_packet *p, uint8_t version, ss_buf *out)
{
    uint8_t v = enc_version(p, version);
    mqtt_wr count = {NULL, 0};
    int rc = enc_body(&count, p, v);
    if (rc)
        return rc;
    if (count.n > MQTT_VARINT_MAX)
        return SS_TOO_LARGE;
    size_t total = 1 + mqtt_varint_size((uint32_t)count.n) + count.n;
    if (buf_reserve(out, total))
        return SS_NOMEM;
    mqtt_wr w = {(uint8_t *)out->data + out->len, 0};
    mqtt_wr_u8(&w, (uint8_t)((p->type << 4) | enc_flags(p)));
    mqtt_wr_varint(&w, (uint32_t)count.n);
    enc_body(&w, p, v);
    out->len += w.n;
    out->data[out->len] = '\0';
    return SS_OK;
}
