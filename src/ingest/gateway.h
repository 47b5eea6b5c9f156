/* gateway.h — the one way readings come in, whatever the protocol.
 *
 * A protocol frames bytes and acknowledges; everything between is here,
 * once: who sends (a device token, or an API key with data:write acting as
 * one of its org's devices), parsing, the room and quota checks, the
 * submit to the ingest queue, and, when the commit is done, the settling
 * of quota, meter (usage and the session record) and metrics (readings
 * stored and refused: the queue counts only its own depth and commits)
 * before the protocol's acknowledgement runs with a result it maps to its
 * own terms (an HTTP status, a TCP "ACK n" or "ERR ...", nothing for UDP).
 *
 * Every refusal is counted here too, as the message it refuses: one
 * refused message in the metrics and in the sender's usage, carrying the
 * readings it held (0 when it could not be read). Bytes on the wire stay
 * the protocol's to count: only it sees them.
 *
 * Loop thread only. */
#ifndef SS_INGEST_GATEWAY_H
#define SS_INGEST_GATEWAY_H

#include <stddef.h>
#include <stdint.h>

#include "aaa/device_cache.h"
#include "aaa/meter.h"
#include "aaa/quota.h"
#include "core/metrics.h"
#include "ingest/parse.h"
#include "ingest/queue.h"

typedef struct gateway gateway;

typedef struct gateway_options {
    ingest_queue *queue;      /* required */
    device_cache *devices;    /* required: tokens and device ids are looked up here */
    quota *quotas;            /* optional: per-org limits and the org tree (without
                               * it a key writes in its own org only) */
    meter *meter;             /* optional: usage and session records */
    metrics *metrics;         /* optional: refusals */
} gateway_options;

/* 0 or SS_NOMEM. The options' parts must outlive the gateway. */
int gateway_new(const gateway_options *opt, gateway **out);
void gateway_free(gateway *gw);

/* ---- who sends -------------------------------------------------------------- */

/* The device a message comes from, once authenticated, and where its
 * accounting goes. The protocol keeps it for as long as the sender lasts
 * (a request, a connection, a datagram). */
typedef struct gateway_sender {
    device_cache_entry dev;
    const char *protocol;     /* "http", "https", "tcp", "udp": a static string */
    /* The sender's session record (opened by the protocol), or NULL: then
     * refusals count in the org's usage alone. */
    meter_session *session;
    /* Where the sender keeps its org's quota ref between messages, or
     * NULL (each message looks the org up). */
    quota_ref *quota;
    /* The reason a message of this sender counts under when its device was
     * deleted while the message waited (SS_NOT_FOUND at commit): the one the
     * protocol's answer names (HTTP's 401 invalid_token, TCP's 503
     * store_unavailable). */
    metrics_reason gone;
} gateway_sender;

/* A device token. SS_AUTH (counted as a refusal) when empty, too long,
 * unknown or the device disabled; else 0 and out->dev filled. */
int gateway_auth_token(gateway *gw, const char *token, size_t len, gateway_sender *out);

/* An API key already authenticated by its protocol: the org it belongs to
 * and its scopes (STORE_SCOPE_* bits). */
typedef struct gateway_key {
    char org_id[SS_ID_LEN + 1];
    unsigned scopes;
} gateway_key;

/* The key acting as the device `device_id` of its org or an org below it
 * (aaa_key_may_write, on the quotas' org tree). SS_NOT_FOUND when no such
 * device is in the key's tree (a device of another org is not found
 * either: nothing about it is revealed); SS_FORBIDDEN when the key lacks
 * data:write; SS_CONFLICT when the device is disabled. 0: out->dev
 * filled. */
int gateway_auth_key(gateway *gw, const gateway_key *key, const char *device_id,
                     gateway_sender *out);

/* ---- one message -------------------------------------------------------------- */

typedef enum {
    GATEWAY_JSON,     /* SPEC §3.1, the whole body */
    GATEWAY_LINES,    /* SPEC §3.2, the whole body */
    GATEWAY_LINE,     /* one line of SPEC §3.2 (no terminator), appended: TCP */
    GATEWAY_VALUE     /* a bare number for `channel` */
} gateway_format;

typedef struct gateway_body {
    gateway_format format;
    const char *data;
    size_t len;
    const char *channel;      /* GATEWAY_VALUE only */
    size_t channel_len;
} gateway_body;

/* Parses into out (appended; left as it was on failure). JSON and lines
 * take at most SS_INGEST_READINGS_MAX readings. On failure the message is
 * counted as refused (SS_TOO_LARGE: too_large; SS_NOMEM: store
 * unavailable; else a bad reading) and err says why (parse.h). */
int gateway_parse(gateway *gw, const gateway_sender *from, const gateway_body *body,
                  int64_t now_ms, ss_readings *out, ss_parse_error *err);

typedef struct gateway_msg gateway_msg;

