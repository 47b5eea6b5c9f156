/* codec_props.c — the codec's fields: UTF-8 strings, Variable Byte
 * Integers and 5.0 property lists (§2.2.2), read strictly and written
 * back in one canonical order (by identifier, then the subscription
 * identifiers, then the user properties). */
#include "mqtt/codec_internal.h"

#include "core/buf.h"
#include "core/err.h"

/* ---- UTF-8 ---------------------------------------------------------------- */

/* Eight ASCII bytes, none of them 0: the common case of a topic, skipped
 * a word at a time. */
static int utf8_word_plain(const uint8_t *s)
{
    uint64_t w;
    memcpy(&w, s, sizeof w);
    const uint64_t lo = 0x0101010101010101ull, hi = 0x8080808080808080ull;
    return ((w & hi) == 0) && (((w - lo) & ~w & hi) == 0);
}

/* The length of the sequence starting with lead byte c and the smallest
 * code point it may encode (anything below is an overlong form). */
static int utf8_lead(uint8_t c, uint32_t *cp, uint32_t *min)
{
    if (c >= 0xC2 && c <= 0xDF) {
        *cp = c & 0x1Fu;
        *min = 0x80;
        return 2;
    }
    if (c >= 0xE0 && c <= 0xEF) {
        *cp = c & 0x0Fu;
        *min = 0x800;
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        *cp = c & 0x07u;
        *min = 0x10000;
        return 4;
    }
    return 0; /* a continuation byte, 0xC0/0xC1 (always overlong) or > 0xF4 */
}

