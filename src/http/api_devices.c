/* api_devices.c — devices and their tokens, over REST: the requests are
 * parsed here, the lifecycle runs in aaa/devices.
 *
 * Attributes are a small JSON object (limits.h, SS_DEVICE_ATTRIBUTE*):
 * given whole on create; a PATCH merges into them as RFC 7396 JSON merge
 * patch says (a member set to null is removed, an object merges member by
 * member, anything else replaces), and the result must keep the limits. */
#include "aaa/devices.h"
#include "aaa/secret.h"
#include "core/err.h"
#include "core/reading.h"
#include "http/api_call.h"
#include "http/api_page.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Attribute filters one list may carry (?attr.KEY=VALUE, all must hold). */
#define DEVICE_FILTERS_MAX 8
#define DEVICE_FILTER_VALUE_MAX 256

/* The answer for a device: the store's record with the newest batch noted
 * since the last write of last_seen. */
static json_t *device_json(api_call *call, store_device *d)
{
    last_seen_apply(call->app->seen, d);
    return api_device_json(d);
}

/* ---- attributes ------------------------------------------------------------ */

/* Counts the members of v and its nested objects into *keys and checks
 * names and depth (the object itself is depth 1, each object or list in
 * it one more); 0 when within the limits. */
static int attrs_walk(json_t *v, unsigned depth, size_t *keys, const char **why)
{
    if ((json_is_array(v) || json_is_object(v)) && depth > SS_DEVICE_ATTRIBUTES_DEPTH_MAX) {
        *why = "attributes nest at most 3 levels deep (objects and lists)";
        return 1;
    }
    if (json_is_array(v)) {
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e)
            if (attrs_walk(e, depth + 1, keys, why))
                return 1;
        return 0;
    }
    if (!json_is_object(v))
        return 0;
    const char *k;
    json_t *e;
    json_object_foreach(v, k, e) {
        if (!reading_channel_valid(k, strlen(k))) {
            *why = "attribute names are 1-64 of A-Z a-z 0-9 _ . -";
            return 1;
        }
        if (++*keys > SS_DEVICE_ATTRIBUTE_KEYS_MAX) {
            *why = "attributes have at most 64 names in all";
            return 1;
        }
        if (attrs_walk(e, depth + 1, keys, why))
            return 1;
    }
    return 0;
}

/* The text of attributes `obj` into out (SS_DEVICE_ATTRIBUTES_MAX + 1);
 * answers 400 naming the limit and returns 1 when over one. */
static int attrs_text(api_call *call, json_t *obj, char *out)
{
    const char *why = NULL;
    size_t keys = 0;
    if (!json_is_object(obj)) {
        api_reply_error(call, 400, "bad_request", "attributes is a JSON object");
        return 1;
    }
    if (attrs_walk(obj, 1, &keys, &why)) {
        api_reply_error(call, 400, "attributes_too_large", why);
        return 1;
    }
    size_t n = json_dumpb(obj, out, SS_DEVICE_ATTRIBUTES_MAX, JSON_COMPACT);
    if (n == 0 || n > SS_DEVICE_ATTRIBUTES_MAX) {
        char msg[96];
        snprintf(msg, sizeof msg, "attributes are at most %u bytes as compact JSON",
                 SS_DEVICE_ATTRIBUTES_MAX);
        api_reply_error(call, 400, "attributes_too_large", msg);
        return 1;
    }
    out[n] = '\0';
    return 0;
}

/* RFC 7396 §2: patch applied to target, in place. */
static void merge_patch(json_t *target, json_t *patch)
{
    const char *k;
    json_t *v;
    json_object_foreach(patch, k, v) {
        if (json_is_null(v)) {
            json_object_del(target, k);
            continue;
        }
        json_t *old = json_object_get(target, k);
        if (json_is_object(v) && json_is_object(old)) {
            merge_patch(old, v);
            continue;
        }
        if (json_is_object(v)) {  /* merged into nothing: its nulls go too */
            json_t *fresh = json_object();
            merge_patch(fresh, v);
            json_object_set_new(target, k, fresh);
            continue;
        }
        json_object_set(target, k, v);
    }
}

/* The attributes a PATCH asks for, merged into the device's, as text into
 * out; NULL (nothing answered) when the body has none; answers 400 and
 * sets *bad when they do not keep the limits. */
static const char *patched_attrs(api_call *call, const store_device *d, json_t *body,
                                 char *out, int *bad)
{
    json_t *patch = json_object_get(body, "attributes");
    if (!patch)
        return NULL;
    json_error_t jerr;
    json_t *merged = json_is_null(patch) ? json_object() : json_loads(d->attributes, 0, &jerr);
    if (!json_is_object(merged)) {
        json_decref(merged);
        merged = json_object();
    }
    if (json_is_object(patch))
        merge_patch(merged, patch);
    *bad = attrs_text(call, json_is_null(patch) || json_is_object(patch) ? merged : patch, out);
    json_decref(merged);
    return *bad ? NULL : out;
}

/* ---- the list, paged and filtered ------------------------------------------- */

typedef struct device_filter {
    char key[HTTP_QUERY_NAME_MAX + 1];  /* an attribute name: at most SS_CHANNEL_MAX */
    char value[DEVICE_FILTER_VALUE_MAX];
} device_filter;

typedef struct device_list {
    api_call *call;
    api_page page;
    device_filter filters[DEVICE_FILTERS_MAX];
    size_t n_filters;
} device_list;

