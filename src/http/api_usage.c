/* api_usage.c — accounting read back (usage, session records) and quotas. */
#include "aaa/quota.h"
#include "aaa/secret.h"
#include "core/clock.h"
#include "core/err.h"
#include "aaa/orgs.h"
#include "http/api_call.h"
#include "http/api_page.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define USAGE_PARAM_MAX 64
/* Orgs summed by include_children: the store takes this many at once. */
#define USAGE_ORGS_MAX 1024
/* Default windows: a day of hours, a month of days. */
#define USAGE_HOURS_DEFAULT (24 * STORE_HOUR_MS)
#define USAGE_DAYS_DEFAULT (31 * STORE_DAY_MS)
/* Times past this (year 2100) are refused: far beyond any usage, and far
 * from overflowing when rounded to buckets. */
#define USAGE_TIME_MAX 4102444800000LL
#define SESSIONS_LIMIT_DEFAULT 100

typedef struct usage_params {
    int64_t from, to, every;
    int csv;
    int children;
} usage_params;

static int param_text(api_call *call, const char *name, char *out, size_t cap)
{
    int rc = http_query_get(call->req, name, out, cap);
    return rc < 0 ? -1 : rc;
}

static int parse_usage_params(api_call *call, usage_params *p)
{
    char text[USAGE_PARAM_MAX];
    p->every = STORE_HOUR_MS;
    int rc = param_text(call, "every", text, sizeof text);
    if (rc > 0 && strcmp(text, "day") == 0)
        p->every = STORE_DAY_MS;
    else if (rc != 0 && !(rc > 0 && strcmp(text, "hour") == 0))
        goto bad;
    rc = param_text(call, "format", text, sizeof text);
    p->csv = rc > 0 && strcmp(text, "csv") == 0;
    if (rc != 0 && !p->csv && !(rc > 0 && strcmp(text, "json") == 0))
        goto bad;
    rc = param_text(call, "include_children", text, sizeof text);
    p->children = rc > 0 && strcmp(text, "true") == 0;
    if (rc != 0 && !p->children && !(rc > 0 && strcmp(text, "false") == 0))
        goto bad;
    p->to = call->now_ms;
    rc = param_text(call, "to", text, sizeof text);
    if (rc < 0 || (rc > 0 && clock_parse_time(text, &p->to)))
        goto bad;
    p->from = p->to - (p->every == STORE_DAY_MS ? USAGE_DAYS_DEFAULT : USAGE_HOURS_DEFAULT);
    rc = param_text(call, "from", text, sizeof text);
    if (rc < 0 || (rc > 0 && clock_parse_time(text, &p->from)) || p->from > p->to)
        goto bad;
    if (p->from < 0 || p->to > USAGE_TIME_MAX)
        goto bad;
    /* Whole buckets: from rounds down, to rounds up. */
    p->from = p->from / p->every * p->every;
    p->to = (p->to + p->every - 1) / p->every * p->every;
    return 0;
bad:
    api_reply_error(call, 400, "bad_request",
                    "every is hour or day, format json or csv, include_children true or false, "
                    "from/to ms or RFC 3339 with from <= to");
    return 1;
}

typedef struct org_ids {
    char ids[USAGE_ORGS_MAX][SS_ID_LEN + 1];
    const char *ptrs[USAGE_ORGS_MAX];
    size_t n;
} org_ids;

static int add_org_id(void *ctx, const char *id)
{
    org_ids *o = ctx;
    if (o->n >= USAGE_ORGS_MAX)
        return 1;
    snprintf(o->ids[o->n], sizeof o->ids[o->n], "%s", id);
    o->ptrs[o->n] = o->ids[o->n];
    o->n++;
    return 0;
}

typedef struct usage_out {
    int csv;
    json_t *rows;
    ss_buf text;
} usage_out;