int mqtt_utf8_valid(const char *str, size_t len)
{
    const uint8_t *s = (const uint8_t *)str;
    size_t i = 0;
    while (i < len) {
        if (len - i >= 8 && utf8_word_plain(s + i)) {
            i += 8;
            continue;
        }
        uint8_t c = s[i];
        if (c < 0x80) {
            if (c == 0)
                return 0; /* MQTT-1.5.4-2 */
            i++;
            continue;
        }
        uint32_t cp, min;
        int n = utf8_lead(c, &cp, &min);
        if (n == 0 || len - i < (size_t)n)
            return 0;
        for (int k = 1; k < n; k++) {
            if ((s[i + k] & 0xC0u) != 0x80u)
                return 0;
            cp = (cp << 6) | (s[i + k] & 0x3Fu);
        }
        /* MQTT-1.5.4-1: overlong forms, UTF-16 surrogates, beyond U+10FFFF */
        if (cp < min || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
            return 0;
        i += (size_t)n;
    }
    return 1;
}

/* ---- fields --------------------------------------------------------------- */

int mqtt_rd_varint(mqtt_rd *r, uint32_t *v)
{
    uint32_t value = 0;
    for (unsigned i = 0; i < 4; i++) {
        uint8_t b;
        if (mqtt_rd_u8(r, &b))
            return MQTT_RC_MALFORMED_PACKET;
        value |= (uint32_t)(b & 127u) << (7 * i);
        if (!(b & 128u)) {
            if (i > 0 && b == 0)
                return MQTT_RC_MALFORMED_PACKET; /* MQTT-1.5.5-1: not the shortest form */
            *v = value;
            return 0;
        }
    }
    return MQTT_RC_MALFORMED_PACKET;
}

int mqtt_rd_bin(mqtt_rd *r, mqtt_bin *b)
{
    uint16_t len;
    if (mqtt_rd_u16(r, &len) || mqtt_rd_left(r) < len)
        return MQTT_RC_MALFORMED_PACKET;
    b->p = r->p;
    b->len = len;
    r->p += len;
    return 0;
}

int mqtt_rd_str(mqtt_rd *r, mqtt_str *s)
{
    mqtt_bin b;
    if (mqtt_rd_bin(r, &b) || !mqtt_utf8_valid((const char *)b.p, b.len))
        return MQTT_RC_MALFORMED_PACKET;
    s->p = (const char *)b.p;
    s->len = b.len;
    return 0;
}

/* ---- the property table --------------------------------------------------- */

typedef enum {
    PK_NONE = 0, /* not a property identifier: malformed */
    PK_BYTE,
    PK_U16,
    PK_U32,
    PK_VARINT,
    PK_STR,
    PK_BIN,
    PK_PAIR,
} prop_kind;

#define IN(t) (1u << (t))
#define WILL IN(MQTT_PROPSET_WILL)
#define ACKS (IN(MQTT_PUBACK) | IN(MQTT_PUBREC) | IN(MQTT_PUBREL) | IN(MQTT_PUBCOMP))
/* Every property set but PINGREQ / PINGRESP, which have none. */
#define ALL                                                                                   \
    (WILL | IN(MQTT_CONNECT) | IN(MQTT_CONNACK) | IN(MQTT_PUBLISH) | ACKS | IN(MQTT_SUBSCRIBE) | \
     IN(MQTT_SUBACK) | IN(MQTT_UNSUBSCRIBE) | IN(MQTT_UNSUBACK) | IN(MQTT_DISCONNECT) |        \
     IN(MQTT_AUTH))

typedef struct prop_rule {
    uint8_t kind;
    uint16_t in; /* bit per property set: where the property may stand (§2.2.2.2) */
} prop_rule;

static const prop_rule prop_rules[64] = {
    [MQTT_PROP_PAYLOAD_FORMAT_INDICATOR] = {PK_BYTE, IN(MQTT_PUBLISH) | WILL},
    [MQTT_PROP_MESSAGE_EXPIRY_INTERVAL] = {PK_U32, IN(MQTT_PUBLISH) | WILL},
    [MQTT_PROP_CONTENT_TYPE] = {PK_STR, IN(MQTT_PUBLISH) | WILL},
    [MQTT_PROP_RESPONSE_TOPIC] = {PK_STR, IN(MQTT_PUBLISH) | WILL},
    [MQTT_PROP_CORRELATION_DATA] = {PK_BIN, IN(MQTT_PUBLISH) | WILL},
    [MQTT_PROP_SUBSCRIPTION_IDENTIFIER] = {PK_VARINT, IN(MQTT_PUBLISH) | IN(MQTT_SUBSCRIBE)},
    [MQTT_PROP_SESSION_EXPIRY_INTERVAL] =
        {PK_U32, IN(MQTT_CONNECT) | IN(MQTT_CONNACK) | IN(MQTT_DISCONNECT)},
    [MQTT_PROP_ASSIGNED_CLIENT_IDENTIFIER] = {PK_STR, IN(MQTT_CONNACK)},
    [MQTT_PROP_SERVER_KEEP_ALIVE] = {PK_U16, IN(MQTT_CONNACK)},
    [MQTT_PROP_AUTHENTICATION_METHOD] = {PK_STR, IN(MQTT_CONNECT) | IN(MQTT_CONNACK) | IN(MQTT_AUTH)},
    [MQTT_PROP_AUTHENTICATION_DATA] = {PK_BIN, IN(MQTT_CONNECT) | IN(MQTT_CONNACK) | IN(MQTT_AUTH)},
    [MQTT_PROP_REQUEST_PROBLEM_INFORMATION] = {PK_BYTE, IN(MQTT_CONNECT)},
    [MQTT_PROP_WILL_DELAY_INTERVAL] = {PK_U32, WILL},
    [MQTT_PROP_REQUEST_RESPONSE_INFORMATION] = {PK_BYTE, IN(MQTT_CONNECT)},
    [MQTT_PROP_RESPONSE_INFORMATION] = {PK_STR, IN(MQTT_CONNACK)},
    [MQTT_PROP_SERVER_REFERENCE] = {PK_STR, IN(MQTT_CONNACK) | IN(MQTT_DISCONNECT)},
    [MQTT_PROP_REASON_STRING] =
        {PK_STR, IN(MQTT_CONNACK) | ACKS | IN(MQTT_SUBACK) | IN(MQTT_UNSUBACK) |
                     IN(MQTT_DISCONNECT) | IN(MQTT_AUTH)},
    [MQTT_PROP_RECEIVE_MAXIMUM] = {PK_U16, IN(MQTT_CONNECT) | IN(MQTT_CONNACK)},
    [MQTT_PROP_TOPIC_ALIAS_MAXIMUM] = {PK_U16, IN(MQTT_CONNECT) | IN(MQTT_CONNACK)},
    [MQTT_PROP_TOPIC_ALIAS] = {PK_U16, IN(MQTT_PUBLISH)},
    [MQTT_PROP_MAXIMUM_QOS] = {PK_BYTE, IN(MQTT_CONNACK)},
    [MQTT_PROP_RETAIN_AVAILABLE] = {PK_BYTE, IN(MQTT_CONNACK)},
    [MQTT_PROP_USER_PROPERTY] = {PK_PAIR, ALL},
    [MQTT_PROP_MAXIMUM_PACKET_SIZE] = {PK_U32, IN(MQTT_CONNECT) | IN(MQTT_CONNACK)},
    [MQTT_PROP_WILDCARD_SUB_AVAILABLE] = {PK_BYTE, IN(MQTT_CONNACK)},
    [MQTT_PROP_SUBSCRIPTION_ID_AVAILABLE] = {PK_BYTE, IN(MQTT_CONNACK)},
    [MQTT_PROP_SHARED_SUB_AVAILABLE] = {PK_BYTE, IN(MQTT_CONNACK)},
};

/* Where each property's value lives in mqtt_props. */
static uint8_t *prop_byte(mqtt_props *pr, unsigned id)
{
    switch (id) {
    case MQTT_PROP_PAYLOAD_FORMAT_INDICATOR: return &pr->payload_format;
    case MQTT_PROP_REQUEST_PROBLEM_INFORMATION: return &pr->request_problem_info;
    case MQTT_PROP_REQUEST_RESPONSE_INFORMATION: return &pr->request_response_info;
    case MQTT_PROP_MAXIMUM_QOS: return &pr->max_qos;
    case MQTT_PROP_RETAIN_AVAILABLE: return &pr->retain_available;
    case MQTT_PROP_WILDCARD_SUB_AVAILABLE: return &pr->wildcard_sub_available;
    case MQTT_PROP_SUBSCRIPTION_ID_AVAILABLE: return &pr->sub_id_available;
    default: return &pr->shared_sub_available;
    }
}

static uint16_t *prop_u16(mqtt_props *pr, unsigned id)
{
    switch (id) {
    case MQTT_PROP_SERVER_KEEP_ALIVE: return &pr->server_keep_alive;
    case MQTT_PROP_RECEIVE_MAXIMUM: return &pr->receive_max;
    case MQTT_PROP_TOPIC_ALIAS_MAXIMUM: return &pr->topic_alias_max;
    default: return &pr->topic_alias;
    }
}

static uint32_t *prop_u32(mqtt_props *pr, unsigned id)
{
    switch (id) {
    case MQTT_PROP_MESSAGE_EXPIRY_INTERVAL: return &pr->message_expiry;
    case MQTT_PROP_SESSION_EXPIRY_INTERVAL: return &pr->session_expiry;
    case MQTT_PROP_WILL_DELAY_INTERVAL: return &pr->will_delay;
    default: return &pr->max_packet_size;
    }
}

static mqtt_str *prop_str(mqtt_props *pr, unsigned id)
{
    switch (id) {
    case MQTT_PROP_CONTENT_TYPE: return &pr->content_type;
    case MQTT_PROP_RESPONSE_TOPIC: return &pr->response_topic;
    case MQTT_PROP_ASSIGNED_CLIENT_IDENTIFIER: return &pr->assigned_client_id;
    case MQTT_PROP_AUTHENTICATION_METHOD: return &pr->auth_method;
    case MQTT_PROP_RESPONSE_INFORMATION: return &pr->response_info;
    case MQTT_PROP_SERVER_REFERENCE: return &pr->server_reference;
    default: return &pr->reason_string;
    }
}

static mqtt_bin *prop_bin(mqtt_props *pr, unsigned id)
{
    return id == MQTT_PROP_CORRELATION_DATA ? &pr->correlation_data : &pr->auth_data;
}

/* ---- reading -------------------------------------------------------------- */

/* Byte values a property may take: every byte property is a 0/1 switch
 * (Maximum QoS too: "0 or 1", 2 is said by leaving it out); anything else
 * is a protocol error (§3.1.2.11, §3.2.2.3, §3.3.2.3.2). */
static int prop_check_byte(uint8_t v)
{
    return v <= 1 ? 0 : MQTT_RC_PROTOCOL_ERROR;
}

static int prop_check_u16(unsigned id, uint16_t v)
{
    if (v != 0)
        return 0;
    if (id == MQTT_PROP_TOPIC_ALIAS)
        return MQTT_RC_TOPIC_ALIAS_INVALID; /* §3.3.2.3.4: 0 is not permitted */
    if (id == MQTT_PROP_RECEIVE_MAXIMUM)
        return MQTT_RC_PROTOCOL_ERROR; /* §3.1.2.11.3, §3.2.2.3.3 */
    return 0;
}

/* A Response Topic is a topic name: not empty, no wildcards
 * (MQTT-3.3.2-14). */
static int prop_check_str(unsigned id, const mqtt_str *s)
{
    if (id != MQTT_PROP_RESPONSE_TOPIC)
        return 0;
    if (s->len == 0 || memchr(s->p, '+', s->len) || memchr(s->p, '#', s->len))
        return MQTT_RC_PROTOCOL_ERROR;
    return 0;
}

static int prop_read_user(mqtt_rd *r, const uint8_t *start, mqtt_props *pr)
{
    mqtt_str k, v;
    int rc = mqtt_rd_str(r, &k);
    if (!rc)
        rc = mqtt_rd_str(r, &v);
    if (rc)
        return rc;
    if (pr->n_user == 0)
        pr->user = start;
    pr->user_len = (uint32_t)(r->p - pr->user);
    pr->n_user++;
    MQTT_SET(pr, MQTT_PROP_USER_PROPERTY);
    return 0;
}

/* Subscription identifiers: 1..268 435 455 (§3.8.2.1.2); one in a
 * SUBSCRIBE, one per matching subscription in a PUBLISH. */
static int prop_read_sub_id(mqtt_rd *r, unsigned set, mqtt_props *pr)
{
    uint32_t v;
    int rc = mqtt_rd_varint(r, &v);
    if (rc)
        return rc;
    if (v == 0)
        return MQTT_RC_PROTOCOL_ERROR;
    if (pr->n_sub_ids > 0 && set != MQTT_PUBLISH)
        return MQTT_RC_PROTOCOL_ERROR;
    if (pr->n_sub_ids >= MQTT_SUB_IDS_MAX)
        return MQTT_RC_PROTOCOL_ERROR;
    pr->sub_ids[pr->n_sub_ids++] = v;
    MQTT_SET(pr, MQTT_PROP_SUBSCRIPTION_IDENTIFIER);
    return 0;
}

static int prop_read_value(mqtt_rd *r, unsigned id, unsigned kind, mqtt_props *pr)
{
    int rc;
    switch (kind) {
    case PK_BYTE: {
        uint8_t *v = prop_byte(pr, id);
        rc = mqtt_rd_u8(r, v);
        return rc ? rc : prop_check_byte(*v);
    }
    case PK_U16: {
        uint16_t *v = prop_u16(pr, id);
        rc = mqtt_rd_u16(r, v);
        return rc ? rc : prop_check_u16(id, *v);
    }
    case PK_U32: {
        uint32_t *v = prop_u32(pr, id);
        rc = mqtt_rd_u32(r, v);
        if (!rc && id == MQTT_PROP_MAXIMUM_PACKET_SIZE && *v == 0)
            rc = MQTT_RC_PROTOCOL_ERROR; /* §3.1.2.11.4 */
        return rc;
    }
    case PK_STR: {
        mqtt_str *s = prop_str(pr, id);
        rc = mqtt_rd_str(r, s);
        return rc ? rc : prop_check_str(id, s);
    }
    default:
        return mqtt_rd_bin(r, prop_bin(pr, id));
    }
}

int mqtt_props_parse(mqtt_rd *r, unsigned set, mqtt_props *pr)
{
    while (r->p < r->end) {
        const uint8_t *start = r->p;
        uint32_t id;
        int rc = mqtt_rd_varint(r, &id);
        if (rc)
            return rc;
        if (id >= 64 || prop_rules[id].kind == PK_NONE)
            return MQTT_RC_MALFORMED_PACKET;
        if (!(prop_rules[id].in & IN(set)))
            return MQTT_RC_PROTOCOL_ERROR;
        if (id == MQTT_PROP_USER_PROPERTY)
            rc = prop_read_user(r, start, pr);
        else if (id == MQTT_PROP_SUBSCRIPTION_IDENTIFIER)
            rc = prop_read_sub_id(r, set, pr);
        else if (MQTT_HAS(pr, id))
            rc = MQTT_RC_PROTOCOL_ERROR; /* a single property given twice */
        else {
            rc = prop_read_value(r, id, prop_rules[id].kind, pr);
            MQTT_SET(pr, id);
        }
        if (rc)
            return rc;
    }
    /* §3.1.2.11.10, §3.15.2.2.3: no data without a method */
    if (MQTT_HAS(pr, MQTT_PROP_AUTHENTICATION_DATA) && !MQTT_HAS(pr, MQTT_PROP_AUTHENTICATION_METHOD))
        return MQTT_RC_PROTOCOL_ERROR;
    return 0;
}

int mqtt_rd_props(mqtt_rd *r, unsigned set, mqtt_props *pr)
{
    uint32_t len;
    int rc = mqtt_rd_varint(r, &len);
    if (rc)
        return rc;
    if (len > mqtt_rd_left(r))
        return MQTT_RC_MALFORMED_PACKET;
    mqtt_rd sub = {r->p, r->p + len};
    r->p += len;
    return mqtt_props_parse(&sub, set, pr);
}

int mqtt_props_decode(const uint8_t *buf, size_t len, uint8_t type, mqtt_props *out)
{
    memset(out, 0, sizeof *out);
    if (type > MQTT_AUTH)
        return MQTT_RC_PROTOCOL_ERROR;
    if (len == 0)
        return 0; /* (buf may be NULL) */
    mqtt_rd r = {buf, buf + len};
    return mqtt_props_parse(&r, type, out);
}

int mqtt_user_prop_next(const mqtt_props *props, size_t *pos, mqtt_str *key, mqtt_str *val)
{
    /* The span [user, user + user_len) is whole, already checked
     * properties; others between two user properties are stepped over. */
    if (!props->user || *pos >= props->user_len)
        return 0;
    mqtt_rd r = {props->user + *pos, props->user + props->user_len};
    while (r.p < r.end) {
        uint32_t id;
        if (mqtt_rd_varint(&r, &id) || id >= 64 || prop_rules[id].kind == PK_NONE)
            return 0;
        if (id == MQTT_PROP_USER_PROPERTY) {
            if (mqtt_rd_str(&r, key) || mqtt_rd_str(&r, val))
                return 0;
            *pos = (size_t)(r.p - props->user);
            return 1;
        }
        mqtt_props skip = {0};
        uint32_t v;
        int rc = prop_rules[id].kind == PK_VARINT
                     ? mqtt_rd_varint(&r, &v)
                     : prop_read_value(&r, id, prop_rules[id].kind, &skip);
        if (rc == MQTT_RC_MALFORMED_PACKET)
            return 0;
    }
    return 0;
}

/* ---- writing -------------------------------------------------------------- */

static void prop_write_one(mqtt_wr *w, const mqtt_props *pr, unsigned id)
{
    mqtt_props *m = (mqtt_props *)pr; /* the accessors only read here */
    mqtt_wr_u8(w, (uint8_t)id);
    switch (prop_rules[id].kind) {
    case PK_BYTE: mqtt_wr_u8(w, *prop_byte(m, id)); break;
    case PK_U16: mqtt_wr_u16(w, *prop_u16(m, id)); break;
    case PK_U32: mqtt_wr_u32(w, *prop_u32(m, id)); break;
    case PK_STR: {
        const mqtt_str *s = prop_str(m, id);
        mqtt_wr_str(w, s->p, s->len);
        break;
    }
    default: {
        const mqtt_bin *b = prop_bin(m, id);
        mqtt_wr_str(w, b->p, b->len);
        break;
    }
    }
}

static void prop_write_users(mqtt_wr *w, const mqtt_props *pr)
{
    size_t pos = 0;
    mqtt_str k, v;
    while (mqtt_user_prop_next(pr, &pos, &k, &v)) {
        mqtt_wr_u8(w, MQTT_PROP_USER_PROPERTY);
        mqtt_wr_str(w, k.p, k.len);
        mqtt_wr_str(w, v.p, v.len);
    }
}

void mqtt_props_write(mqtt_wr *w, const mqtt_props *pr, unsigned set)
{
    /* The set bits of `has`, lowest first: identifier order, and only as
     * many steps as properties given (a PUBLISH has one or two). */
    uint64_t rest = pr->has & ~(((uint64_t)1 << MQTT_PROP_SUBSCRIPTION_IDENTIFIER) |
                                ((uint64_t)1 << MQTT_PROP_USER_PROPERTY));
    while (rest) {
        unsigned id = (unsigned)__builtin_ctzll(rest);
        rest &= rest - 1;
        if (prop_rules[id].kind != PK_NONE && (prop_rules[id].in & IN(set)))
            prop_write_one(w, pr, id);
    }
    if (prop_rules[MQTT_PROP_SUBSCRIPTION_IDENTIFIER].in & IN(set)) {
        uint32_t n = pr->n_sub_ids;
        if (n > MQTT_SUB_IDS_MAX)
            n = MQTT_SUB_IDS_MAX;
        if (set != MQTT_PUBLISH && n > 1)
            n = 1;
        for (uint32_t i = 0; i < n; i++) {
            if (pr->sub_ids[i] == 0 || pr->sub_ids[i] > MQTT_VARINT_MAX)
                continue; /* not a subscription identifier: nothing to say */
            mqtt_wr_u8(w, MQTT_PROP_SUBSCRIPTION_IDENTIFIER);
            mqtt_wr_varint(w, pr->sub_ids[i]);
        }
    }
    if (pr->user_len)
        prop_write_users(w, pr);
}

size_t mqtt_props_size(const mqtt_props *pr, unsigned set)
{
    mqtt_wr count = {NULL, 0};
    mqtt_props_write(&count, pr, set);
    return count.n;
}

void mqtt_wr_props(mqtt_wr *w, const mqtt_props *pr, unsigned set)
{
    size_t n = mqtt_props_size(pr, set);
    mqtt_wr_varint(w, (uint32_t)(n > MQTT_VARINT_MAX ? MQTT_VARINT_MAX : n));
    if (!w->p) {
        w->n += n;
        return;
    }
    mqtt_props_write(w, pr, set);
}

int mqtt_props_encode(const mqtt_props *props, uint8_t type, ss_buf *out)
{
    if (type > MQTT_AUTH)
        return SS_INVAL;
    size_t n = mqtt_props_size(props, type);
    if (buf_reserve(out, n))
        return SS_NOMEM;
    mqtt_wr w = {(uint8_t *)out->data + out->len, 0};
    mqtt_props_write(&w, props, type);
    out->len += w.n;
    out->data[out->len] = '\0';
    return SS_OK;
}
