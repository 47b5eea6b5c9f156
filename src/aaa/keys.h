/* keys.h — the lifecycle of an API key: created with scopes and shown
 * once, revoked at once (store, live connections, audit; aaa/service.h).
 *
 * The caller checks access first: admin in the key's org. */
#ifndef SS_AAA_KEYS_H
#define SS_AAA_KEYS_H

#include "aaa/secret.h"
#include "aaa/service.h"

/* Creates a key of org_id with scopes (STORE_SCOPE_* bits, not 0), made by
 * the actor. OUT k, key (the secret, shown once; zeroed on failure). 0,
 * SS_NOT_FOUND (no such org) or a store error. */
int aaa_key_create(aaa_ctx *cx, const char *org_id, const char *name, unsigned scopes,
                   store_apikey *k, char key[SECRET_TEXT_MAX]);

/* Revokes the key k (as loaded): every request with it fails from now on
 * and its live connections close. 0 or a store error. */
int aaa_key_revoke(aaa_ctx *cx, const store_apikey *k);

/* The scopes as an array of their names (a new reference). */
json_t *aaa_scopes_json(unsigned scopes);

#endif
