/* meter.h — accounting on the loop thread (SPEC §5).
 *
 * Readings and messages stored are counted by the store in the commit that
 * stores them, in the usage and in the sender's session record (a snapshot
 * of the record the meter writes later never lowers them). Everything
 * else — bytes on the wire, refused messages, API requests, and the
 * session records — is counted here in memory, on the hot path without a
 * store write, and written in batches: once a second a
 * flush hands the deltas and the changed session records to the worker
 * pool, which writes them in one transaction. Bytes count toward the
 * org's bytes quota at that flush too (a bytes quota is reached at most one
 * flush late).
 *
 * A write that fails (disk full, the write lock held too long) loses
 * nothing: what it carried is kept and merged into the next flush, which
 * retries it (usage rows add up per org, hour and protocol; a record's
 * newer snapshot replaces an older one).
 *
 * A session record lives in its connection (meter_session, caller
 * storage); records of people signed in live in the meter itself, keyed by
 * the login session, since one login spans many connections. Loop thread
 * only, except meter_new/meter_free. */
#ifndef SS_METER_H
#define SS_METER_H

#include <stdint.h>
#include <uv.h>

#include "aaa/quota.h"
#include "core/list.h"
#include "store/store.h"

/* How often counts reach the store: what a kill -9 can lose of bytes and
 * refusals (readings and messages stored are never lost). */
#define METER_FLUSH_MS 1000u
/* Session records a failing store keeps for the next write, at most: a
 * few minutes of records of a busy server (about 200 bytes each). Past it
 * the oldest records are dropped, and only they: their bytes, refusals and
 * requests are already in the usage rows, which are kept whole (one per
 * org, hour and protocol, so they stay small however long the store
 * fails). */
#define METER_HELD_RECORDS_MAX 8192u
/* Open records one flush copies for the write, at most: the rest, still
 * marked changed, go with the next flushes (a second each). Without it a
 * burst of new connections (ten thousand devices signing in) would make
 * two copies of every record, and the first array would keep its room. */
#define METER_FLUSH_RECORDS_MAX 1024u
/* A person's session record ends after this long without a request. */
#define METER_USER_IDLE_MS (5LL * 60 * 1000)

typedef struct meter meter;

typedef struct meter_session {
    store_acct_session rec;
    /* Private to the meter. */
    ss_list link;               /* in the meter's open records */
    int64_t usage_in, usage_out;  /* of rec's bytes, those already in usage */
    uint8_t open;
    uint8_t dirty;
    uint8_t pooled;             /* a login's record, the meter's own (meter_user_session) */
} meter_session;

/* 0 or SS_NOMEM. The flush timer starts at once. q may be NULL. */
int meter_new(uv_loop_t *loop, store *s, quota *q, meter **out);
/* Ends every open record with `reason` ("shutdown"), writes everything
 * still in memory synchronously (the loop is stopping), and closes the
 * timer; free with meter_free after the loop has run the close. */
void meter_stop(meter *m, const char *reason);
void meter_free(meter *m);

/* Opens a record: kind "device", "user" or "apikey"; org_id may be "".
 * s is the caller's (a connection's record, "user" too: a person's MQTT
 * connection), never one of the meter's own login records. */
void meter_session_open(meter *m, meter_session *s, const char *kind, const char *principal_id,
                        const char *org_id, const char *protocol, const char *addr);
/* Ends it ("closed", "timeout", "revoked", "quota", "error", "shutdown");
 * harmless on a record not open. After this the caller may free s. */
void meter_session_end(meter *m, meter_session *s, const char *reason);

/* Bytes on the wire (TLS included). With an open record s they are added
 * to it alone, and reach the usage of the record's org and protocol at the
 * next flush (the request path touches nothing shared); without one
 * (s NULL or not open) they go to the usage of org_id over protocol (org
 * "" : nowhere). */
void meter_bytes(meter *m, meter_session *s, const char *org_id, const char *protocol,
                 uint64_t in, uint64_t out);
/* A message (request, line batch, datagram) stored with n readings: the
 * session's counts (usage got them in the commit). */
void meter_stored(meter *m, meter_session *s, uint64_t readings);
/* A message refused (bad, over quota, …) carrying n readings (0 when it
 * could not be read). Counts rejected usage and the session. */
void meter_refused(meter *m, meter_session *s, const char *org_id, const char *protocol,
                   uint64_t readings);
/* A message that brought no readings to store (an MQTT PUBLISH on a topic
 * other than a data topic, or refused before its payload was read): the
 * session's count only. */
void meter_message(meter *m, meter_session *s);
/* An API request by a person or an app. */
void meter_api_request(meter *m, meter_session *s, const char *org_id, const char *protocol);

/* The record of a person's login session in one org (org_id "" for
 * requests outside any org): created on first use, ended by meter_user_end
 * or after METER_USER_IDLE_MS without use. Records carry the org so that an
 * org's admins see only what was done in their org. */
meter_session *meter_user_session(meter *m, const char *login_id, const char *user_id,
                                  const char *org_id, const char *protocol, const char *addr);
/* Ends every record of the login session. */
void meter_user_end(meter *m, const char *login_id, const char *reason);
/* Ends every record of the user's login sessions but keep_login_id's
 * (NULL: all of them). */
void meter_user_end_all(meter *m, const char *user_id, const char *keep_login_id,
                        const char *reason);

/* Writes what is pending now (the timer does this every METER_FLUSH_MS). */
void meter_flush(meter *m);

/* Records a previous process left open are ended as "crash" (records
 * started before now_ms) by the next write, before anything else it
 * writes, retried with it until it succeeds: for a start on a full disk. */
void meter_close_stale(meter *m, int64_t now_ms);

#endif