static int add_usage_row(void *ctx, const store_usage *u)
{
    usage_out *out = ctx;
    if (out->csv) {
        buf_printf(&out->text, "%lld,%s,%lld,%lld,%lld,%lld,%lld,%lld\n", (long long)u->bucket,
                   u->protocol, (long long)u->bytes_in, (long long)u->bytes_out,
                   (long long)u->messages, (long long)u->readings, (long long)u->rejected,
                   (long long)u->api_requests);
        return 0;
    }
    json_array_append_new(out->rows,
                          json_pack("{s:I,s:s,s:I,s:I,s:I,s:I,s:I,s:I}", "bucket", (json_int_t)u->bucket,
                                    "protocol", u->protocol, "bytes_in", (json_int_t)u->bytes_in,
                                    "bytes_out", (json_int_t)u->bytes_out, "messages",
                                    (json_int_t)u->messages, "readings", (json_int_t)u->readings,
                                    "rejected", (json_int_t)u->rejected, "api_requests",
                                    (json_int_t)u->api_requests));
    return 0;
}

void api_usage(api_call *call)
{
    usage_params p;
    if (api_require_org_role(call, STORE_ROLE_ADMIN, NULL) ||
        parse_usage_params(call, &p))
        return;
    org_ids *orgs = calloc(1, sizeof *orgs);
    if (!orgs) {
        api_reply_error(call, 503, "overloaded", "out of memory");
        return;
    }
    int rc = p.children ? store_org_subtree(call->db, call->params[0], add_org_id, orgs)
                        : add_org_id(orgs, call->params[0]);
    if (rc == 0 && orgs->n >= USAGE_ORGS_MAX) {
        free(orgs);
        api_reply_error(call, 413, "too_large",
                        "more than 1024 organisations below this one: ask for them one by one");
        return;
    }
    usage_out out = {.csv = p.csv, .rows = json_array(), .text = SS_BUF_INIT};
    if (p.csv)
        buf_append_str(&out.text, "bucket,protocol,bytes_in,bytes_out,messages,readings,rejected,"
                                  "api_requests\n");
    if (rc == 0)
        rc = store_usage_query(call->db, orgs->ptrs, orgs->n, p.from, p.to, p.every, add_usage_row,
                               &out);
    free(orgs);
    if (rc) {
        json_decref(out.rows);
        buf_free(&out.text);
        api_reply_store_error(call, rc);
        return;
    }
    if (p.csv) {
        json_decref(out.rows);
        buf_free(&call->body);
        call->body = out.text;
        call->status = 200;
        call->content_type = "text/csv; charset=utf-8";
        return;
    }
    api_reply_json(call, 200, json_pack("{s:s,s:s,s:I,s:I,s:b,s:o}", "org_id", call->params[0],
                                        "every", p.every == STORE_DAY_MS ? "day" : "hour", "from",
                                        (json_int_t)p.from, "to", (json_int_t)p.to,
                                        "include_children", p.children, "usage", out.rows));
}

/* ---- session records ------------------------------------------------------ */

/* Records come newest first, then by id descending: the store starts
 * after the cursor's (started_at, id). */
static int add_session(void *ctx, const store_acct_session *s)
{
    return api_page_add(ctx, json_pack(
        "{s:s,s:s,s:s,s:s,s:s,s:s,s:I,s:o,s:o,s:I,s:I,s:I,s:I,s:I,s:I}", "id", s->id, "kind",
        s->kind, "principal_id", s->principal_id, "org_id", s->org_id, "protocol", s->protocol,
        "address", s->addr, "started_at", (json_int_t)s->started_at, "ended_at",
        s->ended_at ? json_integer(s->ended_at) : json_null(), "end_reason",
        s->end_reason[0] ? json_string(s->end_reason) : json_null(), "bytes_in",
        (json_int_t)s->bytes_in, "bytes_out", (json_int_t)s->bytes_out, "messages",
        (json_int_t)s->messages, "readings", (json_int_t)s->readings, "refused",
        (json_int_t)s->refused, "api_requests", (json_int_t)s->api_requests),
        json_pack("[I,s]", (json_int_t)s->started_at, s->id));
}

/* Every record carries the org it acted in: a person's login has one
 * record per org it used, so an org's admins see only their org. */
