/* api_call.h — one REST request being served on the worker pool, and the
 * helpers every resource file uses. Private to src/http. */
#ifndef SS_HTTP_API_CALL_H
#define SS_HTTP_API_CALL_H

#include <jansson.h>
#include <stdint.h>

#include "core/buf.h"
#include "http/api.h"
#include "store/store.h"

#define API_PARAMS_MAX 2
#define API_EXTRA_HEADERS_MAX 512

typedef struct api_call {
    uv_work_t work;
    api_ctx *app;
    http_request *req;
    char params[API_PARAMS_MAX][SS_ID_LEN + 1];  /* path parameters, in order */
    store_conn *db;
    int64_t now_ms;
    /* The person signed in (after api_require_user). */
    store_user user;
    store_session session;
    int via_cookie;
    /* The answer, sent by the loop once the worker is done. */
    int status;
    const char *content_type;
    ss_buf body;
    char extra_headers[API_EXTRA_HEADERS_MAX];
} api_call;

typedef void (*api_worker_fn)(api_call *call);

/* Answers with a JSON value (reference stolen). */
void api_reply_json(api_call *call, int status, json_t *value);
/* Answers with the JSON error of SPEC §2. */
void api_reply_error(api_call *call, int status, const char *code, const char *message);
/* Answers 204 with no body. */
void api_reply_empty(api_call *call);
/* Maps a store error to its answer (404, 409, 503 …). */
void api_reply_store_error(api_call *call, int err);

/* The request body as a JSON object; answers 400 and returns NULL when it
 * is not one. */
json_t *api_body_object(api_call *call);

/* Authenticates the person (Bearer session token or ss_session cookie; a
 * mutating request by cookie must carry a matching X-CSRF-Token). Answers
 * 401/403 and returns nonzero when that fails. */
int api_require_user(api_call *call);

/* Checks the signed-in user holds at least `min` in the org (or is the
 * superadmin). Answers 404 when the org does not exist or the user has no
 * role in it (never revealing that it exists), 403 when the role is too
 * low, and returns nonzero then. OUT role (may be NULL): the effective role,
 * STORE_ROLE_OWNER for the superadmin. */
int api_require_role(api_call *call, const char *org_id, store_role min, store_role *role);

/* 1 when name is a usable name: present and not only white space (the
 * length was checked by api_json_string). */
int api_name_valid(const char *name);

/* Lowercases ASCII in place (emails are kept lowercase). */
void api_lowercase(char *s);

/* Signs the user in, loads the device named by the first path parameter and
 * checks the user holds at least `min` in its org. Answers (401, 404 for
 * another org's device, 403) and returns nonzero on failure. */
int api_load_device(api_call *call, store_role min, store_device *d);

/* Role names. */
const char *api_role_name(store_role role);
int api_role_parse(const char *name, store_role *out);

/* JSON of records. */
json_t *api_user_json(const store_user *u);
json_t *api_org_json(const store_org *o);
json_t *api_device_json(const store_device *d);

/* A string member of an object: NULL when absent; *bad set when present but
 * not a string or longer than max (the caller answers 400). */
const char *api_json_string(json_t *obj, const char *key, size_t max, int *bad);

/* Resource handlers, one file per resource. */
void api_login(api_call *call);
void api_logout(api_call *call);
void api_me(api_call *call);
void api_orgs_list(api_call *call);
void api_orgs_create(api_call *call);
void api_org_get(api_call *call);
void api_org_patch(api_call *call);
void api_members_list(api_call *call);
void api_members_add(api_call *call);
void api_devices_list(api_call *call);
void api_devices_create(api_call *call);
void api_device_get(api_call *call);
void api_device_patch(api_call *call);
void api_device_delete(api_call *call);
void api_device_rotate(api_call *call);
void api_device_channels(api_call *call);
void api_device_latest(api_call *call);
void api_device_data(api_call *call);
void api_healthz(api_call *call);

/* Device ingest, on the loop thread. */
void api_data_post(api_ctx *app, http_request *req);

#endif
