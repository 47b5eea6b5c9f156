/* topic.c — topic names and filters: validity and matching (MQTT §4.7). */
#include "mqtt/topic.h"

#include <string.h>

static const char share_prefix[] = "$share/";
#define SHARE_PREFIX_LEN (sizeof share_prefix - 1)

/* The end of the level starting at p: the next '/' or end. */
static const char *level_end(const char *p, const char *end)
{
    const char *q = memchr(p, '/', (size_t)(end - p));
    return q ? q : end;
}

int mqtt_topic_name_valid(const char *t, size_t len)
{
    if (len == 0 || len > MQTT_TOPIC_MAX)
        return 0;
    size_t levels = 1;
    for (size_t i = 0; i < len; i++) {
        /* A NUL would cut the copies the broker keeps NUL-terminated. */
        if (t[i] == '+' || t[i] == '#' || t[i] == '\0')
            return 0;
        if (t[i] == '/' && ++levels > MQTT_TOPIC_LEVELS_MAX)
            return 0;
    }
    return 1;
}

/* A plain (not shared) filter: each level either holds no wildcard, or
 * is "+" alone, or "#" alone and last. */
static int plain_filter_valid(const char *f, size_t len)
{
    if (len == 0)
        return 0;
    const char *end = f + len;
    size_t levels = 0;
    for (const char *p = f;; p++) {
        const char *q = level_end(p, end);
        size_t n = (size_t)(q - p);
        if (++levels > MQTT_TOPIC_LEVELS_MAX)
            return 0;
        if (memchr(p, '\0', n))
            return 0;
        if ((memchr(p, '+', n) || memchr(p, '#', n)) && n != 1)
            return 0;
        if (n == 1 && *p == '#' && q != end)
            return 0;
        if (q == end)
            return 1;
        p = q;
    }
}

int mqtt_topic_filter_valid(const char *f, size_t len, int *shared)
{
    if (shared)
        *shared = 0;
    if (len == 0 || len > MQTT_TOPIC_MAX)
        return 0;
    if (len < SHARE_PREFIX_LEN || memcmp(f, share_prefix, SHARE_PREFIX_LEN) != 0)
        return plain_filter_valid(f, len);
    /* "$share/<group>/<filter>": a group of one level without wildcards,
     * then a whole filter (5.0 §4.8.2). */
    const char *g = f + SHARE_PREFIX_LEN, *end = f + len;
    const char *q = memchr(g, '/', (size_t)(end - g));
    if (!q || q == g)
        return 0;
    size_t glen = (size_t)(q - g);
    if (memchr(g, '+', glen) || memchr(g, '#', glen) || memchr(g, '\0', glen))
        return 0;
    if (!plain_filter_valid(q + 1, (size_t)(end - q - 1)))
        return 0;
    if (shared)
        *shared = 1;
    return 1;
}

int mqtt_topic_match(const char *filter, size_t flen, const char *topic, size_t tlen)
{
    const char *f = filter, *fend = filter + flen;
    const char *t = topic, *tend = topic + tlen;
    /* MQTT-4.7.2-1: a wildcard first level never matches a '$' topic. */
    if (tlen && topic[0] == '$' && flen && (filter[0] == '+' || filter[0] == '#'))
        return 0;
    for (;;) {
        const char *fq = level_end(f, fend);
        size_t fn = (size_t)(fq - f);
        if (fn == 1 && *f == '#')
            return 1;
        const char *tq = level_end(t, tend);
        size_t tn = (size_t)(tq - t);
        if (!(fn == 1 && *f == '+') && (fn != tn || memcmp(f, t, fn) != 0))
            return 0;
        if (fq == fend && tq == tend)
            return 1;
        if (tq == tend) {
            /* "sport/#" matches "sport": the parent level is included. */
            return fend - fq == 2 && fq[1] == '#';
        }
        if (fq == fend)
            return 0;
        f = fq + 1;
        t = tq + 1;
    }
}
