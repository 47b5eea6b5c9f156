/* api_params.c — reading and checking the query parameters of the data
 * endpoints. */
#include "http/api_params.h"

#include "core/clock.h"
#include "core/reading.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int api_param_time(api_call *call, const char *name, int64_t *out, int *present)
{
    char text[API_PARAM_MAX];
    int rc = http_query_get(call->req, name, text, sizeof text);
    if (present)
        *present = rc != 0;
    if (rc == 0)
        return 0;
    if (rc < 0 || clock_parse_time(text, out)) {
        char msg[128];
        snprintf(msg, sizeof msg, "%s must be ms since the epoch or RFC 3339", name);
        api_reply_error(call, 400, "bad_parameter", msg);
        return 1;
    }
    return 0;
}

int api_param_int(api_call *call, const char *name, int64_t min, int64_t max, int64_t *out)
{
    char text[API_PARAM_MAX], *end = NULL;
    int rc = http_query_get(call->req, name, text, sizeof text);
    if (rc == 0)
        return 0;
    long long v = rc < 0 ? 0 : strtoll(text, &end, 10);
    if (rc < 0 || !text[0] || *end || v < min || v > max) {
        char msg[128];
        snprintf(msg, sizeof msg, "%s must be an integer from %lld to %lld", name,
                 (long long)min, (long long)max);
        api_reply_error(call, 400, "bad_parameter", msg);
        return 1;
    }
    *out = v;
    return 0;
}

int api_param_choice(api_call *call, const char *name, const char *const *choices, int n,
                     int *out, const char *message)
{
    char text[API_PARAM_MAX];
    int rc = http_query_get(call->req, name, text, sizeof text);
    if (rc == 0)
        return 0;
    for (int i = 0; rc > 0 && i < n; i++) {
        if (strcmp(text, choices[i]) == 0) {
            *out = i;
            return 0;
        }
    }
    api_reply_error(call, 400, "bad_parameter", message);
    return 1;
}

int api_param_text(api_call *call, const char *name, char *out, size_t cap, const char *message)
{
    int rc = http_query_get(call->req, name, out, cap);
    if (rc >= 0)
        return rc;
    api_reply_error(call, 400, "bad_parameter", message);
    return -1;
}

int api_param_channels(api_call *call, api_channels *out)
{
    static const char *const message =
        "channel is a comma-separated list of up to 32 channel names";
    out->n = 0;
    int present = api_param_text(call, "channel", out->text, sizeof out->text, message);
    if (present <= 0)
        return present < 0;
    char *save = NULL;
    for (char *name = strtok_r(out->text, ",", &save); name; name = strtok_r(NULL, ",", &save)) {
        if (!reading_channel_valid(name, strlen(name)) || out->n >= API_CHANNELS_MAX) {
            api_reply_error(call, 400, "bad_parameter", message);
            return 1;
        }
        out->names[out->n++] = name;
    }
    if (out->n > 0)
        return 0;
    api_reply_error(call, 400, "bad_parameter", message);
    return 1;
}
