/* live_ring.c — the orgs' windows of live events.
 *
 * An org's events sit in a circular array indexed by seq (a lookup by id
 * is one subtraction) and, across orgs, in one list by age, so the oldest
 * event of all is its head when the whole is over its bytes. Orgs are
 * found through a small table of chained buckets keyed by the org id. */
#include "http/live_ring.h"

#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/hash.h"

/* Orgs with a window at once are those with live listeners (and a few
 * minutes after): a few hundred on a big server. Chains stay short. */
#define LIVE_RING_BUCKETS 256u
/* A new window's first room for events; doubles as it fills. */
#define LIVE_ORG_SLOTS_MIN 64u

struct live_ring {
    live_ring_limits lim;
    size_t bytes;
    ss_list age;                    /* every event, oldest first */
    ss_list buckets[LIVE_RING_BUCKETS];
};

/* What an event costs the ring: its frame and its node. */
static size_t event_cost(const live_event *e)
{
    return sizeof *e + e->len;
}

int live_ring_new(const live_ring_limits *lim, live_ring **out)
{
    live_ring *r = calloc(1, sizeof *r);
    if (!r)
        return SS_NOMEM;
    if (lim)
        r->lim = *lim;
    if (!r->lim.org_events)
        r->lim.org_events = SS_LIVE_ORG_EVENTS_MAX;
    if (!r->lim.org_bytes)
        r->lim.org_bytes = SS_LIVE_ORG_BYTES_MAX;
    if (!r->lim.total_bytes)
        r->lim.total_bytes = SS_LIVE_RING_BYTES_MAX;
    ss_list_init(&r->age);
    for (size_t i = 0; i < LIVE_RING_BUCKETS; i++)
        ss_list_init(&r->buckets[i]);
    *out = r;
    return SS_OK;
}

static size_t org_count(const live_org *o)
{
    return (size_t)(o->next_seq - o->first_seq);
}

/* The org's oldest event goes. */
static void evict_oldest(live_ring *r, live_org *o)
{
    live_event *e = o->slots[o->head];
    o->slots[o->head] = NULL;
    o->head = (o->head + 1) % o->cap;
    o->first_seq++;
    o->bytes -= event_cost(e);
    r->bytes -= event_cost(e);
    ss_list_remove(&e->age);
    free(e);
}

static void org_free(live_ring *r, live_org *o)
{
    while (org_count(o))
        evict_oldest(r, o);
    ss_list_remove(&o->bucket);
    free(o->slots);
    free(o);
}

void live_ring_free(live_ring *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < LIVE_RING_BUCKETS; i++) {
        ss_list *it, *tmp;
        ss_list_foreach_safe(it, tmp, &r->buckets[i])
            org_free(r, ss_list_entry(it, live_org, bucket));
    }
    free(r);
}

static ss_list *bucket_of(live_ring *r, const char *org_id)
{
    return &r->buckets[hash_id(org_id) % LIVE_RING_BUCKETS];
}

live_org *live_ring_find(live_ring *r, const char *org_id)
{
    ss_list *b = bucket_of(r, org_id);
    for (ss_list *it = b->next; it != b; it = it->next) {
        live_org *o = ss_list_entry(it, live_org, bucket);
        if (strcmp(o->id, org_id) == 0)
            return o;
    }
    return NULL;
}

int live_ring_open(live_ring *r, const char *org_id, live_org **out)
{
    live_org *o = live_ring_find(r, org_id);
    if (o) {
        *out = o;
        return SS_OK;
    }
    o = calloc(1, sizeof *o);
    if (!o || !(o->slots = calloc(LIVE_ORG_SLOTS_MIN, sizeof *o->slots))) {
        free(o);
        return SS_NOMEM;
    }
    o->cap = LIVE_ORG_SLOTS_MIN;
    snprintf(o->id, sizeof o->id, "%s", org_id);
    uint8_t raw[LIVE_EPOCH_LEN / 2];
    randombytes_buf(raw, sizeof raw);
    sodium_bin2hex(o->epoch, sizeof o->epoch, raw, sizeof raw);
    o->first_seq = o->next_seq = 1;
    ss_list_init(&o->listeners);
    ss_list_insert_tail(bucket_of(r, org_id), &o->bucket);
    *out = o;
    return SS_OK;
}

void live_ring_drop_idle(live_ring *r, uint64_t before)
{
    for (size_t i = 0; i < LIVE_RING_BUCKETS; i++) {
        ss_list *it, *tmp;
        ss_list_foreach_safe(it, tmp, &r->buckets[i]) {
            live_org *o = ss_list_entry(it, live_org, bucket);
            if (o->listener_count == 0 && o->idle_since < before)
                org_free(r, o);
        }
    }
}

/* Doubles the org's slots, keeping its events in seq order from slot 0. */
static int org_grow(live_org *o)
{
    size_t cap = o->cap * 2, n = org_count(o);
    live_event **slots = calloc(cap, sizeof *slots);
    if (!slots)
        return SS_NOMEM;
    for (size_t i = 0; i < n; i++)
        slots[i] = o->slots[(o->head + i) % o->cap];
    free(o->slots);
    o->slots = slots;
    o->cap = cap;
    o->head = 0;
    return SS_OK;
}

