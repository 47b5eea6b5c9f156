/* auth.c — CONNECT's credentials into a principal (SPEC §3.6).
 *
 * A device signs in with its token as the password, whatever its username
 * (3.1.1 wants one when a password is sent; it is never a secret): the
 * token cache answers on the loop, as for every other protocol. An app
 * signs in with username "apikey" and an API key as the password: the key
 * is looked up in the store, so on the worker pool, as the REST API does.
 * The superadmin signs in with their email as the username and their
 * password, as at the REST sign-in (aaa_sign_in on the worker pool: the
 * same throttle per account and per address, the same Argon2 time whether
 * or not the email exists); the login session that makes is ended at
 * once, the connection's session record and its registration under the
 * person's id standing for it. Any other person is refused as a wrong
 * password is. Anything else is refused without saying whether a device,
 * key or person exists.
 *
 * Failed sign-ins count against the peer's address in the server's login
 * throttle, as at the REST sign-in; past the address's free failures a
 * refusal is answered late (conn.c), never a right credential: tokens and
 * keys are 256-bit secrets no one guesses, and many devices share one
 * NAT address, so one device retrying an old token in a loop is slowed
 * without locking out its neighbours. */
#include "mqtt/broker_internal.h"

#include "aaa/secret.h"
#include "aaa/sessions.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"

#include <ctype.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define AUTH_KEY_USERNAME "apikey"
/* A device token's shape: a person's sign-in is never tried with one. */
#define AUTH_DEVICE_PREFIX SECRET_PREFIX_DEVICE "_"
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
    uint64_t since;             /* b->revocations when it was queued */
    int status;
} auth_job;

typedef struct person_job {
    uv_work_t work;
    mqtt_conn *c;
    mqtt_auth_cb done;
    store *store;
    throttle *logins;
    char email[SS_EMAIL_MAX + 1];
    char password[SS_PASSWORD_MAX + 1];
    char peer[46];
    aaa_principal who;
    uint64_t since;
    int status;
} person_job;

static int is_key_username(const mqtt_connect *cn)
{
    size_t n = sizeof AUTH_KEY_USERNAME - 1u;
    return cn->has_username && cn->username.len == n &&
           memcmp(cn->username.p, AUTH_KEY_USERNAME, n) == 0;
}

/* A person signing in: an email as the username (a device's username is
 * free, so its token's shape decides for it), a password within the
 * limits a person's may have. */
static int is_person(const mqtt_connect *cn)
{
    size_t n = sizeof AUTH_DEVICE_PREFIX - 1u;
    if (!cn->has_username || cn->username.len == 0 || cn->username.len > SS_EMAIL_MAX ||
        !memchr(cn->username.p, '@', cn->username.len) || cn->password.len > SS_PASSWORD_MAX)
        return 0;
    if (memchr(cn->username.p, '\0', cn->username.len) ||
        memchr(cn->password.p, '\0', cn->password.len))
        return 0;
    return cn->password.len < n || memcmp(cn->password.p, AUTH_DEVICE_PREFIX, n) != 0;
}

/* The throttle's account of a person: the email in lowercase, as
 * aaa_sign_in counts it. */
static void person_account(const mqtt_connect *cn, char out[SS_EMAIL_MAX + 1])
{
    for (size_t i = 0; i < cn->username.len; i++)
        out[i] = (char)tolower((unsigned char)cn->username.p[i]);
    out[cn->username.len] = '\0';
}

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
    int64_t now = clock_now_ms();
    int64_t wait;
    if (is_person(cn)) {
        /* aaa_sign_in counted the failure already. */
        char email[SS_EMAIL_MAX + 1];
        person_account(cn, email);
        wait = throttle_login_wait(t, email, mqtt_conn_peer(c), 0, now);
    } else {
        char account[AUTH_ACCOUNT_CAP];
        auth_account(&cn->password, account);
        throttle_login_failed(t, account, mqtt_conn_peer(c), now);
        wait = throttle_login_wait(t, account, mqtt_conn_peer(c), 0, now);
    }
    return wait <= 0 ? 0 : wait > SS_MQTT_REFUSED_DELAY_MAX_MS ? SS_MQTT_REFUSED_DELAY_MAX_MS
                                                                : (uint64_t)wait;
}

/* ---- revocations that overtake a sign-in ---------------------------------------------- */

/* A revocation reaches only the connections registered under its id,
 * and a sign-in on the worker pool registers once it is back on the loop:
 * one that read its credential before the revocation was committed and
 * came back after the revocation was heard would be let in and never
 * closed. So the loop remembers the last ids revoked, and each sign-in
 * checks those heard since it was queued. */
void mqtt_auth_revoked(mqtt_broker *b, const char *id)
{
    snprintf(b->revoked[b->revocations % SS_MQTT_REVOKED_RECENT_MAX], SS_ID_LEN + 1, "%s", id);
    b->revocations++;
}

/* SS_OK, SS_AUTH (its principal or its key's org was revoked since
 * `since`) or SS_BUSY (more revocations came than are remembered). */
