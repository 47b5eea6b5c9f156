/* connect.c — CONNECT (SPEC §3.6): the checks before the credentials, the
 * sign-in (auth.c), the will in the client's own tree, the session
 * attached, the limits granted and CONNACK with them. A refused sign-in
 * from an address that keeps failing is answered late (the login
 * throttle), a right one never. */
#include "mqtt/conn_internal.h"

#include "aaa/secret.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"
#include "mqtt/acl.h"

#include <inttypes.h>
#include <string.h>

/* A 5.0 CONNACK reason as 3.1.1 says it. */
static uint8_t connack_311(uint8_t r)
{
    switch (r) {
    case MQTT_RC_SUCCESS: return MQTT_311_ACCEPTED;
    case MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION: return MQTT_311_BAD_PROTOCOL_VERSION;
    case MQTT_RC_CLIENTID_NOT_VALID: return MQTT_311_IDENTIFIER_REJECTED;
    case MQTT_RC_BAD_USERNAME_OR_PASSWORD: return MQTT_311_BAD_USERNAME_PASSWORD;
    case MQTT_RC_SERVER_UNAVAILABLE:
    case MQTT_RC_SERVER_BUSY:
    case MQTT_RC_QUOTA_EXCEEDED:
    case MQTT_RC_UNSPECIFIED: return MQTT_311_SERVER_UNAVAILABLE;
    default: return MQTT_311_NOT_AUTHORIZED;
    }
}

void mqtt_connect_refuse(mqtt_conn *c, uint8_t reason, const char *why)
{
    log_info(CONN_LOG, "refused a connection from %s: %s", mqtt_conn_peer(c), why);
    mqtt_packet p = {.type = MQTT_CONNACK};
    p.connack.reason = c->version == MQTT_V5 ? reason : connack_311(reason);
    mqtt_conn_queue(c, &p);
    mqtt_conn_close_after_write(c);
}

/* Checks of CONNECT before its credentials. 0 or the reason to refuse. */
static uint8_t connect_check(const mqtt_connect *cn)
{
    if (cn->version == MQTT_V5 && MQTT_HAS(&cn->props, MQTT_PROP_AUTHENTICATION_METHOD))
        return MQTT_RC_BAD_AUTHENTICATION_METHOD;
    if (cn->client_id.len > MQTT_CLIENT_ID_MAX)
        return MQTT_RC_CLIENTID_NOT_VALID;
    /* MQTT-3.1.3-8: 3.1.1 assigns an id only to a clean session. */
    if (cn->client_id.len == 0 && cn->version == MQTT_V311 && !cn->clean_start)
        return MQTT_RC_CLIENTID_NOT_VALID;
    return 0;
}

/* The will, resolved in the client's tree and allowed by its ACL. */
static uint8_t connect_will(mqtt_conn *c, const mqtt_connect *cn, mqtt_msg **out)
{
    *out = NULL;
    if (!cn->will)
        return 0;
    char topic[MQTT_ACL_TOPIC_CAP];
    size_t len = 0;
    uint8_t r = mqtt_publish_resolve(c, &cn->will_topic, topic, &len);
    if (r)
        return r;
    *out = mqtt_msg_new(mqtt_conn_org(c), topic, len, cn->will_payload.p, cn->will_payload.len,
                        cn->will_qos, cn->will_retain, &cn->will_props, clock_now_ms());
    return *out ? 0 : MQTT_RC_SERVER_UNAVAILABLE;
}

/* What the client asked for, within our limits. OUT *ka_changed: the
 * keep-alive granted differs (5.0 Server Keep Alive). */
static void connect_options(mqtt_conn *c, const mqtt_connect *cn, int *ka_changed)
{
    const mqtt_props *pr = &cn->props;
    c->receive_max_out = MQTT_HAS(pr, MQTT_PROP_RECEIVE_MAXIMUM) ? pr->receive_max : UINT16_MAX;
    c->request_problem_info =
        MQTT_HAS(pr, MQTT_PROP_REQUEST_PROBLEM_INFORMATION) ? pr->request_problem_info : 1;
    c->topic_alias_max_in = cn->version == MQTT_V5 ? SS_MQTT_TOPIC_ALIASES_MAX : 0;
    c->keep_alive_s = cn->keep_alive;
    *ka_changed = 0;
    if (cn->version == MQTT_V5 &&
        (cn->keep_alive == 0 || cn->keep_alive > SS_MQTT_KEEP_ALIVE_MAX_S)) {
        c->keep_alive_s = SS_MQTT_KEEP_ALIVE_MAX_S;
        *ka_changed = 1;
    }
    uint32_t want = cn->clean_start ? 0 : UINT32_MAX;
    if (cn->version == MQTT_V5)
        want = MQTT_HAS(pr, MQTT_PROP_SESSION_EXPIRY_INTERVAL) ? pr->session_expiry : 0;
    c->expiry_s = want > SS_MQTT_SESSION_EXPIRY_MAX_S ? SS_MQTT_SESSION_EXPIRY_MAX_S : want;
}

