/* api_audit.c — reading the audit log. There is no endpoint that writes,
 * changes or deletes an entry: entries come only from api_audit. */
#include "core/clock.h"
#include "core/err.h"
#include "http/api_call.h"

#include <stdio.h>
#include <stdlib.h>

#define AUDIT_PARAM_MAX 64

static int append_entry(void *ctx, const store_audit *a)
{
    json_error_t jerr;
    json_t *detail = json_loads(a->detail, 0, &jerr);
    if (!detail)  /* entries from before details were JSON objects */
        detail = a->detail[0] ? json_string(a->detail) : json_object();
    json_array_append_new(ctx, json_pack("{s:I,s:I,s:s,s:s,s:s,s:s,s:s,s:s,s:o}", "id",
                                         (json_int_t)a->id, "ts", (json_int_t)a->ts, "org_id",
                                         a->org_id, "actor", a->actor, "actor_name",
                                         a->actor_name, "action", a->action, "target",
                                         a->target, "address", a->addr, "detail", detail));
    return 0;
}

static int audit_params(api_call *call, int64_t *from, int64_t *to, size_t *limit)
{
    char text[AUDIT_PARAM_MAX];
    *from = 0;
    *to = INT64_MAX;
    *limit = SS_AUDIT_LIMIT_DEFAULT;
    int rc = http_query_get(call->req, "from", text, sizeof text);
    if (rc < 0 || (rc > 0 && clock_parse_time(text, from)))
        goto bad;
    rc = http_query_get(call->req, "to", text, sizeof text);
    if (rc < 0 || (rc > 0 && clock_parse_time(text, to)))
        goto bad;
    rc = http_query_get(call->req, "limit", text, sizeof text);
    if (rc > 0) {
        char *end;
        long long v = strtoll(text, &end, 10);
        if (*end || v < 1 || v > (long long)SS_AUDIT_LIMIT_MAX)
            goto bad;
        *limit = (size_t)v;
    }
    if (rc >= 0)
        return 0;
bad:
    api_reply_error(call, 400, "bad_request",
                    "from/to are ms or RFC 3339; limit is 1 to 10000");
    return 1;
}

static void list_for(api_call *call, const char *org_id)
{
    int64_t from, to;
    size_t limit;
    if (audit_params(call, &from, &to, &limit))
        return;
    json_t *list = json_array();
    int rc = store_audit_list(call->db, org_id, from, to, limit, append_entry, list);
    api_reply_list(call, rc, list);
}

void api_audit_list(api_call *call)
{
    if (api_require_org_role(call, STORE_ROLE_ADMIN, NULL))
        return;
    list_for(call, call->params[0]);
}

/* The superadmin's view of actions outside any org (users, passwords). */
void api_audit_list_all(api_call *call)
{
    if (api_require_user(call))
        return;
    if (aaa_require_superadmin(&call->who)) {
        api_reply_error(call, 403, "forbidden", "only the superadmin reads this log");
        return;
    }
    list_for(call, "");
}
