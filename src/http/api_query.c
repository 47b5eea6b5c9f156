/* api_query.c — reading data back: channels, latest values, series. */
#include "aaa/secret.h"
#include "core/clock.h"
#include "core/err.h"
#include "http/api_call.h"
#include "core/reading.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Channels one data request may name. */
#define QUERY_CHANNELS_MAX 32
/* Room for the channel list of a query: 32 names of 64 and commas. */
#define QUERY_CHANNEL_LIST_MAX (QUERY_CHANNELS_MAX * (SS_CHANNEL_MAX + 1))
#define QUERY_PARAM_MAX 64

static int append_channel(void *ctx, const store_channel *ch)
{
    json_array_append_new(ctx, json_pack("{s:s,s:I,s:I,s:f}", "name", ch->name, "count",
                                         (json_int_t)ch->count, "last_ts",
                                         (json_int_t)ch->last_ts, "last_value", ch->last_value));
    return 0;
}

void api_device_channels(api_call *call)
{
    store_device d;
    if (api_load_device(call, STORE_ROLE_VIEWER, &d))
        return;
    json_t *list = json_array();
    int rc = store_channel_list(call->db, d.id, append_channel, list);
    api_reply_list(call, rc, list);
}

static int add_latest(void *ctx, const store_channel *ch)
{
    json_object_set_new(ctx, ch->name, json_pack("{s:I,s:f}", "ts", (json_int_t)ch->last_ts,
                                                 "value", ch->last_value));
    return 0;
}

void api_device_latest(api_call *call)
{
    store_device d;
    if (api_load_device(call, STORE_ROLE_VIEWER, &d))
        return;
    json_t *obj = json_object();
    int rc = store_channel_latest(call->db, d.id, add_latest, obj);
    api_reply_list(call, rc, obj);
}

typedef struct data_params {
    store_query q;
    int64_t every;
    store_agg fn;
    char channels[QUERY_CHANNEL_LIST_MAX];
} data_params;

/* A query parameter as a time (ms or RFC 3339); *out unchanged when absent. */
static int param_time(api_call *call, const char *name, int64_t *out)
{
    char text[QUERY_PARAM_MAX];
    int rc = http_query_get(call->req, name, text, sizeof text);
    if (rc == 0)
        return 0;
    if (rc < 0 || clock_parse_time(text, out)) {
        char msg[128];
        snprintf(msg, sizeof msg, "%s must be ms since the epoch or RFC 3339", name);
        api_reply_error(call, 400, "bad_request", msg);
        return 1;
    }
    return 0;
}

static int param_int(api_call *call, const char *name, int64_t min, int64_t max, int64_t *out)
{
    char text[QUERY_PARAM_MAX], *end;
    int rc = http_query_get(call->req, name, text, sizeof text);
    if (rc == 0)
        return 0;
    long long v = rc < 0 ? 0 : strtoll(text, &end, 10);
    if (rc < 0 || !text[0] || *end || v < min || v > max) {
        char msg[128];
        snprintf(msg, sizeof msg, "%s must be an integer from %lld to %lld", name,
                 (long long)min, (long long)max);
        api_reply_error(call, 400, "bad_request", msg);
        return 1;
    }
    *out = v;
    return 0;
}

static const char *const agg_names[] = {"avg", "min", "max", "sum", "count", "first", "last"};

static int param_choice(api_call *call, const char *name, const char *const *choices, int n,
                        int *out, const char *message)
{
    char text[QUERY_PARAM_MAX];
    int rc = http_query_get(call->req, name, text, sizeof text);
    if (rc == 0)
        return 0;
    for (int i = 0; rc > 0 && i < n; i++) {
        if (strcmp(text, choices[i]) == 0) {
            *out = i;
            return 0;
        }
    }
    api_reply_error(call, 400, "bad_request", message);
    return 1;
}

