#include "server/reset_password.h"
#include "aaa/audit_detail.h"
#include "aaa/password.h"
#include "aaa/secret.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/err.h"
#include "store/store.h"

#include <ctype.h>
#include <jansson.h>
#include <pwd.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define GENERATED_PASSWORD_LEN 20u

static const char usage[] =
    "usage: sensorspace reset-password --email EMAIL [--data-dir DIR] [--store URL]\n"
    "\n"
    "Sets a new password for the user, enables the account, ends all of its\n"
    "sessions and lifts its sign-in throttle (a running server sees it at the next\n"
    "sign-in). The password comes from SENSORSPACE_NEW_PASSWORD (12 characters or\n"
    "more); without it one is generated and printed once. The audit log records\n"
    "the reset with the local account that ran it.\n";

/* Who ran the command, as the audit log names an offline actor: the
 * local account (the store has no session to name). */
static int audit_reset(store_conn *c, const store_user *u, int64_t now_ms)
{
    store_audit a = {.ts = now_ms};
    const struct passwd *pw = getpwuid(geteuid());
    snprintf(a.actor, sizeof a.actor, "cli:reset-password");
    snprintf(a.actor_name, sizeof a.actor_name, "%s", pw ? pw->pw_name : "");
    snprintf(a.action, sizeof a.action, "user.password_reset");
    snprintf(a.target, sizeof a.target, "user:%s", u->id);
    snprintf(a.addr, sizeof a.addr, "local");
    json_t *detail = json_pack("{s:s,s:s,s:b,s:b,s:b}", "email", u->email, "password",
                               AUDIT_SECRET_CHANGED, "enabled", 1, "sessions_ended", 1,
                               "login_throttle_lifted", 1);
    audit_detail_text(detail, a.detail, sizeof a.detail);
    json_decref(detail);
    return store_audit_append(c, &a);
}

/* Why a step could not be written, and what of the reset stands. A session
 * delete on a full disk is only held in memory, and this process ends: it
 * did not happen. */
static void say_failed(int rc, const char *step, const char *done)
{
    if (rc == SS_FULL)
        fprintf(stderr,
                "reset-password: the disk is full: %s could not be written (%s); free space "
                "and run the command again\n",
                step, done);
    else
        fprintf(stderr, "reset-password: %s could not be written (%s): %s\n", step, done,
                ss_strerror(rc));
}

static int apply(store *s, const char *email, const char *password)
{
    store_conn *c;
    store_user u;
    char hash[STORE_PW_HASH_MAX];
    int rc = password_hash(password, hash);
    if (rc) {
        fprintf(stderr, "reset-password: the password must have 12 to 1024 characters\n");
        return rc;
    }
    rc = store_conn_acquire(s, &c);
    if (rc)
        return rc;
    rc = store_user_get_by_email(c, email, &u);
    if (rc == SS_NOT_FOUND)
        fprintf(stderr, "reset-password: no user %s\n", email);
    else if (rc)
        say_failed(rc, "the user", "nothing was changed");
    int64_t now = clock_now_ms();
    if (rc == 0 && (rc = store_user_set_password(c, u.id, hash)) != 0)
        say_failed(rc, "the new password", "nothing was changed");
    if (rc == 0 && (rc = store_user_set_disabled(c, u.id, 0)) != 0)
        say_failed(rc, "the account's enabling", "the password is changed");
    if (rc == 0 && (rc = store_session_delete_user(c, u.id, NULL)) != 0)
        say_failed(rc, "the end of its sessions",
                   "the password is changed and the account enabled; its sessions still work");
    if (rc == 0 && (rc = store_user_unlock_login(c, u.id, now)) != 0)
        say_failed(rc, "the lifting of its sign-in throttle",
                   "the password is changed, the account enabled and its sessions ended");
    if (rc == 0 && (rc = audit_reset(c, &u, now)) != 0)
        say_failed(rc, "the audit entry", "the password is reset, but the audit log lacks it");
    store_conn_release(s, c);
    return rc;
}

int reset_password_main(int argc, char **argv)
{
    char email[SS_EMAIL_MAX + 1] = "", err[512] = "";
    config cfg;
    config_defaults(&cfg);
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(usage, stdout);
            return 0;
        }
        if (strcmp(argv[i], "--email") == 0 && i + 1 < argc) {
            snprintf(email, sizeof email, "%s", argv[++i]);
        } else if (i + 1 < argc && (strcmp(argv[i], "--data-dir") == 0 ||
                                    strcmp(argv[i], "--store") == 0)) {
            config_set(&cfg, argv[i] + 2, argv[i + 1]);
            i++;
        } else {
            fputs(usage, stderr);
            return 2;
        }
    }
    if (!email[0] || secret_init()) {
        fputs(usage, stderr);
        return 2;
    }
    for (char *p = email; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    const char *given = getenv("SENSORSPACE_NEW_PASSWORD");
    char generated[GENERATED_PASSWORD_LEN + 1];
    password_generate(generated, GENERATED_PASSWORD_LEN);
    const char *password = given && *given ? given : generated;
    store_options opt = {.url = cfg.store, .data_dir = cfg.data_dir};
    store *s;
    if (store_open(&opt, &s, err, sizeof err)) {
        fprintf(stderr, "reset-password: cannot open the store: %s\n", err);
        return 1;
    }
    int rc = apply(s, email, password);
    store_close(s);
    if (rc == 0 && password == generated)
        printf("new password for %s: %s\n", email, generated);
    else if (rc == 0)
        printf("password of %s reset\n", email);
    sodium_memzero(generated, sizeof generated);
    return rc ? 1 : 0;
}
