/* acl.c — who may publish and subscribe where in their org's tree: the
 * topic's first level says which part of the tree it is, and the shared
 * access layer (aaa_check_data_own) answers for that part. */
#include "mqtt/acl.h"

#include "aaa/access.h"
#include "core/err.h"

#include <stdio.h>
#include <string.h>

static const char share_prefix[] = "$share/";
#define SHARE_PREFIX_LEN (sizeof share_prefix - 1)
static const char devices_me[] = "devices/me";
#define DEVICES_ME_LEN (sizeof devices_me - 1)
static const char devices_level[] = "devices/";
#define DEVICES_LEVEL_LEN (sizeof devices_level - 1)

/* A span of the topic: one level, or the rest of it. */
typedef struct span {
    const char *p;
    size_t len;
} span;

static int span_is(span s, const char *text)
{
    return s.len == strlen(text) && memcmp(s.p, text, s.len) == 0;
}

static int span_wild(span s)
{
    return s.len == 1 && (s.p[0] == '+' || s.p[0] == '#');
}

/* The bytes of "$share/<group>/" at the start of a filter, else 0. */
static size_t share_prefix_len(const char *t, size_t len)
{
    if (len <= SHARE_PREFIX_LEN || memcmp(t, share_prefix, SHARE_PREFIX_LEN) != 0)
        return 0;
    const char *slash = memchr(t + SHARE_PREFIX_LEN, '/', len - SHARE_PREFIX_LEN);
    return slash ? (size_t)(slash - t) + 1 : 0;
}

int mqtt_acl_resolve(const mqtt_who *p, const char *topic, size_t len, char *out,
                     size_t cap, size_t *out_len)
{
    size_t pre = share_prefix_len(topic, len);
    const char *rest = topic + pre;
    size_t rest_len = len - pre;
    int me = p->kind == AAA_PRINCIPAL_DEVICE && rest_len >= DEVICES_ME_LEN &&
             memcmp(rest, devices_me, DEVICES_ME_LEN) == 0 &&
             (rest_len == DEVICES_ME_LEN || rest[DEVICES_ME_LEN] == '/');
    if (!me) {
        if (len + 1 > cap)
            return SS_TOO_LARGE;
        memcpy(out, topic, len);
        out[len] = '\0';
        *out_len = len;
        return SS_OK;
    }
    const char *id = p->id;
    size_t id_len = strlen(id), tail = rest_len - DEVICES_ME_LEN;
    size_t need = pre + DEVICES_LEVEL_LEN + id_len + tail;
    if (need + 1 > cap)
        return SS_TOO_LARGE;
    char *w = out;
    memcpy(w, topic, pre);
    w += pre;
    memcpy(w, devices_level, DEVICES_LEVEL_LEN);
    w += DEVICES_LEVEL_LEN;
    memcpy(w, id, id_len);
    w += id_len;
    memcpy(w, rest + DEVICES_ME_LEN, tail);
    w[tail] = '\0';
    *out_len = need;
    return SS_OK;
}

/* The level starting at p (up to the next '/'), and where the next one
 * starts (NULL when this one is the last). */
static span level_at(const char *p, const char *end, const char **next)
{
    const char *q = memchr(p, '/', (size_t)(end - p));
    *next = q ? q + 1 : NULL;
    return (span){p, (size_t)((q ? q : end) - p)};
}

void mqtt_who_set(mqtt_who *w, const aaa_principal *p)
{
    memset(w, 0, sizeof *w);
    w->kind = p->kind;
    w->scopes = aaa_principal_scopes(p);
    w->superadmin = (uint8_t)aaa_principal_superadmin(p);
    w->disabled = p->kind == AAA_PRINCIPAL_DEVICE && p->device.disabled;
    snprintf(w->id, sizeof w->id, "%s", aaa_principal_id(p));
    snprintf(w->org_id, sizeof w->org_id, "%s", aaa_principal_org(p));
}

/* The access layer's answer, for the principal w stands for (rebuilt:
 * only what a device's, a key's or a person's data check reads). */
static int check_data_own(const mqtt_who *w, const char *org, const char *device_id,
                          aaa_data_op op)
{
    aaa_principal p = {.kind = w->kind};
    switch (w->kind) {
    case AAA_PRINCIPAL_DEVICE:
        aaa_principal_device(&p, w->id, w->org_id, w->disabled);
        break;
    case AAA_PRINCIPAL_KEY:
        snprintf(p.key.id, sizeof p.key.id, "%s", w->id);
        snprintf(p.key.org_id, sizeof p.key.org_id, "%s", w->org_id);
        p.key.scopes = w->scopes;
        break;
    case AAA_PRINCIPAL_PERSON:
        snprintf(p.user.id, sizeof p.user.id, "%s", w->id);
        p.user.superadmin = w->superadmin;
        break;
    default:
        return SS_FORBIDDEN;
    }
    return aaa_check_data_own(&p, org, device_id, op);
}

