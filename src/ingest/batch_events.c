/* batch_events.c — a stored batch as one event per distinct ts. */
#include "ingest/batch_events.h"

#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/json_out.h"

typedef struct reading_ref {
    const ss_reading *r;
    size_t pos;
} reading_ref;

/* By time, then channel, then arrival: one event per time, and of one
 * channel's readings at one time the last that came is the one told. */
static int reading_cmp(const void *a, const void *b)
{
    const reading_ref *x = a, *y = b;
    if (x->r->ts != y->r->ts)
        return x->r->ts < y->r->ts ? -1 : 1;
    int c = strcmp(x->r->channel, y->r->channel);
    if (c)
        return c;
    return x->pos < y->pos ? -1 : (x->pos > y->pos);
}

/* The event of refs[0..n), all of one ts; channel names need no escaping
 * ([A-Za-z0-9_.-]). */
static int event_json(ss_buf *out, const char *device_id, const reading_ref *refs, size_t n)
{
    buf_reset(out);
    int rc = device_id ? buf_printf(out, "{\"device_id\":\"%s\",\"ts\":%lld,\"values\":{",
                                    device_id, (long long)refs[0].r->ts)
                       : buf_printf(out, "{\"ts\":%lld,\"values\":{", (long long)refs[0].r->ts);
    const char *sep = "";
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (i + 1 < n && strcmp(refs[i].r->channel, refs[i + 1].r->channel) == 0)
            continue;  /* a later reading of the channel follows */
        char num[JSON_OUT_DOUBLE_MAX];
        json_out_double(refs[i].r->value, num);
        rc = buf_printf(out, "%s\"%s\":%s", sep, refs[i].r->channel, num);
        sep = ",";
    }
    return rc ? rc : buf_append_str(out, "}}");
}

int batch_events(const fanout_batch *b, int with_device, ss_buf *scratch, batch_event_cb cb,
                 void *ctx)
{
    reading_ref one, *refs = &one;
    if (b->len > 1 && !(refs = malloc(b->len * sizeof *refs)))
        return SS_NOMEM;
    for (size_t i = 0; i < b->len; i++)
        refs[i] = (reading_ref){.r = &b->readings[i], .pos = i};
    if (b->len > 1)
        qsort(refs, b->len, sizeof *refs, reading_cmp);
    int rc = 0;
    for (size_t i = 0, j; rc == 0 && i < b->len; i = j) {
        for (j = i + 1; j < b->len && refs[j].r->ts == refs[i].r->ts; j++)
            ;
        rc = event_json(scratch, with_device ? b->device_id : NULL, refs + i, j - i);
        if (rc == 0)
            rc = cb(ctx, refs[i].r->ts, scratch->data, scratch->len);
    }
    if (refs != &one)
        free(refs);
    return rc;
}