/* What became of a submitted message. */
typedef struct gateway_result {
    /* SS_OK: committed (some groups may have been refused for the channel
     * limit: `refused` > 0); SS_NOT_FOUND: the device was deleted
     * meanwhile; SS_FULL, SS_STORE, SS_NOMEM: the store refused it whole. */
    int status;
    size_t stored;            /* readings stored */
    size_t refused;           /* readings refused */
} gateway_result;

/* The protocol's acknowledgement: runs on the loop after the settling.
 * A message the protocol submitted (gateway_submit) is its own again from
 * this call on; one gateway_ingest made is freed when the call returns. */
typedef void (*gateway_ack_cb)(gateway_msg *msg, const gateway_result *r);

/* Embedded in the protocol's own record of a message (first, or found
 * back by offset). The protocol fills item.readings (gateway_parse),
 * optionally item.group_ends/group_refused/n_groups and item.held_bytes,
 * and `ack`/`data`; gateway_submit fills the rest. */
struct gateway_msg {
    ingest_item item;
    gateway_ack_cb ack;
    void *data;               /* the protocol's */
    /* The record the commit is counted into: the sender's session, which
     * the protocol sets to NULL when the record goes away before the ack
     * (an HTTP connection closed while its request was in flight). */
    meter_session *session;
    /* Private to the gateway. */
    gateway *gw;
    quota_ref quota;
    store_acct_session snapshot;
    metrics_reason gone;
    int owned;                /* made by gateway_ingest: freed after the ack */
    /* Set by the protocol: its readings are part of a reservation it made
     * (gateway_reserve), so gateway_submit reserves nothing and a refused
     * submit gives nothing back; the commit settles them as any other. */
    int prepaid;
};

/* ---- the one entry point ------------------------------------------------------ */

/* One message as its protocol framed it. */
typedef struct gateway_request {
    gateway_body body;
    gateway_ack_cb ack;
    void *data;               /* the protocol's: msg->data in the ack */
    /* Memory the protocol holds for the message until the ack beyond the
     * gateway's own (an HTTP body): counted against the queue's shares. */
    size_t held_bytes;
} gateway_request;

/* Why gateway_ingest refused a message. */
typedef struct gateway_refusal {
    ss_parse_error err;       /* SS_PARSE, SS_TOO_LARGE: where and why */
    size_t readings;          /* the readings it held: 0 when refused before parse */
    /* 0 only for SS_NOMEM before parse (no room for the message's
     * record): not the sender's data refused, so counted nowhere unless
     * the protocol chooses to. Every other refusal is counted. */
    int counted;
} gateway_refusal;

/* Admits, parses, reserves and submits one message: what every protocol
 * that hands over whole messages calls (HTTP, UDP, MQTT). 0: *out is the
 * message in flight; `ack` runs once it is committed or refused by the
 * store, and the gateway frees it when the ack returns. Else refused,
 * nothing in flight, and counted (see gateway_refusal.counted): SS_BUSY
 * (the queue has no room for the sender now), SS_QUOTA, SS_PARSE,
 * SS_TOO_LARGE, SS_NOMEM; `why` says more. */
int gateway_ingest(gateway *gw, const gateway_sender *from, const gateway_request *rq,
                   int64_t now_ms, gateway_msg **out, gateway_refusal *why);

/* ---- the steps, for a protocol that batches (TCP) ------------------------------ */

/* Reserves the message's readings against its org's quotas and hands it
 * to the ingest queue. Returns 0: `ack` will run once it is committed or
 * refused by the store; SS_QUOTA: refused and counted; SS_BUSY: the
 * queue has no room now, nothing reserved and nothing counted: the
 * protocol either waits (gateway_wait) and submits again, or refuses
 * (gateway_refuse with METRICS_REFUSED_INGEST_BUSY). */
int gateway_submit(gateway *gw, const gateway_sender *from, gateway_msg *msg, int64_t now_ms);

/* Reserves n readings of the org's quotas at once, for a protocol that
 * must know before it submits anything that all of them may be stored (a
 * bulk import: all or nothing). 0 or SS_QUOTA (nothing reserved, counted
 * as one refused message of n readings under `protocol`). ref may be
 * NULL. Messages submitted with `prepaid` then draw on it; what is never
 * submitted goes back with gateway_release. */
int gateway_reserve(gateway *gw, const char *org_id, const char *protocol, size_t n,
                    int64_t now_ms, quota_ref *ref);
void gateway_release(gateway *gw, const char *org_id, size_t n, int64_t now_ms, quota_ref *ref);

/* Counts a message refused outside the steps above (framing: an
 * over-long line, a datagram over the size limit; or busy after
 * gateway_submit), carrying `readings` readings. from NULL: the sender is
 * not known yet (metrics only). */
void gateway_refuse(gateway *gw, const gateway_sender *from, metrics_reason why,
                    size_t readings);

/* Back-pressure: w->ready runs once the sender's org may have room again
 * (ingest_queue_wait). */
void gateway_wait(gateway *gw, ingest_waiter *w, const gateway_sender *from);
void gateway_cancel_wait(gateway *gw, ingest_waiter *w);

#endif
