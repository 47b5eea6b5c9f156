/* api_audit.c — reading the audit log. There is no endpoint that writes,
 * changes or deletes an entry: entries come only from api_audit. */
#include "core/clock.h"
#include "core/err.h"
#include "http/api_call.h"
#include "http/api_page.h"

#include <stdio.h>
#include <stdlib.h>

#define AUDIT_PARAM_MAX 64

/* Entries come newest first, then by id descending: the store starts
 * after the cursor's (ts, id). */
static int append_entry(void *ctx, const store_audit *a)
{
    json_error_t jerr;
    json_t *detail = json_loads(a->detail, 0, &jerr);
    if (!detail)  /* entries from before details were JSON objects */
        detail = a->detail[0] ? json_string(a->detail) : json_object();
    return api_page_add(ctx, json_pack("{s:I,s:I,s:s,s:s,s:s,s:s,s:s,s:s,s:o}", "id",
                                       (json_int_t)a->id, "ts", (json_int_t)a->ts, "org_id",
                                       a->org_id, "actor", a->actor, "actor_name",
                                       a->actor_name, "action", a->action, "target",
                                       a->target, "address", a->addr, "detail", detail),
                        json_pack("[I,I]", (json_int_t)a->ts, (json_int_t)a->id));
}

static int time_param(api_call *call, const char *name, int64_t *out)
{
    char text[AUDIT_PARAM_MAX];
    int rc = http_query_get(call->req, name, text, sizeof text);
    if (rc == 0 || (rc > 0 && clock_parse_time(text, out) == 0))
        return 0;
    char msg[96];
    snprintf(msg, sizeof msg, "query parameter '%s' is ms since the epoch or RFC 3339", name);
    api_reply_error(call, 400, "bad_parameter", msg);
    return 1;
}

static void list_for(api_call *call, const char *org_id)
{
    int64_t from = 0, to = INT64_MAX;
    api_page page;
    if (time_param(call, "from", &from) || time_param(call, "to", &to) ||
        api_page_begin(call, SS_AUDIT_LIMIT_DEFAULT, SS_AUDIT_LIMIT_MAX, "ii", &page))
        return;
    int64_t before_ts = page.after ? api_page_after_int(&page, 0) : INT64_MAX;
    int64_t before_id = page.after ? api_page_after_int(&page, 1) : INT64_MAX;
    /* One past the page tells whether there is more. */
    int rc = store_audit_list_before(call->db, org_id, from, to, before_ts, before_id,
                                     page.limit + 1, append_entry, &page);
    api_page_reply(call, rc, &page);
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