void api_sessions(api_call *call)
{
    if (api_require_org_role(call, STORE_ROLE_ADMIN, NULL))
        return;
    char kind[16] = "", active[8] = "";
    int rk = http_query_get(call->req, "kind", kind, sizeof kind);
    int ra = http_query_get(call->req, "active", active, sizeof active);
    if (rk < 0 || (kind[0] && strcmp(kind, "device") && strcmp(kind, "user") &&
                   strcmp(kind, "apikey"))) {
        api_reply_error(call, 400, "bad_parameter",
                        "query parameter 'kind' is device, user or apikey");
        return;
    }
    if (ra < 0 || (active[0] && strcmp(active, "true") && strcmp(active, "false"))) {
        api_reply_error(call, 400, "bad_parameter", "query parameter 'active' is true or false");
        return;
    }
    api_page page;
    if (api_page_begin(call, SESSIONS_LIMIT_DEFAULT, SS_PAGE_LIMIT_MAX, "is", &page))
        return;
    const char *before_id = page.after ? api_page_after_text(&page, 1) : "";
    int64_t before = page.after ? api_page_after_int(&page, 0) : INT64_MAX;
    /* One past the page tells whether there is more. */
    int rc = store_acct_session_list_before(call->db, call->params[0], kind[0] ? kind : NULL,
                                            strcmp(active, "true") == 0, before, before_id,
                                            page.limit + 1, add_session, &page);
    api_page_reply(call, rc, &page);
}

/* ---- quotas ---------------------------------------------------------------- */

static json_t *quota_json(const store_quota *q)
{
    return json_pack("{s:s,s:I,s:I,s:I}", "org_id", q->org_id, "max_devices",
                     (json_int_t)q->max_devices, "max_readings_per_day",
                     (json_int_t)q->max_readings_per_day, "max_bytes_per_day",
                     (json_int_t)q->max_bytes_per_day);
}

void api_quota_get(api_call *call)
{
    if (api_require_org_role(call, STORE_ROLE_ADMIN, NULL))
        return;
    store_quota q;
    int rc = store_quota_get(call->db, call->params[0], &q);
    if (rc) {
        api_reply_store_error(call, rc);
        return;
    }
    snprintf(q.org_id, sizeof q.org_id, "%s", call->params[0]);
    api_reply_json(call, 200, quota_json(&q));
}

/* A quota is set from above (aaa_may_set_quota): the request acts in
 * the org the caller was last found to stand in. */
static int require_quota_setter(api_call *call, const store_org *org)
{
    char acting_in[SS_ID_LEN + 1];
    const char *why = NULL;
    int rc = aaa_may_set_quota(call->db, &call->who, org, acting_in, &why);
    if (acting_in[0] && api_enter_org(call, acting_in))
        return 1;
    if (rc)
        api_reply_err(call, rc, why);
    return rc != 0;
}

/* A field of the body, when given; *out keeps its value otherwise. */
static int quota_field(json_t *body, const char *key, int64_t *out)
{
    json_t *v = json_object_get(body, key);
    if (!v)
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return 1;
    *out = json_integer_value(v);
    return 0;
}

void api_quota_put(api_call *call)
{
    store_org org;
    if (api_authenticate(call))
        return;
    int rc = secret_id_valid(call->params[0]) ? store_org_get(call->db, call->params[0], &org)
                                              : SS_NOT_FOUND;
    if (rc) {
        api_reply_store_error(call, rc);
        return;
    }
    if (require_quota_setter(call, &org))
        return;
    json_t *body = api_body_object(call);
    if (!body)
        return;
    /* Fields not given keep their value: tightening one limit never lifts
     * another. */
    store_quota q = {0};
    rc = store_quota_get(call->db, org.id, &q);
    if (rc) {
        json_decref(body);
        api_reply_store_error(call, rc);
        return;
    }
    snprintf(q.org_id, sizeof q.org_id, "%s", org.id);
    int bad = quota_field(body, "max_devices", &q.max_devices) ||
              quota_field(body, "max_readings_per_day", &q.max_readings_per_day) ||
              quota_field(body, "max_bytes_per_day", &q.max_bytes_per_day);
    json_decref(body);
    if (bad) {
        api_reply_error(call, 400, "bad_request",
                        "max_devices, max_readings_per_day and max_bytes_per_day are whole "
                        "numbers >= 0 (0: unlimited)");
        return;
    }
    rc = aaa_org_set_quota(api_aaa(call), &q);
    if (rc) {
        api_reply_store_error(call, rc);
        return;
    }
    api_reply_json(call, 200, quota_json(&q));
}