static aaa_data_op data_op(mqtt_acl_op op)
{
    return op == MQTT_ACL_PUBLISH ? AAA_DATA_WRITE : AAA_DATA_SUBSCRIBE;
}

/* devices/<id>/…: a device under its own id only (a wildcard id could
 * reach another's), a key by its scopes. id.len 0 with id.p NULL: the
 * topic is "devices" alone. */
static int check_devices(const mqtt_who *p, mqtt_acl_op op, span id, int id_wild)
{
    const char *org = p->org_id;
    if (p->kind != AAA_PRINCIPAL_DEVICE)
        return check_data_own(p, org, NULL, data_op(op));
    char own[SS_ID_LEN + 1];
    if (id_wild || !id.p || id.len > SS_ID_LEN)
        return SS_FORBIDDEN;
    memcpy(own, id.p, id.len);
    own[id.len] = '\0';
    return check_data_own(p, org, own, data_op(op));
}

/* readings/<device>: the broker publishes there, nobody else; reading
 * it is reading data. */
static int check_readings(const mqtt_who *p, mqtt_acl_op op)
{
    if (op == MQTT_ACL_PUBLISH)
        return SS_FORBIDDEN;
    return check_data_own(p, p->org_id, NULL, AAA_DATA_READ);
}

/* Anywhere else in the org's tree: keys by their scopes, devices not. */
static int check_elsewhere(const mqtt_who *p, mqtt_acl_op op)
{
    if (p->kind == AAA_PRINCIPAL_DEVICE)
        return SS_FORBIDDEN;
    return check_data_own(p, p->org_id, NULL, data_op(op));
}

/* The verdict on the filter or name f (no "$share/" prefix). */
static int check_plain(const mqtt_who *p, mqtt_acl_op op, const char *f, size_t len)
{
    const char *end = f + len, *next = NULL;
    if (op == MQTT_ACL_PUBLISH && (memchr(f, '+', len) || memchr(f, '#', len)))
        return SS_FORBIDDEN;
    span first = level_at(f, end, &next);
    if (first.len && first.p[0] == '$') {
        /* Broker topics, the broker's to publish and the superadmin's to
         * read; any other '$' topic is the server's (MQTT 5 §4.7.2),
         * nobody's to use. */
        return op == MQTT_ACL_SUBSCRIBE && span_is(first, "$SYS") && p->superadmin ? 0
                                                                                 : SS_FORBIDDEN;
    }
    /* A person (the superadmin: no other signs in) belongs to no org:
     * their tree holds $SYS/… alone. */
    if (p->kind == AAA_PRINCIPAL_PERSON)
        return SS_FORBIDDEN;
    if (span_wild(first)) {
        /* Every part of the tree is within reach: each must be allowed. */
        int rc = check_devices(p, op, (span){NULL, 0}, 1);
        if (rc == 0)
            rc = check_readings(p, op);
        return rc ? rc : check_elsewhere(p, op);
    }
    if (span_is(first, "readings"))
        return check_readings(p, op);
    if (!span_is(first, "devices"))
        return check_elsewhere(p, op);
    if (!next)
        return check_devices(p, op, (span){NULL, 0}, 0);
    span id = level_at(next, end, &next);
    return check_devices(p, op, id, span_wild(id));
}

int mqtt_acl_check(const mqtt_who *p, mqtt_acl_op op, const char *topic, size_t len)
{
    if (len == 0)
        return SS_FORBIDDEN;
    size_t pre = op == MQTT_ACL_SUBSCRIBE ? share_prefix_len(topic, len) : 0;
    if (pre == len)
        return SS_FORBIDDEN;
    /* Refusals of every kind (not in the org, disabled, not allowed) are
     * one answer here: the client learns only that it may not. */
    return check_plain(p, op, topic + pre, len - pre) ? SS_FORBIDDEN : 0;
}

int mqtt_acl_data_topic(const char *topic, size_t len, mqtt_str *device_id, mqtt_str *channel)
{
    const char *end = topic + len, *next = NULL;
    if (len <= DEVICES_LEVEL_LEN || memcmp(topic, devices_level, DEVICES_LEVEL_LEN) != 0)
        return 0;
    span id = level_at(topic + DEVICES_LEVEL_LEN, end, &next);
    if (!id.len || !next)
        return 0;
    span data = level_at(next, end, &next);
    if (!span_is(data, "data"))
        return 0;
    span ch = {NULL, 0};
    if (next) {
        ch = level_at(next, end, &next);
        if (!ch.len || next)
            return 0;
    }
    *device_id = (mqtt_str){id.p, (uint16_t)id.len};
    *channel = (mqtt_str){ch.p, (uint16_t)ch.len};
    return 1;
}
