/* principal.h — who is asking, whatever the protocol.
 *
 * A principal is a person signed in (with their login session), an app
 * with an API key, or a device with its token. Every protocol turns the
 * credential it carries into one (REST by aaa_authenticate; ingest by the
 * device token cache, aaa_principal_device), then asks access.h what it
 * may do. Answers are SS codes; each protocol maps them to its own terms. */
#ifndef SS_AAA_PRINCIPAL_H
#define SS_AAA_PRINCIPAL_H

#include <stddef.h>
#include <stdint.h>

#include "aaa/device_cache.h"
#include "store/store.h"

typedef enum {
    AAA_PRINCIPAL_NONE = 0,
    AAA_PRINCIPAL_PERSON,
    AAA_PRINCIPAL_KEY,
    AAA_PRINCIPAL_DEVICE,
} aaa_principal_kind;

/* One kind at a time: read only the members of `kind` (the accessors
 * below do). Small enough to build per message on the loop thread. */
typedef struct aaa_principal {
    aaa_principal_kind kind;
    union {
        struct {
            store_user user;        /* PERSON */
            store_session session;  /* PERSON: the login it came with */
        };
        store_apikey key;           /* KEY */
        device_cache_entry device;  /* DEVICE: as the token cache knows it */
    };
} aaa_principal;

/* Session expiry, as the server is configured (0: the SS_SESSION_* default). */
typedef struct aaa_session_policy {
    int64_t idle_ms;
} aaa_session_policy;

/* 1 when the credential text is an API key's shape ("ssk_…"). A cookie
 * never carries a key. */
int aaa_credential_is_key(const char *text, size_t len, int via_cookie);

/* Turns a presented credential (a session token, or an API key unless
 * via_cookie) into a principal, on a worker with its store handle. A
 * session idle past policy->idle_ms ends here, and one in use is touched
 * now and then so it never looks idle. out->kind tells which kind was
 * tried, even on failure. 0; SS_AUTH when there is no such credential (a
 * missing, malformed, unknown, expired or revoked one, or a disabled
 * person's); or a store error. */
int aaa_authenticate(store_conn *db, const aaa_session_policy *policy, const char *text,
                     size_t len, int via_cookie, int64_t now_ms, aaa_principal *out);

/* A device principal from what the token cache knows of the device. */
void aaa_principal_device(aaa_principal *p, const char *device_id, const char *org_id,
                          int disabled);

/* The principal's own id: the person's, the key's or the device's ("" for
 * none). Revoking this id closes its live connections. */
const char *aaa_principal_id(const aaa_principal *p);
/* The org a key or device belongs to; "" for a person (whose orgs are
 * their memberships). An ingest gateway acting for a key reads this and
 * aaa_principal_scopes. */
const char *aaa_principal_org(const aaa_principal *p);
/* A key's STORE_SCOPE_* bits; a device writes its own data only
 * (STORE_SCOPE_DATA_WRITE); a person has none (roles instead). */
unsigned aaa_principal_scopes(const aaa_principal *p);
/* 1 for the superadmin. */
int aaa_principal_superadmin(const aaa_principal *p);
/* The audit actor: "user:<id>", "apikey:<id>", "device:<id>". */
void aaa_principal_actor(const aaa_principal *p, char *out, size_t cap);
/* The actor's name then: the person's email, the key's name ("" for a
 * device, known by its id). */
const char *aaa_principal_name(const aaa_principal *p);

#endif
