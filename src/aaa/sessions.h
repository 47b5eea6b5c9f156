/* sessions.h — a person's login sessions: signing in with email and
 * password, signing out, ending one session by its id (SPEC §4).
 *
 * Every way a person signs in (REST; the superadmin's MQTT CONNECT with
 * email and password; the web app next) comes here, so the throttle, the
 * timing and the session rules hold for all of them. Answers are SS codes;
 * each protocol maps them to its own terms and keeps its own accounting. */
#ifndef SS_AAA_SESSIONS_H
#define SS_AAA_SESSIONS_H

#include <stdint.h>

#include "aaa/principal.h"
#include "aaa/secret.h"
#include "aaa/throttle.h"
#include "store/store.h"

typedef struct aaa_sign_in_req {
    const char *email;     /* as given: compared in lowercase */
    const char *password;
    const char *addr;      /* the client's address: throttled, kept with the session */
    int64_t ttl_ms;        /* the session's absolute lifetime; 0: SS_SESSION_TTL_MS */
    int64_t now_ms;
} aaa_sign_in_req;

/* Signs a person in, on a worker (Argon2 runs here). The throttle
 * (logins) is asked before any password is checked; a wrong password
 * costs the same time whether or not the account exists, so timing tells
 * nothing; a failure is counted and logged by address only.
 * 0: *out is the PERSON with their new session, token its secret text
 * (SECRET_TEXT_MAX bytes; the caller hands it over once and wipes it);
 * SS_BUSY: throttled, *retry_ms the wait before the next attempt is even
 * checked; SS_AUTH: no such account, a wrong password or a disabled
 * person (one answer for all three); or a store error. *out is the PERSON
 * from the moment the account is loaded, NONE before. */
int aaa_sign_in(store_conn *db, throttle *logins, const aaa_sign_in_req *in, aaa_principal *out,
                char token[SECRET_TEXT_MAX], int64_t *retry_ms);

/* Ends the person's own session, the one p came with. 0 (also when it
 * had ended already); SS_FULL: ended on this server but not saved
 * (store.h); SS_FORBIDDEN when p is no person; or a store error. */
int aaa_sign_out(store_conn *db, const aaa_principal *p);

/* Ends one of the person's sessions by its id. 0; SS_NOT_FOUND for a
 * malformed id or no such session of theirs; SS_FULL as aaa_sign_out;
 * SS_FORBIDDEN when p is no person; or a store error. */
int aaa_session_end(store_conn *db, const aaa_principal *p, const char *session_id);

#endif