/* Reads every ?attr.KEY=VALUE; answers 400 naming a bad one. */
static int parse_filters(api_call *call, device_list *dl)
{
    size_t pos = 0;
    http_query_param p;
    while (http_query_next(call->req, &pos, &p)) {
        if (strncmp(p.name, "attr.", 5) != 0)
            continue;
        const char *key = p.name + 5;
        char msg[160];
        if (dl->n_filters >= DEVICE_FILTERS_MAX || !reading_channel_valid(key, strlen(key))) {
            snprintf(msg, sizeof msg, "query parameter '%s': at most 8 attr.NAME filters, "
                     "NAME an attribute name", p.name);
            api_reply_error(call, 400, "bad_parameter", msg);
            return 1;
        }
        device_filter *f = &dl->filters[dl->n_filters];
        if (http_query_get(call->req, p.name, f->value, sizeof f->value) < 0) {
            snprintf(msg, sizeof msg, "query parameter '%s' is at most %d bytes", p.name,
                     DEVICE_FILTER_VALUE_MAX - 1);
            api_reply_error(call, 400, "bad_parameter", msg);
            return 1;
        }
        snprintf(f->key, sizeof f->key, "%.*s", (int)sizeof f->key - 1, key);
        dl->n_filters++;
    }
    return 0;
}

/* A scalar's text as a filter compares it: a string as it is, a number
 * as the API writes it, true / false. */
static int scalar_matches(json_t *v, const char *want)
{
    if (json_is_string(v))
        return strcmp(json_string_value(v), want) == 0;
    if (json_is_true(v) || json_is_false(v))
        return strcmp(json_is_true(v) ? "true" : "false", want) == 0;
    if (!json_is_number(v))
        return 0;
    char *end;
    double x = strtod(want, &end);
    return want[0] && !*end && x == json_number_value(v);
}

/* The attribute equals the value, or is a list (tags) holding it. */
static int filter_matches(json_t *attrs, const device_filter *f)
{
    json_t *v = json_object_get(attrs, f->key);
    if (!json_is_array(v))
        return v && scalar_matches(v, f->value);
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e)
        if (scalar_matches(e, f->value))
            return 1;
    return 0;
}

static int device_matches(const device_list *dl, const store_device *d)
{
    if (dl->n_filters == 0)
        return 1;
    json_error_t jerr;
    json_t *attrs = json_loads(d->attributes, 0, &jerr);
    int ok = json_is_object(attrs);
    for (size_t i = 0; ok && i < dl->n_filters; i++)
        ok = filter_matches(attrs, &dl->filters[i]);
    json_decref(attrs);
    return ok;
}

/* Devices come by name, then id; the store starts after the cursor. */
static int append_device(void *ctx, const store_device *d)
{
    device_list *dl = ctx;
    if (!device_matches(dl, d))
        return 0;
    store_device copy = *d;
    return api_page_add(&dl->page, device_json(dl->call, &copy),
                        json_pack("[s,s]", d->name, d->id));
}

void api_devices_list(api_call *call)
{
    device_list *dl = calloc(1, sizeof *dl);
    if (!dl) {
        api_reply_error(call, 503, "overloaded", "out of memory");
        return;
    }
    dl->call = call;
    if (api_require_org_role(call, STORE_ROLE_VIEWER, NULL) ||
        api_page_begin(call, SS_PAGE_LIMIT_DEFAULT, SS_PAGE_LIMIT_MAX, "ss", &dl->page)) {
        free(dl);
        return;
    }
    int rc = 0;
    if (parse_filters(call, dl))
        rc = 1;
    else if (dl->page.after)
        rc = store_device_list_after(call->db, call->params[0],
                                     api_page_after_text(&dl->page, 0),
                                     api_page_after_text(&dl->page, 1), append_device, dl);
    else
        rc = store_device_list(call->db, call->params[0], append_device, dl);
    if (rc == 1) {  /* answered already */
        json_decref(dl->page.items);
        json_decref(dl->page.after);
    } else {
        api_page_reply(call, rc, &dl->page);
    }
    free(dl);
}

/* ---- one device -------------------------------------------------------------- */

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
    char *attrs = malloc(SS_DEVICE_ATTRIBUTES_MAX + 1);
    json_t *given = json_object_get(body, "attributes");
    if (!attrs || (given && attrs_text(call, given, attrs))) {
        if (!attrs)
            api_reply_error(call, 503, "overloaded", "out of memory");
        free(attrs);
        json_decref(body);
        return;
    }
    store_device *d = malloc(sizeof *d);
    char token[SECRET_TEXT_MAX];
    int rc = d ? aaa_device_create(api_aaa(call), call->params[0], name, desc,
                                   given ? attrs : NULL, d, token)
               : SS_NOMEM;
    json_decref(body);
    free(attrs);
    if (rc)
        api_reply_err(call, rc, "the organisation has as many devices as its quota allows");
    else
        api_reply_secret(call, 201, api_device_json(d), "token", token);
    free(d);
}

void api_device_get(api_call *call)
{
    store_device d;
    if (api_load_device(call, STORE_ROLE_VIEWER, &d))
        return;
    api_reply_json(call, 200, device_json(call, &d));
}

/* The change a PATCH body asks for; answers 400 when it is not one.
 * attrs: room for the merged attributes' text. */
static int parse_patch(api_call *call, const store_device *d, json_t *body,
                       aaa_device_patch *patch, char *attrs)
{
    int bad = 0;
    patch->attributes = patched_attrs(call, d, body, attrs, &bad);
    if (bad)
        return 1;
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
    char attrs[SS_DEVICE_ATTRIBUTES_MAX + 1];
    if (parse_patch(call, &d, body, &patch, attrs)) {
        json_decref(body);
        return;
    }
    int rc = aaa_device_update(api_aaa(call), &d, &patch);
    json_decref(body);  /* after the change: the patch points into it */
    if (rc) {
        api_reply_err(call, rc, NULL);
        return;
    }
    api_reply_json(call, 200, device_json(call, &d));
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