int live_ring_append(live_ring *r, live_org *o, const char *device_id, const char *json,
                     size_t len)
{
    if (org_count(o) == o->cap && org_grow(o))
        return SS_NOMEM;
    char id[LIVE_ID_MAX];
    live_org_id(o, o->next_seq, id);
    size_t frame = strlen("id: ") + strlen(id) + strlen("\ndata: ") + len + strlen("\n\n");
    live_event *e = malloc(sizeof *e + frame + 1);
    if (!e)
        return SS_NOMEM;
    e->seq = o->next_seq;
    e->org = o;
    snprintf(e->device_id, sizeof e->device_id, "%s", device_id);
    int n = snprintf(e->frame, frame + 1, "id: %s\ndata: %.*s\n\n", id, (int)len, json);
    e->len = n > 0 ? (size_t)n : 0;
    o->slots[(o->head + org_count(o)) % o->cap] = e;
    o->next_seq++;
    o->bytes += event_cost(e);
    r->bytes += event_cost(e);
    ss_list_insert_tail(&r->age, &e->age);
    return SS_OK;
}

static int channel_named(const char *name, size_t len, const char *const *channels, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strlen(channels[i]) == len && memcmp(channels[i], name, len) == 0)
            return 1;
    return 0;
}

/* The frame's data is batch_events' {…,"values":{"<channel>":<number>,…}}:
 * channel names are [A-Za-z0-9_.-] and the values numbers, so a pair
 * ends at the next ',' or '}' and no quote or brace hides in one. */
int live_event_filter(const live_event *e, const char *const *channels, size_t n, ss_buf *out)
{
    static const char values[] = "\"values\":{";
    buf_reset(out);
    const char *end = e->frame + e->len;
    const char *p = memmem(e->frame, e->len, values, sizeof values - 1);
    if (!p)
        return 0;
    p += sizeof values - 1;
    int rc = buf_append(out, e->frame, (size_t)(p - e->frame));
    size_t kept = 0;
    while (rc == 0 && p < end && *p == '"') {
        const char *name = p + 1;
        const char *quote = memchr(name, '"', (size_t)(end - name));
        const char *stop = quote ? quote + strcspn(quote, ",}") : end;
        if (!quote || stop >= end)
            break;
        if (channel_named(name, (size_t)(quote - name), channels, n)) {
            rc = (kept ? buf_append(out, ",", 1) : 0) || buf_append(out, p, (size_t)(stop - p));
            kept++;
        }
        p = *stop == ',' ? stop + 1 : stop;
    }
    if (rc == 0 && kept && p < end)
        rc = buf_append(out, p, (size_t)(end - p));
    if (rc || !kept)
        buf_reset(out);
    return rc ? SS_NOMEM : 0;
}

void live_ring_trim(live_ring *r, live_org *o)
{
    while (org_count(o) && (org_count(o) > r->lim.org_events || o->bytes > r->lim.org_bytes))
        evict_oldest(r, o);
    ss_list *first;
    while (r->bytes > r->lim.total_bytes && (first = ss_list_first(&r->age)) != NULL) {
        live_event *e = ss_list_entry(first, live_event, age);
        evict_oldest(r, e->org);
    }
}

const live_event *live_org_event(const live_org *o, uint64_t seq)
{
    if (seq < o->first_seq || seq >= o->next_seq)
        return NULL;
    return o->slots[(o->head + (seq - o->first_seq)) % o->cap];
}

void live_org_id(const live_org *o, uint64_t seq, char out[LIVE_ID_MAX])
{
    snprintf(out, LIVE_ID_MAX, "%s-%" PRIu64, o->epoch, seq);
}

/* The seq of "<epoch>-<digits>": 0 or SS_INVAL. */
static int parse_seq(const char *digits, uint64_t *out)
{
    uint64_t v = 0;
    size_t i = 0;
    for (; digits[i] >= '0' && digits[i] <= '9'; i++) {
        if (i >= 20 || v > (UINT64_MAX - 9) / 10)
            return SS_INVAL;
        v = v * 10 + (uint64_t)(digits[i] - '0');
    }
    if (i == 0 || digits[i] != '\0')
        return SS_INVAL;
    *out = v;
    return SS_OK;
}

int live_org_parse_id(const live_org *o, const char *text, uint64_t *last)
{
    for (size_t i = 0; i < LIVE_EPOCH_LEN; i++) {
        char c = text[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return SS_INVAL;
    }
    uint64_t seq;
    if (text[LIVE_EPOCH_LEN] != '-' || parse_seq(text + LIVE_EPOCH_LEN + 1, &seq))
        return SS_INVAL;
    if (memcmp(text, o->epoch, LIVE_EPOCH_LEN) != 0)
        return SS_NOT_FOUND;
    /* Every event after seq is held: the oldest held is seq + 1 or older. */
    if (seq + 1 < o->first_seq || seq >= o->next_seq)
        return SS_NOT_FOUND;
    *last = seq;
    return SS_OK;
}

size_t live_ring_bytes(const live_ring *r)
{
    return r->bytes;
}
