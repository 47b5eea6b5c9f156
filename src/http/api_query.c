/* api_query.c — reading data back: channels, latest values, series.
 *
 * A series query answers at most `limit` points (or buckets) per channel;
 * one that had more says so with a cursor per channel in `next`, and the
 * same query with that cursor goes on where the page ended, so a client
 * pages to the end and sees every point once, in either order. */
#include "aaa/dashboards.h"
#include "aaa/secret.h"
#include "core/clock.h"
#include "core/err.h"
#include "http/api_call.h"
#include "http/api_page.h"
#include "http/api_params.h"
#include "core/reading.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Room for a cursor: order, position and bucket width as numbers, and a
 * channel name. */
#define QUERY_CURSOR_MAX (2 * 24 + SS_CHANNEL_MAX + 8)

/* Channels come by name (store_channel_list): at most 1024 a device, so
 * the walk starts at the first and skips to the cursor; by default a page
 * holds them all, as the answer always did. */
static int append_channel(void *ctx, const store_channel *ch)
{
    api_page *page = ctx;
    json_t *key = json_pack("[s]", ch->name);
    if (!api_page_after(page, key, "+")) {
        json_decref(key);
        return 0;
    }
    json_t *item = json_pack("{s:s,s:I,s:I,s:f}", "name", ch->name, "count",
                             (json_int_t)ch->count, "last_ts", (json_int_t)ch->last_ts,
                             "last_value", ch->last_value);
    return api_page_add(page, item, key);
}

void api_device_channels(api_call *call)
{
    store_device d;
    api_page page;
    if (api_load_device(call, STORE_ROLE_VIEWER, &d) ||
        api_page_begin(call, SS_DEVICE_CHANNELS_MAX, SS_PAGE_LIMIT_MAX, "s", &page))
        return;
    int rc = store_channel_list(call->db, d.id, append_channel, &page);
    api_page_reply(call, rc, &page);
}

static int add_latest(void *ctx, const store_channel *ch)
{
    json_object_set_new(ctx, ch->name, json_pack("{s:I,s:f}", "ts", (json_int_t)ch->last_ts,
                                                 "value", ch->last_value));
    return 0;
}

/* What a dashboard user may not read leaves the answer (the rule of
 * aaa_check_dashboard_data), the org's dashboards read once for every
 * channel of the device. 0 or a store error. */
static int keep_shown(api_call *call, const store_device *d, json_t *obj)
{
    size_t n = json_object_size(obj);
    if (n == 0)
        return 0;
    const char **names = calloc(n, sizeof *names);
    unsigned char *shown = calloc(n, 1);
    int rc = names && shown ? 0 : SS_NOMEM;
    size_t i = 0;
    const char *name;
    json_t *value;
    json_object_foreach(obj, name, value)
        if (i < n)
            names[i++] = name;
    if (rc == 0)
        rc = aaa_dashboard_shown(call->db, d, names, n, shown);
    /* Deleted by a copy of its name: the object's own is freed with it. */
    for (i = 0; rc == 0 && i < n; i++)
        if (!shown[i]) {
            char key[SS_CHANNEL_MAX + 1];
            snprintf(key, sizeof key, "%s", names[i]);
            json_object_del(obj, key);
        }
    free(names);
    free(shown);
    return rc;
}

/* A dashboard user is answered the channels a dashboard shows, the rest
 * left out as if absent: the device is one a dashboard shows. */
void api_device_latest(api_call *call)
{
    store_device d;
    if (api_load_device(call, STORE_ROLE_DASHBOARD, &d))
        return;
    int rc = aaa_check_dashboard_data(call->db, &call->who, &d, NULL, 0);
    int shown_only = rc == SS_FORBIDDEN && call->who.kind == AAA_PRINCIPAL_PERSON;
    if (rc && !shown_only) {
        api_reply_err(call, rc, NULL);
        return;
    }
    json_t *obj = json_object();
    rc = store_channel_latest(call->db, d.id, add_latest, obj);
    if (rc == 0 && shown_only)
        rc = keep_shown(call, &d, obj);
    api_reply_list(call, rc, obj);
}

typedef struct data_params {
    store_query q;
    int64_t every;
    store_agg fn;
    api_channels ch;    /* none named: every channel of the device */
    char cursor[QUERY_CURSOR_MAX];
} data_params;

static const char *const agg_names[] = {"avg", "min", "max", "sum", "count", "first", "last"};

