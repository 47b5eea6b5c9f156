/* api_data_delete.c — DELETE /api/v1/devices/{id}/data: deletes a device's
 * readings in a time range, of some channels or all (SPEC §2).
 *
 * An editor of the device's org (or a `manage` key) may. The range is
 * required, from and to both, or all=true to say "every reading" in so
 * many words: a DELETE that names no range must not erase a history by
 * accident. It runs on the worker pool in steps of
 * SS_DATA_DELETE_CHUNK_ROWS readings, each its own transaction with a pause
 * after it, so ingest commits take the store's writer between steps;
 * latest and channels follow each step (store_delete_readings). Usage
 * already counted stays: it is history. The delete is audited with what it
 * deleted, also when the store failed part way. */
#include "core/clock.h"
#include "core/err.h"
#include "http/api_call.h"
#include "http/api_params.h"

#include <stdio.h>
#include <string.h>

typedef struct delete_params {
    int64_t from, to;
    int all;
    api_channels ch;    /* none named: every channel */
} delete_params;

static int refuse(api_call *call, const char *message)
{
    api_reply_error(call, 400, "bad_parameter", message);
    return 1;
}

/* from and to, both, or all=true alone. */
static int parse_range(api_call *call, delete_params *p)
{
    static const char *const flags[] = {"false", "true"};
    int has_from = 0, has_to = 0;
    if (api_param_time(call, "from", &p->from, &has_from) ||
        api_param_time(call, "to", &p->to, &has_to) ||
        api_param_choice(call, "all", flags, 2, &p->all, "all is true or false"))
        return 1;
    if (p->all && (has_from || has_to))
        return refuse(call, "all=true deletes every reading: give it without from and to");
    if (p->all) {
        p->from = INT64_MIN;
        p->to = INT64_MAX;
        return 0;
    }
    if (!has_from || !has_to)
        return refuse(call, !has_from ? "from is required (with to), or all=true to delete "
                                        "every reading"
                                      : "to is required (with from), or all=true to delete "
                                        "every reading");
    return p->from < p->to ? 0 : refuse(call, "from must be before to");
}

/* Deletes the range of one channel (NULL: all) to its end, step by step.
 * OUT deleted: what it deleted, also when a step failed. */
static int delete_channel(api_call *call, const char *device_id, const char *channel,
                          const delete_params *p, int64_t *deleted)
{
    store_range r = {.device_id = device_id, .channel = channel, .from = p->from, .to = p->to};
    int more = 1, rc = SS_OK;
    while (more && rc == SS_OK) {
        size_t n = 0;
        int64_t started = clock_mono_ms();
        rc = store_delete_readings(call->db, &r, SS_DATA_DELETE_CHUNK_ROWS, &n, &more);
        *deleted += (int64_t)n;
        int64_t took = clock_mono_ms() - started;
        if (more)
            uv_sleep(took > (int64_t)SS_PURGE_PAUSE_MS ? (unsigned)took : SS_PURGE_PAUSE_MS);
    }
    return rc;
}

static json_t *audit_detail(const delete_params *p, int64_t deleted, int rc)
{
    json_t *detail = json_object();
    json_t *channels = json_array();
    for (size_t i = 0; i < p->ch.n; i++)
        json_array_append_new(channels, json_string(p->ch.names[i]));
    json_object_set_new(detail, "channels", p->ch.n ? channels : json_string("all"));
    if (!p->ch.n)
        json_decref(channels);
    if (p->all) {
        json_object_set_new(detail, "range", json_string("all"));
    } else {
        json_object_set_new(detail, "from", json_integer(p->from));
        json_object_set_new(detail, "to", json_integer(p->to));
    }
    json_object_set_new(detail, "deleted", json_integer(deleted));
    if (rc)
        json_object_set_new(detail, "incomplete", json_true());
    return detail;
}

void api_device_data_delete(api_call *call)
{
    store_device d;
    delete_params p = {0};
    /* The router has refused any parameter the route does not declare. */
    if (api_load_device(call, STORE_ROLE_EDITOR, &d) || parse_range(call, &p) || api_param_channels(call, &p.ch))
        return;
    int64_t deleted = 0;
    int rc = SS_OK;
    if (p.ch.n == 0)
        rc = delete_channel(call, d.id, NULL, &p, &deleted);
    for (size_t i = 0; i < p.ch.n && rc == SS_OK; i++)
        rc = delete_channel(call, d.id, p.ch.names[i], &p, &deleted);
    char target[SS_ID_LEN + 16];
    snprintf(target, sizeof target, "device:%s", d.id);
    api_audit(call, d.org_id, "data.delete", target, audit_detail(&p, deleted, rc));
    if (rc) {
        api_reply_store_error(call, rc);
        return;
    }
    api_reply_json(call, 200, json_pack("{s:I}", "deleted", (json_int_t)deleted));
}
