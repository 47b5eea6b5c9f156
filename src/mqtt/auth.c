/* auth.c — CONNECT's credentials into a principal (SPEC §3.6).
 *
 * A device signs in with its token as the password, whatever its username
 * (3.1.1 wants one when a password is sent; it is never a secret): the
 * token cache answers on the loop, as for every other protocol. An app
 * signs in with username "apikey" and an API key as the password: the key
 * is looked up in the store, so on the worker pool, as the REST API does.
 * Anything else is refused without saying whether a device or key exists.
 *
 * Failed sign-ins count against the peer's address in the server's login
 * throttle, as at the REST sign-in; past the address's free failures a
 * refusal is answered late (conn.c), never a right credential: tokens and
 * keys are 256-bit secrets no one guesses, and many devices share one
 * NAT address, so one device retrying an old token in a loop is slowed
 * without locking out its neighbours. */
#include "mqtt/broker_internal.h"

#include "aaa/secret.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define AUTH_KEY_USERNAME "apikey"
/* The throttle's account for an MQTT sign-in: a token or key names no
 * account before it is found, so the credential itself (a short prefix of
 * its hash) stands in; the address's count is the one that binds a
 * client trying many. */
#define AUTH_ACCOUNT_PREFIX "mqtt:"
#define AUTH_ACCOUNT_HASH_BYTES 8u
#define AUTH_ACCOUNT_CAP (sizeof AUTH_ACCOUNT_PREFIX + 2u * AUTH_ACCOUNT_HASH_BYTES)

typedef struct auth_job {
    uv_work_t work;
    mqtt_conn *c;
    mqtt_auth_cb done;
    store *store;
    aaa_session_policy policy;
    char key[SECRET_TEXT_MAX];
    size_t len;
    aaa_principal who;
    int status;
} auth_job;

static void auth_account(const mqtt_bin *password, char out[AUTH_ACCOUNT_CAP])
{
    uint8_t hash[SS_SECRET_HASH_BYTES];
    secret_hash((const char *)password->p, password->len, hash);
    size_t n = snprintf(out, AUTH_ACCOUNT_CAP, "%s", AUTH_ACCOUNT_PREFIX);
    for (size_t i = 0; i < AUTH_ACCOUNT_HASH_BYTES; i++)
        n += snprintf(out + n, AUTH_ACCOUNT_CAP - n, "%02x", hash[i]);
    sodium_memzero(hash, sizeof hash);
}

uint64_t mqtt_auth_failed(mqtt_conn *c, const mqtt_connect *cn)
{
    throttle *t = c->broker->opt.logins;
    if (!t)
        return 0;
    char account[AUTH_ACCOUNT_CAP];
    int64_t now = clock_now_ms();
    auth_account(&cn->password, account);
    throttle_login_failed(t, account, c->peer, now);
    int64_t wait = throttle_login_wait(t, account, c->peer, 0, now);
    return wait <= 0 ? 0 : wait > SS_MQTT_REFUSED_DELAY_MAX_MS ? SS_MQTT_REFUSED_DELAY_MAX_MS
                                                                : (uint64_t)wait;
}

/* ---- a device token --------------------------------------------------------- */

static int auth_device(mqtt_conn *c, const mqtt_connect *cn)
{
    /* gateway_auth_token counts the refusal (invalid_token). */
    if (gateway_auth_token(c->broker->opt.gateway, (const char *)cn->password.p,
                           cn->password.len, &c->sender))
        return SS_AUTH;
    aaa_principal p;
    aaa_principal_device(&p, c->sender.dev.device_id, c->sender.dev.org_id, 0);
    mqtt_who_set(&c->who, &p);
    return SS_OK;
}

/* ---- an API key, on the worker pool ---------------------------------------------- */

static void on_key_work(uv_work_t *w)
{
    auth_job *j = w->data;
    store_conn *db;
    j->status = store_conn_acquire(j->store, &db);
    if (j->status != SS_OK)
        return;
    j->status = aaa_authenticate(db, &j->policy, j->key, j->len, 0, clock_now_ms(), &j->who);
    store_conn_release(j->store, db);
    if (j->status == SS_OK && j->who.kind != AAA_PRINCIPAL_KEY)
        j->status = SS_AUTH;
}

static void on_key_done(uv_work_t *w, int status)
{
    auth_job *j = w->data;
    mqtt_conn *c = j->c;
    mqtt_auth_cb done = j->done;
    int rc = status == 0 ? j->status : SS_STORE;
    c->auth_pending = 0;
    if (rc == SS_OK)
        mqtt_who_set(&c->who, &j->who);
    explicit_bzero(j->key, sizeof j->key);
    free(j);
    done(c, rc);
}

static int is_key_username(const mqtt_connect *cn)
{
    size_t n = sizeof AUTH_KEY_USERNAME - 1u;
    return cn->has_username && cn->username.len == n && memcmp(cn->username.p, AUTH_KEY_USERNAME, n) == 0;
}

static int auth_key(mqtt_conn *c, const mqtt_connect *cn, mqtt_auth_cb done)
{
    const char *text = (const char *)cn->password.p;
    size_t len = cn->password.len;
    /* Only a key's shape goes to the store: a person's session token is
     * no MQTT credential. */
    if (len >= SECRET_TEXT_MAX || !aaa_credential_is_key(text, len, 0))
        return SS_AUTH;
    auth_job *j = calloc(1, sizeof *j);
    if (!j)
        return SS_NOMEM;
    j->c = c;
    j->done = done;
    j->store = c->broker->opt.store;
    j->policy = c->broker->opt.session_policy;
    memcpy(j->key, text, len);
    j->len = len;
    j->work.data = j;
    if (uv_queue_work(c->broker->loop, &j->work, on_key_work, on_key_done)) {
        explicit_bzero(j->key, sizeof j->key);
        free(j);
        return SS_NOMEM;
    }
    c->auth_pending = 1;
    return MQTT_AUTH_LATER;
}

int mqtt_auth_start(mqtt_conn *c, const mqtt_connect *cn, mqtt_auth_cb done)
{
    if (!cn->has_password || cn->password.len == 0)
        return SS_AUTH;
    if (is_key_username(cn))
        return auth_key(c, cn, done);
    return auth_device(c, cn);
}
