/* api_acct.c — accounting of HTTP(S): each answered request's bytes on the
 * socket, API requests and readings go to the meter under the principal the
 * handler noted (api_note_who). A device's or an app's record spans the
 * requests it makes on one keep-alive connection; a person's spans their
 * login session.
 *
 * It also owns the rest of a connection's state across requests, kept in
 * req->conn_data and freed at close: who its request in flight is from,
 * the quota ref of its last message and its entry in the connection
 * registry (so a revocation closes it). */
#include "http/api.h"

#include <stdlib.h>
#include <string.h>

typedef struct api_conn_acct {
    api_req_acct req;       /* the request in flight; empty between requests */
    meter_session device;   /* the device this connection carried last */
    meter_session apikey;   /* the API key this connection carried last */
    quota_ref quota;        /* the org its last message was reserved in */
    conn_reg_entry reg;     /* under the principal of its last request */
    meter_session **held;   /* api_conn_hold_record's slot, or NULL */
    int watched;            /* reg was added (the registry may have dropped it since) */
} api_conn_acct;

/* The connection's state, made on first use; NULL when out of memory. */
static api_conn_acct *conn_acct(http_request *req)
{
    if (!req->conn_data)
        req->conn_data = calloc(1, sizeof(api_conn_acct));
    return req->conn_data;
}

void api_conn_open(http_request *req)
{
    conn_acct(req);
}

/* Copies an id (cut to SS_ID_LEN): on every ingest request, so no printf. */
static void copy_id(char dst[SS_ID_LEN + 1], const char *src)
{
    size_t n = strnlen(src, SS_ID_LEN);
    memcpy(dst, src, n);
    dst[n] = '\0';
}

api_req_acct *api_note_who(http_request *req, api_who_kind kind, const char *id,
                           const char *org_id)
{
    copy_id(req->principal_id, id);
    api_conn_acct *a = req->conn_data;
    if (!a)
        return NULL;
    a->req.kind = kind;
    copy_id(a->req.id, id);
    copy_id(a->req.org_id, org_id);
    return &a->req;
}

quota_ref *api_conn_quota_ref(http_request *req)
{
    api_conn_acct *a = conn_acct(req);
    return a ? &a->quota : NULL;
}

/* The record of this principal on this connection: the open one when it is
 * the same principal, else a new one (the previous ends). */
static meter_session *conn_record(meter *m, meter_session *slot, const char *kind,
                                  const api_req_acct *p, const char *protocol,
                                  const char *peer)
{
    if (slot->open && strcmp(slot->rec.principal_id, p->id) == 0)
        return slot;
    meter_session_end(m, slot, "closed");
    meter_session_open(m, slot, kind, p->id, p->org_id, protocol, peer);
    return slot;
}

meter_session *api_conn_device_record(api_ctx *app, http_request *req)
{
    api_conn_acct *a = app->meter ? conn_acct(req) : NULL;
    if (!a)
        return NULL;
    return conn_record(app->meter, &a->device, "device", &a->req,
                       req->tls ? "https" : "http", req->peer);
}

void api_conn_hold_record(http_request *req, meter_session **slot)
{
    api_conn_acct *a = slot ? conn_acct(req) : req->conn_data;
    if (a)
        a->held = slot;
    else if (slot)
        *slot = NULL;
}

static meter_session *record_for(meter *m, http_request *req, api_conn_acct *a,
                                 const char *protocol, int closing)
{
    const api_req_acct *p = &a->req;
    /* The bytes of a closing connection belong to no new person record. */
    if (p->kind == API_WHO_PERSON && closing)
        return NULL;
    if (p->kind == API_WHO_PERSON)
        return meter_user_session(m, p->login_id, p->id, p->org_id, protocol, req->peer);
    if (p->kind == API_WHO_DEVICE)
        return conn_record(m, &a->device, "device", p, protocol, req->peer);
    if (p->kind == API_WHO_APIKEY)
        return conn_record(m, &a->apikey, "apikey", p, protocol, req->peer);
    return NULL;
}

