/* api_devices.c — devices and their tokens, over REST: the requests are
 * parsed here, the lifecycle runs in aaa/devices. */
#include "aaa/devices.h"
#include "aaa/secret.h"
#include "core/err.h"
#include "http/api_call.h"

#include <string.h>

static int append_device(void *ctx, const store_device *d)
{
    json_array_append_new(ctx, api_device_json(d));
    return 0;
}

void api_devices_list(api_call *call)
{
    if (api_require_org_role(call, STORE_ROLE_VIEWER, NULL))
        return;
    json_t *list = json_array();
    int rc = store_device_list(call->db, call->params[0], append_device, list);
    api_reply_list(call, rc, list);
}

void api_devices_create(api_call *call)
{
    json_t *body = api_org_body(call, STORE_ROLE_EDITOR, NULL);
    if (!body)
        return;
    int bad = 0;
    const char *name = api_json_string(body, "name", SS_NAME_MAX, &bad);
    const char *desc = api_json_string(body, "description", SS_DESCRIPTION_MAX, &bad);
    if (bad || !api_name_valid(name)) {
        api_reply_bad_body(call, body,
                           "name (1-200 characters) is required; description is a string");
        return;
    }
    store_device d;
    char token[SECRET_TEXT_MAX];
    int rc = aaa_device_create(api_aaa(call), call->params[0], name, desc, &d, token);
    json_decref(body);
    if (rc) {
        api_reply_err(call, rc, "the organisation has as many devices as its quota allows");
        return;
    }
    api_reply_secret(call, 201, api_device_json(&d), "token", token);
}

void api_device_get(api_call *call)
{
    store_device d;
    if (api_load_device(call, STORE_ROLE_VIEWER, &d))
        return;
    api_reply_json(call, 200, api_device_json(&d));
}

/* The change a PATCH body asks for; answers 400 when it is not one. */
static int parse_patch(api_call *call, json_t *body, aaa_device_patch *patch)
{
    int bad = 0;
    patch->name = api_json_string(body, "name", SS_NAME_MAX, &bad);
    patch->description = api_json_string(body, "description", SS_DESCRIPTION_MAX, &bad);
    json_t *disabled = json_object_get(body, "disabled");
    if (bad || (patch->name && !api_name_valid(patch->name)) ||
        (disabled && !json_is_boolean(disabled))) {
        api_reply_error(call, 400, "bad_request",
                        "name is 1-200 characters, description a string, disabled a boolean");
        return 1;
    }
    patch->set_disabled = disabled != NULL;
    patch->disabled = json_is_true(disabled);
    return 0;
}

void api_device_patch(api_call *call)
{
    store_device d;
    if (api_load_device(call, STORE_ROLE_EDITOR, &d))
        return;
    json_t *body = api_body_object(call);
    if (!body)
        return;
    aaa_device_patch patch = {0};
    if (parse_patch(call, body, &patch)) {
        json_decref(body);
        return;
    }
    int rc = aaa_device_update(api_aaa(call), &d, &patch);
    json_decref(body);  /* after the change: the patch points into it */
    if (rc) {
        api_reply_err(call, rc, NULL);
        return;
    }
    api_reply_json(call, 200, api_device_json(&d));
}

void api_device_delete(api_call *call)
{
    store_device d;
    if (api_load_device(call, STORE_ROLE_EDITOR, &d))
        return;
    int rc = aaa_device_delete(api_aaa(call), &d);
    if (rc) {
        api_reply_err(call, rc, NULL);
        return;
    }
    api_reply_empty(call);
}

void api_device_rotate(api_call *call)
{
    store_device d;
    if (api_load_device(call, STORE_ROLE_EDITOR, &d))
        return;
    char token[SECRET_TEXT_MAX];
    int rc = aaa_device_rotate(api_aaa(call), &d, token);
    if (rc) {
        api_reply_err(call, rc, NULL);
        return;
    }
    api_reply_secret(call, 200, json_pack("{s:s}", "id", d.id), "token", token);
}