/* fn picks how a bucket is made: alone it would silently answer raw
 * points. every alone takes avg. */
static int check_fn_every(api_call *call, const data_params *p)
{
    char text[API_PARAM_MAX];
    if (p->every || http_query_get(call->req, "fn", text, sizeof text) == 0)
        return 0;
    api_reply_error(call, 400, "bad_parameter", "fn needs every (the bucket width in ms)");
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
    /* The router has refused any parameter the route does not declare. */
    if (api_param_time(call, "from", &p->q.from, NULL) ||
        api_param_time(call, "to", &p->q.to, NULL) ||
        api_param_int(call, "limit", 1, SS_QUERY_LIMIT_MAX, &limit) ||
        api_param_int(call, "every", 1, INT64_C(366) * 24 * 3600 * 1000, &p->every) ||
        api_param_choice(call, "order", orders, 2, &order, "order is asc or desc") ||
        api_param_choice(call, "fn", agg_names, 7, &fn,
                         "fn is avg, min, max, sum, count, first or last") ||
        check_fn_every(call, p) ||
        api_param_channels(call, &p->ch) ||
        api_param_text(call, "cursor", p->cursor, sizeof p->cursor,
                       "cursor is the value a previous answer gave in next") < 0)
        return 1;
    if (p->q.from >= p->q.to) {
        api_reply_error(call, 400, "bad_parameter", "from must be before to");
        return 1;
    }
    p->q.limit = (size_t)limit;
    p->q.desc = order;
    p->fn = (store_agg)fn;
    return 0;
}

/* ---- cursors ------------------------------------------------------------------ */

/* A cursor is "<a|d>.<position>.<every>.<channel>": where the next page
 * starts (asc: its from; desc: its to), for a query of that order, bucket
 * width (0: raw points) and channel. Clients treat it as opaque. */
static void cursor_make(char out[QUERY_CURSOR_MAX], const data_params *p, const char *channel,
                        int64_t position)
{
    snprintf(out, QUERY_CURSOR_MAX, "%c.%lld.%lld.%s", p->q.desc ? 'd' : 'a',
             (long long)position, (long long)p->every, channel);
}

/* Reads a cursor into its parts; OUT channel points into text. */
static int cursor_read(char *text, int *desc, int64_t *position, int64_t *every,
                       const char **channel)
{
    char *end = NULL;
    if ((text[0] != 'a' && text[0] != 'd') || text[1] != '.')
        return SS_INVAL;
    *desc = text[0] == 'd';
    long long pos = strtoll(text + 2, &end, 10);
    if (end == text + 2 || *end != '.')
        return SS_INVAL;
    char *rest = end + 1;
    long long ev = strtoll(rest, &end, 10);
    if (end == rest || *end != '.' || ev < 0)
        return SS_INVAL;
    *position = pos;
    *every = ev;
    *channel = end + 1;
    return reading_channel_valid(*channel, strlen(*channel)) ? SS_OK : SS_INVAL;
}

/* Continues the query a cursor came from: the range starts (asc) or ends
 * (desc) where the last page did, and the channel is the cursor's. The
 * cursor must come from a query of the same order and bucket width, and
 * name the channel asked for, if any. Answers 400 and returns nonzero
 * when it does not. */
static int apply_cursor(api_call *call, data_params *p)
{
    if (!p->cursor[0])
        return 0;
    int desc = 0;
    int64_t position = 0, every = 0;
    const char *channel = NULL;
    int rc = cursor_read(p->cursor, &desc, &position, &every, &channel);
    if (rc == SS_OK && (desc != p->q.desc || every != p->every ||
                        (p->ch.n && (p->ch.n > 1 || strcmp(p->ch.names[0], channel) != 0))))
        rc = SS_CONFLICT;
    if (rc != SS_OK) {
        api_reply_error(call, 400, "bad_parameter",
                        rc == SS_INVAL ? "cursor is not one this server gave"
                                       : "cursor belongs to a query of another order, "
                                         "every or channel: repeat that query with it");
        return 1;
    }
    p->ch.names[0] = channel;  /* into p->cursor */
    p->ch.n = 1;
    if (desc && position < p->q.to)
        p->q.to = position;
    if (!desc && position > p->q.from)
        p->q.from = position;
    return 0;
}

/* ---- one channel ------------------------------------------------------------------ */

typedef struct page {
    json_t *points;
    size_t limit;
    int64_t last_ts;    /* of the last point kept */
    int more;           /* a point past the limit exists */
} page;