/* The record still open on this connection (its device's, else its app's):
 * where the bytes of its closing (a TLS close_notify, the last ACKs) go,
 * since no request carries a principal then. */
static meter_session *conn_open_record(api_conn_acct *a)
{
    if (a->device.open)
        return &a->device;
    if (a->apikey.open)
        return &a->apikey;
    return NULL;
}

/* A device's message was counted by the ingest gateway, stored or
 * refused, into the same record. */
static void count_request(meter *m, meter_session *s, const api_req_acct *p, const char *org,
                          const char *protocol)
{
    if (p->kind != API_WHO_NONE && p->kind != API_WHO_DEVICE)
        meter_api_request(m, s, org, protocol);
}

/* Records of login sessions the request ended (a session deleted by id, a
 * password changed, a user disabled or its password reset) end now, not
 * at their idle timeout. */
static void end_other_logins(meter *m, const api_req_acct *p)
{
    if (p->ended_login[0])
        meter_user_end(m, p->ended_login, "revoked");
    if (p->ended_user[0])
        meter_user_end_all(m, p->ended_user, p->ended_user_keeps_own ? p->login_id : NULL,
                           "revoked");
}

static void account(meter *m, http_request *req, api_conn_acct *a, uint64_t bytes_in,
                    uint64_t bytes_out, int closing)
{
    const char *protocol = req->tls ? "https" : "http";
    const api_req_acct *p = &a->req;
    meter_session *s = record_for(m, req, a, protocol, closing);
    if (!s && closing)
        s = conn_open_record(a);
    const char *org = p->org_id[0] ? p->org_id : s ? s->rec.org_id : "";
    meter_bytes(m, s, org, protocol, bytes_in, bytes_out);
    if (!closing)
        count_request(m, s, p, org, protocol);
    if (p->kind == API_WHO_PERSON && p->session_ended && !closing)
        meter_user_end(m, p->login_id, "closed");
    if (p->kind == API_WHO_PERSON && !closing)
        end_other_logins(m, p);
    if (closing) {
        meter_session_end(m, &a->device, "closed");
        meter_session_end(m, &a->apikey, "closed");
    }
}

static void on_principal_revoked(conn_reg_entry *e)
{
    http_request_close(e->data);
}

/* Registers the connection under the principal of its last request, so a
 * revocation (device token rotated, device disabled or deleted, key
 * revoked, user disabled) closes it at once, as it does a TCP connection;
 * each later request is refused anyway. */
static void conn_watch(api_ctx *app, http_request *req, api_conn_acct *a)
{
    const api_req_acct *p = &a->req;
    const char *id = p->via_key[0] ? p->via_key : p->id;
    if (!app->conns || p->kind == API_WHO_NONE || !id[0])
        return;
    if (a->watched && strcmp(a->reg.principal, id) == 0)
        return;
    conn_registry_remove(app->conns, &a->reg);
    a->reg.on_revoked = on_principal_revoked;
    a->reg.data = req;
    conn_registry_add(app->conns, &a->reg, id);
    a->watched = 1;
}

void api_account(void *ctx, http_request *req, uint64_t bytes_in, uint64_t bytes_out,
                 int closing)
{
    api_ctx *app = ctx;
    api_conn_acct *a = req->conn_data;
    /* None: the connection never reached the API (the transport refused
     * its first request) or memory ran out; its bytes are no one's. */
    if (!a)
        return;
    if (!closing)
        conn_watch(app, req, a);
    if (app->meter)
        account(app->meter, req, a, bytes_in, bytes_out, closing);
    if (!closing) {
        memset(&a->req, 0, sizeof a->req);  /* the next request is no one's yet */
        return;
    }
    if (a->held)
        *a->held = NULL;
    if (app->conns)
        conn_registry_remove(app->conns, &a->reg);
    free(a);
    req->conn_data = NULL;
}