static int auth_overtaken(const mqtt_broker *b, uint64_t since, const aaa_principal *who)
{
    if (b->revocations - since > SS_MQTT_REVOKED_RECENT_MAX)
        return SS_BUSY;
    const char *id = aaa_principal_id(who), *org = aaa_principal_org(who);
    for (uint64_t i = since; i < b->revocations; i++) {
        const char *r = b->revoked[i % SS_MQTT_REVOKED_RECENT_MAX];
        if (strcmp(r, id) == 0 || (org[0] && strcmp(r, org) == 0))
            return SS_AUTH;
    }
    return SS_OK;
}

/* ---- a device token --------------------------------------------------------- */

static int auth_device(mqtt_conn *c, const mqtt_connect *cn)
{
    /* gateway_auth_token counts the refusal (invalid_token). */
    gateway_sender sender;
    if (gateway_auth_token(c->broker->opt.gateway, (const char *)cn->password.p,
                           cn->password.len, &sender))
        return SS_AUTH;
    aaa_principal p;
    aaa_principal_device(&p, sender.dev.device_id, sender.dev.org_id, 0);
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
        rc = auth_overtaken(c->broker, j->since, &j->who);
    if (rc == SS_OK)
        mqtt_who_set(&c->who, &j->who);
    explicit_bzero(j->key, sizeof j->key);
    free(j);
    done(c, rc);
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
    j->since = c->broker->revocations;
    j->work.data = j;
    if (uv_queue_work(c->broker->loop, &j->work, on_key_work, on_key_done)) {
        explicit_bzero(j->key, sizeof j->key);
        free(j);
        return SS_NOMEM;
    }
    c->auth_pending = 1;
    return MQTT_AUTH_LATER;
}

/* ---- a person, on the worker pool ----------------------------------------------- */

static void on_person_work(uv_work_t *w)
{
    person_job *j = w->data;
    store_conn *db;
    j->status = store_conn_acquire(j->store, &db);
    if (j->status != SS_OK)
        return;
    aaa_sign_in_req in = {j->email, j->password, j->peer, 0, clock_now_ms()};
    char token[SECRET_TEXT_MAX];
    int64_t wait = 0;
    j->status = aaa_sign_in(db, j->logins, &in, &j->who, token, &wait);
    sodium_memzero(token, sizeof token);
    if (j->status == SS_OK) {
        /* The connection stands for the login; its token is nobody's. */
        int rc = aaa_sign_out(db, &j->who);
        if (rc)
            log_warn("mqtt", "a sign-in's login session was not ended: %s", ss_strerror(rc));
        if (!aaa_principal_superadmin(&j->who))
            j->status = SS_AUTH;
    } else if (j->status == SS_BUSY) {
        j->status = SS_AUTH;  /* throttled: refused late, as any failure (conn.c) */
    }
    store_conn_release(j->store, db);
}

static void on_person_done(uv_work_t *w, int status)
{
    person_job *j = w->data;
    mqtt_conn *c = j->c;
    mqtt_auth_cb done = j->done;
    int rc = status == 0 ? j->status : SS_STORE;
    c->auth_pending = 0;
    c->broker->sign_ins--;
    if (rc == SS_OK)
        rc = auth_overtaken(c->broker, j->since, &j->who);
    if (rc == SS_OK)
        mqtt_who_set(&c->who, &j->who);
    sodium_memzero(j->password, sizeof j->password);
    sodium_memzero(&j->who, sizeof j->who);
    free(j);
    done(c, rc);
}

static int auth_person(mqtt_conn *c, const mqtt_connect *cn, mqtt_auth_cb done)
{
    if (!c->broker->opt.logins)
        return SS_AUTH;
    if (c->broker->sign_ins >= SS_MQTT_SIGN_IN_RUNNING_MAX)
        return SS_BUSY;
    person_job *j = calloc(1, sizeof *j);
    if (!j)
        return SS_NOMEM;
    j->c = c;
    j->done = done;
    j->store = c->broker->opt.store;
    j->logins = c->broker->opt.logins;
    memcpy(j->email, cn->username.p, cn->username.len);
    memcpy(j->password, cn->password.p, cn->password.len);
    snprintf(j->peer, sizeof j->peer, "%s", mqtt_conn_peer(c));
    j->since = c->broker->revocations;
    j->work.data = j;
    if (uv_queue_work(c->broker->loop, &j->work, on_person_work, on_person_done)) {
        sodium_memzero(j->password, sizeof j->password);
        free(j);
        return SS_NOMEM;
    }
    c->auth_pending = 1;
    c->broker->sign_ins++;
    return MQTT_AUTH_LATER;
}

int mqtt_auth_start(mqtt_conn *c, const mqtt_connect *cn, mqtt_auth_cb done)
{
    if (!cn->has_password || cn->password.len == 0)
        return SS_AUTH;
    if (is_key_username(cn))
        return auth_key(c, cn, done);
    if (is_person(cn))
        return auth_person(c, cn, done);
    return auth_device(c, cn);
}