/* Keeps up to limit points; one more only tells that the page is not the
 * last. */
static int append_point(void *ctx, int64_t ts, double value)
{
    page *pg = ctx;
    if (json_array_size(pg->points) >= pg->limit) {
        pg->more = 1;
        return 1;
    }
    json_array_append_new(pg->points, json_pack("[I,f]", (json_int_t)ts, value));
    pg->last_ts = ts;
    return 0;
}

static int query_channel(api_call *call, data_params *p, const char *channel, json_t *series,
                         json_t *next)
{
    page pg = {.points = json_array(), .limit = p->q.limit};
    store_query q = p->q;
    q.channel = channel;
    q.limit = p->q.limit + 1;
    int rc = p->every ? store_query_buckets(call->db, &q, p->every, p->fn, append_point, &pg)
                      : store_query_points(call->db, &q, append_point, &pg);
    json_object_set_new(series, channel, pg.points);
    if (rc || !pg.more)
        return rc;
    /* Descending, the next page ends where this one's last point was;
     * ascending, it starts just past it (a bucket's width past it). */
    int64_t position = p->q.desc ? pg.last_ts : pg.last_ts + (p->every ? p->every : 1);
    char cursor[QUERY_CURSOR_MAX];
    cursor_make(cursor, p, channel, position);
    json_object_set_new(next, channel, json_string(cursor));
    return 0;
}

/* Collects names up to one past the cap, then stops: one more is enough to
 * know the device has too many to answer them all. */
static int add_channel_name(void *ctx, const char *name)
{
    json_array_append_new(ctx, json_string(name));
    return json_array_size(ctx) > API_CHANNELS_MAX;
}

/* Every channel of a device that has at most API_CHANNELS_MAX; past that
 * the caller must choose (a 400 naming `channel`), never a silent cut. */
static int all_channels(api_call *call, data_params *p, json_t *names)
{
    int rc = store_channel_names(call->db, p->q.device_id, add_channel_name, names);
    if (rc || json_array_size(names) <= API_CHANNELS_MAX)
        return rc;
    api_reply_error(call, 400, "bad_request",
                    "channel: the device has more than 32 channels; "
                    "name up to 32 of them with channel=a,b,...");
    return 1;
}

/* The channels asked for, or every channel of the device when none is. */
static int channel_names(api_call *call, data_params *p, json_t *names)
{
    if (!p->ch.n)
        return all_channels(call, p, names);
    for (size_t i = 0; i < p->ch.n; i++)
        json_array_append_new(names, json_string(p->ch.names[i]));
    return 0;
}

static int query_all(api_call *call, data_params *p, json_t *series, json_t *next)
{
    json_t *names = json_array();
    int rc = channel_names(call, p, names);
    size_t i;
    json_t *name;
    json_array_foreach(names, i, name) {
        if (rc)
            break;
        rc = query_channel(call, p, json_string_value(name), series, next);
    }
    json_decref(names);
    return rc;
}

/* May the caller read these channels of d (none named: every one)? 0 or
 * answered. */
static int check_channels(api_call *call, const store_device *d, const api_channels *ch)
{
    int rc = aaa_check_dashboard_data(call->db, &call->who, d, (const char *const *)ch->names,
                                      ch->n);
    if (rc == 0)
        return 0;
    /* Past api_load_device, a person refused here is a dashboard user. */
    api_reply_err(call, rc,
                  rc == SS_FORBIDDEN && call->who.kind == AAA_PRINCIPAL_PERSON
                      ? "a dashboard user reads only channels a dashboard of the organisation "
                        "shows, each named with channel="
                      : NULL);
    return 1;
}

void api_device_data(api_call *call)
{
    store_device d;
    data_params p = {0};
    if (api_load_device(call, STORE_ROLE_DASHBOARD, &d) || parse_data_params(call, &p) ||
        apply_cursor(call, &p) || check_channels(call, &d, &p.ch))
        return;
    p.q.device_id = d.id;
    json_t *series = json_object(), *next = json_object();
    int rc = query_all(call, &p, series, next);
    if (rc) {
        json_decref(series);
        json_decref(next);
        if (rc != 1)
            api_reply_store_error(call, rc);
        return;
    }
    json_t *answer = json_pack("{s:o}", "series", series);
    if (json_object_size(next) > 0)
        json_object_set_new(answer, "next", next);
    else
        json_decref(next);
    api_reply_json(call, 200, answer);
}