static void conn_send_connack(mqtt_conn *c, int present, const char *assigned, int ka_changed,
                              int expiry_capped)
{
    mqtt_packet p = {.type = MQTT_CONNACK};
    p.connack.session_present = (uint8_t)present;
    mqtt_props *pr = &p.connack.props;
    pr->receive_max = SS_MQTT_RECEIVE_MAX;
    pr->max_packet_size = MQTT_PACKET_MAX;
    pr->topic_alias_max = SS_MQTT_TOPIC_ALIASES_MAX;
    pr->retain_available = pr->wildcard_sub_available = 1;
    pr->sub_id_available = pr->shared_sub_available = 1;
    MQTT_SET(pr, MQTT_PROP_RECEIVE_MAXIMUM);
    MQTT_SET(pr, MQTT_PROP_MAXIMUM_PACKET_SIZE);
    MQTT_SET(pr, MQTT_PROP_TOPIC_ALIAS_MAXIMUM);
    MQTT_SET(pr, MQTT_PROP_RETAIN_AVAILABLE);
    MQTT_SET(pr, MQTT_PROP_WILDCARD_SUB_AVAILABLE);
    MQTT_SET(pr, MQTT_PROP_SUBSCRIPTION_ID_AVAILABLE);
    MQTT_SET(pr, MQTT_PROP_SHARED_SUB_AVAILABLE);
    if (ka_changed) {
        pr->server_keep_alive = c->keep_alive_s;
        MQTT_SET(pr, MQTT_PROP_SERVER_KEEP_ALIVE);
    }
    if (expiry_capped) {
        pr->session_expiry = c->expiry_s;
        MQTT_SET(pr, MQTT_PROP_SESSION_EXPIRY_INTERVAL);
    }
    if (assigned) {
        pr->assigned_client_id = (mqtt_str){assigned, (uint16_t)strlen(assigned)};
        MQTT_SET(pr, MQTT_PROP_ASSIGNED_CLIENT_IDENTIFIER);
    }
    if (mqtt_conn_queue(c, &p) != SS_TOO_LARGE)
        return;
    /* The client's Maximum Packet Size is smaller than our CONNACK: what
     * it must know stays (the assigned id, the expiry and keep-alive we
     * changed), the announcements of our limits go. */
    pr->has &= (uint64_t)1u << MQTT_PROP_ASSIGNED_CLIENT_IDENTIFIER |
               (uint64_t)1u << MQTT_PROP_SESSION_EXPIRY_INTERVAL |
               (uint64_t)1u << MQTT_PROP_SERVER_KEEP_ALIVE;
    if (mqtt_conn_queue(c, &p) == SS_TOO_LARGE)
        mqtt_conn_close_now(c, "error");
}

/* The principal's kind as session records name it. */
static const char *conn_kind(const mqtt_conn *c)
{
    switch (c->who.kind) {
    case AAA_PRINCIPAL_DEVICE: return "device";
    case AAA_PRINCIPAL_PERSON: return "user";
    default: return "apikey";
    }
}

/* Signed in: registered for revocation, a session record opened, and a
 * device's readings accounted to it. */
static void conn_register(mqtt_conn *c)
{
    mqtt_broker *b = c->broker;
    const char *id = c->who.id;
    conn_registry_add(b->opt.conns, &c->reg, id);
    if (!b->opt.meter)
        return;
    /* The record holds the address (mqtt_conn_peer): opening clears it. */
    char peer[sizeof c->acct.rec.addr];
    memcpy(peer, c->acct.rec.addr, sizeof peer);
    meter_session_open(b->opt.meter, &c->acct, conn_kind(c), id, mqtt_conn_org(c), mqtt_conn_protocol(c),
                       peer);
    /* The record's bytes start with the CONNECT that opened it. */
    c->acct_in = 0;
    c->acct_out = c->base.stream.bytes_out;
}

/* Attaches the session and answers CONNACK. */
static void conn_open_session(mqtt_conn *c, const mqtt_connect *cn, mqtt_msg *will)
{
    char assigned[SS_ID_LEN + 1];
    const char *id = cn->client_id.p;
    size_t id_len = cn->client_id.len;
    if (id_len == 0) {
        secret_new_id(assigned);
        id = assigned;
        id_len = SS_ID_LEN;
    }
    int ka_changed = 0, present = 0;
    connect_options(c, cn, &ka_changed);
    int capped = cn->version == MQTT_V5 && MQTT_HAS(&cn->props, MQTT_PROP_SESSION_EXPIRY_INTERVAL) &&
                 cn->props.session_expiry > c->expiry_s;
    int rc = mqtt_session_attach(c, id, id_len, cn->clean_start, c->expiry_s, &present);
    if (rc != SS_OK) {
        mqtt_msg_unref(will);
        if (rc == SS_QUOTA)
            mqtt_connect_refuse(c, MQTT_RC_QUOTA_EXCEEDED, "its principal holds as many stored sessions as it may");
        else
            mqtt_connect_refuse(c, MQTT_RC_SERVER_BUSY, "no room for its session");
        return;
    }
    conn_register(c);
    if (will)
        mqtt_session_set_will(c, will, cn->will_props.will_delay);
    conn_send_connack(c, present, id == assigned ? assigned : NULL, ka_changed, capped);
    c->state = MQTT_CONN_ACTIVE;
    mqtt_conn_arm_keep_alive(c);
    log_debug(CONN_LOG, "%s %s connected from %s over %s", conn_kind(c), c->who.id,
              mqtt_conn_peer(c), mqtt_conn_protocol(c));
    /* The superadmin's $SYS subscriptions get current retained values. */
    if (c->who.kind == AAA_PRINCIPAL_PERSON)
        mqtt_sys_publish(c->broker);
    mqtt_deliver_resume(c);
}