static int parse_data_params(api_call *call, data_params *p)
{
    static const char *const orders[] = {"asc", "desc"};
    int64_t limit = SS_QUERY_LIMIT_DEFAULT;
    int order = 0, fn = STORE_AGG_AVG;
    p->q.from = 0;
    p->q.to = call->now_ms + SS_TS_FUTURE_MAX_MS + 1;
    p->every = 0;
    if (param_time(call, "from", &p->q.from) || param_time(call, "to", &p->q.to) ||
        param_int(call, "limit", 1, SS_QUERY_LIMIT_MAX, &limit) ||
        param_int(call, "every", 1, INT64_C(366) * 24 * 3600 * 1000, &p->every) ||
        param_choice(call, "order", orders, 2, &order, "order is asc or desc") ||
        param_choice(call, "fn", agg_names, 7, &fn,
                     "fn is avg, min, max, sum, count, first or last"))
        return 1;
    int rc = http_query_get(call->req, "channel", p->channels, sizeof p->channels);
    if (rc < 0) {
        api_reply_error(call, 400, "bad_request", "channel lists at most 32 channel names");
        return 1;
    }
    p->q.limit = (size_t)limit;
    p->q.desc = order;
    p->fn = (store_agg)fn;
    return 0;
}

static int append_point(void *ctx, int64_t ts, double value)
{
    json_array_append_new(ctx, json_pack("[I,f]", (json_int_t)ts, value));
    return 0;
}

static int query_channel(api_call *call, data_params *p, const char *channel, json_t *series)
{
    json_t *points = json_array();
    p->q.channel = channel;
    int rc = p->every ? store_query_buckets(call->db, &p->q, p->every, p->fn, append_point, points)
                      : store_query_points(call->db, &p->q, append_point, points);
    json_object_set_new(series, channel, points);
    return rc;
}

/* Collects names up to one past the cap, then stops: one more is enough to
 * know the device has too many to answer them all. */
static int add_channel_name(void *ctx, const char *name)
{
    json_array_append_new(ctx, json_string(name));
    return json_array_size(ctx) > QUERY_CHANNELS_MAX;
}

/* Every channel of a device that has at most QUERY_CHANNELS_MAX; past that
 * the caller must choose (a 400 naming `channel`), never a silent cut. */
static int all_channels(api_call *call, data_params *p, json_t *names)
{
    int rc = store_channel_names(call->db, p->q.device_id, add_channel_name, names);
    if (rc || json_array_size(names) <= QUERY_CHANNELS_MAX)
        return rc;
    api_reply_error(call, 400, "bad_request",
                    "channel: the device has more than 32 channels; "
                    "name up to 32 of them with channel=a,b,...");
    return 1;
}

/* The channels asked for, or every channel of the device when none is. */
static int channel_names(api_call *call, data_params *p, json_t *names)
{
    if (!p->channels[0])
        return all_channels(call, p, names);
    char *save = NULL;
    for (char *name = strtok_r(p->channels, ",", &save); name; name = strtok_r(NULL, ",", &save)) {
        if (!reading_channel_valid(name, strlen(name)) || json_array_size(names) >= QUERY_CHANNELS_MAX) {
            api_reply_error(call, 400, "bad_request",
                            "channel is a comma-separated list of up to 32 channel names");
            return 1;
        }
        json_array_append_new(names, json_string(name));
    }
    return 0;
}

void api_device_data(api_call *call)
{
    store_device d;
    data_params p = {0};
    if (api_load_device(call, STORE_ROLE_VIEWER, &d) || parse_data_params(call, &p))
        return;
    p.q.device_id = d.id;
    json_t *names = json_array(), *series = json_object();
    int rc = channel_names(call, &p, names);
    size_t i;
    json_t *name;
    json_array_foreach(names, i, name) {
        if (rc)
            break;
        rc = query_channel(call, &p, json_string_value(name), series);
    }
    json_decref(names);
    if (rc) {
        json_decref(series);
        if (rc != 1)
            api_reply_store_error(call, rc);
        return;
    }
    api_reply_json(call, 200, json_pack("{s:o}", "series", series));
}