/* A refused sign-in from an address that keeps failing: the CONNACK
 * goes out after `ms` (on_timer), nothing is read meanwhile. */
static void conn_refuse_later(mqtt_conn *c, uint64_t ms)
{
    log_info(CONN_LOG, "refused a connection from %s: not a device token, API key or superadmin "
             "of ours (answered in %" PRIu64 " ms: its address keeps failing)", mqtt_conn_peer(c), ms);
    c->state = MQTT_CONN_CLOSING;
    c->disconnect_reason = MQTT_RC_NOT_AUTHORIZED;
    mqtt_conn_timer(c, ms);
}

/* The credentials were checked (status as mqtt_auth_start's). */
static void conn_signed_in(mqtt_conn *c, const mqtt_connect *cn, int status)
{
    if (status == SS_AUTH) {
        uint64_t delay = mqtt_auth_failed(c, cn);
        if (delay > 0)
            conn_refuse_later(c, delay);
        else
            mqtt_connect_refuse(c, MQTT_RC_NOT_AUTHORIZED,
                                "not a device token, API key or superadmin of ours");
        return;
    }
    if (status == SS_BUSY) {
        mqtt_connect_refuse(c, MQTT_RC_SERVER_BUSY, "as many sign-ins are being checked as may be");
        return;
    }
    if (status != SS_OK) {
        mqtt_connect_refuse(c, MQTT_RC_SERVER_UNAVAILABLE, ss_strerror(status));
        return;
    }
    mqtt_msg *will = NULL;
    uint8_t r = connect_will(c, cn, &will);
    if (r) {
        mqtt_connect_refuse(c, r, "its will's topic is not its own");
        return;
    }
    conn_open_session(c, cn, will);
}

static void on_auth_done(mqtt_conn *c, int status)
{
    if (mqtt_conn_ended(c)) {
        net_conn_release(&c->base);
        return;
    }
    /* The CONNECT waited in c->in, unread: decode it again. */
    mqtt_packet p;
    size_t used = 0;
    c->state = MQTT_CONN_NEW;
    if (mqtt_decode((const uint8_t *)c->in.data, c->in.len, 0, MQTT_PACKET_MAX, &p, &used) !=
        SS_OK) {
        mqtt_conn_close_now(c, "error");
        return;
    }
    conn_signed_in(c, &p.connect, status);
    if (mqtt_conn_ended(c))
        return;
    buf_consume(&c->in, used);
    mqtt_conn_continue(c);
}

/* The first packet. Returns 1 when it stays in the input (an API key is
 * being checked), else 0. */
int mqtt_connect_in(mqtt_conn *c, const mqtt_packet *p)
{
    if (p->type != MQTT_CONNECT) {
        log_info(CONN_LOG, "%s sent a packet before CONNECT; closing", mqtt_conn_peer(c));
        mqtt_conn_close_now(c, "error");
        return 0;
    }
    const mqtt_connect *cn = &p->connect;
    c->version = cn->version;
    /* A refusal's CONNACK too stays within the client's maximum: it goes
     * without its reason string rather than past it (MQTT-3.2.2-19). */
    c->max_packet_out = MQTT_HAS(&cn->props, MQTT_PROP_MAXIMUM_PACKET_SIZE)
                            ? cn->props.max_packet_size
                            : UINT32_MAX;
    uint8_t r = connect_check(cn);
    if (r) {
        mqtt_connect_refuse(c, r, "its CONNECT asks for what we do not do");
        return 0;
    }
    int rc = mqtt_auth_start(c, cn, on_auth_done);
    if (rc == MQTT_AUTH_LATER) {
        c->state = MQTT_CONN_AUTHENTICATING;
        return 1;
    }
    conn_signed_in(c, cn, rc);
    return 0;
}

void mqtt_connect_refused_due(mqtt_conn *c)
{
    mqtt_packet p = {.type = MQTT_CONNACK};
    p.connack.reason = c->version == MQTT_V5 ? c->disconnect_reason
                                             : connack_311(c->disconnect_reason);
    mqtt_conn_queue(c, &p);
    mqtt_conn_close_after_write(c);
}
