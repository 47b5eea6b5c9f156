#include "http/export_text.h"

#include <ctype.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/err.h"
#include "core/json_out.h"

/* Level 1: CSV of readings shrinks about as much as at the default level
 * (6), at several times the speed, so gzip costs the export little of its
 * rate. */
#define EXPORT_GZIP_LEVEL 1
/* zlib: window bits for a gzip wrapper (15 + 16), and its default
 * memory level; the stream holds about 256 KB. */
#define EXPORT_GZIP_WINDOW (15 + 16)
#define EXPORT_GZIP_MEM_LEVEL 8
/* What a row may add past its prefix and channel: the separators, a ts
 * (20 characters) and a value (JSON_OUT_DOUBLE_MAX). */
#define EXPORT_ROW_TAIL_MAX 96
/* Room added to the compressed buffer per deflate call. */
#define EXPORT_GZIP_CHUNK (64u * 1024u)

static const char csv_header[] = "device_id,device_name,channel,ts,value\n";

/* ---- Accept-Encoding --------------------------------------------------------- */

/* The q of one coding's parameters (";q=0.5"): 1 when absent. */
static double coding_q(const char *params, size_t len)
{
    const char *q = params;
    while ((q = memchr(q, ';', len - (size_t)(q - params))) != NULL) {
        q++;
        while (*q == ' ' || *q == '\t')
            q++;
        if ((*q == 'q' || *q == 'Q') && q[1] == '=')
            return strtod(q + 2, NULL);
    }
    return 1.0;
}

static int coding_is(const char *item, size_t len, const char *name)
{
    size_t n = strlen(name);
    return len >= n && strncasecmp(item, name, n) == 0 &&
           (len == n || item[n] == ';' || item[n] == ' ' || item[n] == '\t');
}

int export_text_accepts_gzip(const char *h)
{
    int gzip = -1, star = -1;  /* -1: not named; else 1 if q > 0 */
    while (h && *h) {
        while (*h == ' ' || *h == '\t' || *h == ',')
            h++;
        size_t len = strcspn(h, ",");
        int ok = coding_q(h, len) > 0;
        if (coding_is(h, len, "gzip") || coding_is(h, len, "x-gzip"))
            gzip = gzip == 1 ? 1 : ok;
        else if (coding_is(h, len, "*"))
            star = ok;
        h += len;
    }
    return gzip >= 0 ? gzip : star == 1;
}

/* ---- devices ---------------------------------------------------------------- */

int export_text_init(export_text *t, export_format format, int gzip)
{
    *t = (export_text){.format = format, .gzip = gzip};
    if (!gzip)
        return SS_OK;
    if (deflateInit2(&t->z, EXPORT_GZIP_LEVEL, Z_DEFLATED, EXPORT_GZIP_WINDOW,
                     EXPORT_GZIP_MEM_LEVEL, Z_DEFAULT_STRATEGY) != Z_OK)
        return SS_NOMEM;
    t->z_ready = 1;
    return SS_OK;
}

void export_text_free(export_text *t)
{
    if (t->z_ready)
        deflateEnd(&t->z);
    t->z_ready = 0;
    buf_free(&t->zout);
    for (size_t i = 0; i < t->n_devices; i++)
        free(t->devices[i].prefix);
    free(t->devices);
    free(t->ids);
    t->devices = NULL;
    t->ids = NULL;
    t->n_devices = 0;
}

/* RFC 4180: a field with a comma, a quote or a line break is quoted, its
 * quotes doubled. */
static int csv_field(ss_buf *b, const char *s)
{
    if (!s[strcspn(s, ",\"\r\n")])
        return buf_append_str(b, s);
    int rc = buf_append(b, "\"", 1);
    for (const char *p = s; *p && rc == 0; p++)
        rc = *p == '"' ? buf_append(b, "\"\"", 2) : buf_append(b, p, 1);
    return rc ? rc : buf_append(b, "\"", 1);
}

static int json_field(ss_buf *b, const char *s)
{
    json_t *str = json_string(s);
    int rc = str ? json_out_value(b, str) : SS_NOMEM;
    json_decref(str);
    return rc;
}

/* `id,name,` or `{"device_id":"id","device_name":"name","channel":"`. */
static int device_prefix(const export_text *t, ss_buf *b, const char *id, const char *name)
{
    if (t->format == EXPORT_CSV) {
        int rc = buf_printf(b, "%s,", id);
        rc = rc ? rc : csv_field(b, name);
        return rc ? rc : buf_append(b, ",", 1);
    }
    int rc = buf_printf(b, "{\"device_id\":\"%s\",\"device_name\":", id);
    rc = rc ? rc : json_field(b, name);
    return rc ? rc : buf_append_str(b, ",\"channel\":\"");
}

static int devices_room(export_text *t)
{
    if (t->n_devices < t->cap_devices)
        return SS_OK;
    size_t cap = t->cap_devices ? 2 * t->cap_devices : 64;
    export_device *d = realloc(t->devices, cap * sizeof *d);
    if (!d)
        return SS_NOMEM;
    t->devices = d;
    t->cap_devices = cap;
    return SS_OK;
}

int export_text_add_device(export_text *t, const char *id, const char *name)
{
    ss_buf prefix = SS_BUF_INIT;
    int rc = devices_room(t);
    if (!rc)
        rc = device_prefix(t, &prefix, id, name);
    if (rc) {
        buf_free(&prefix);
        return SS_NOMEM;
    }
    export_device *d = &t->devices[t->n_devices++];
    snprintf(d->id, sizeof d->id, "%s", id);
    d->prefix_len = prefix.len;
    d->prefix = buf_steal(&prefix);
    return SS_OK;
}

static int cmp_device(const void *a, const void *b)
{
    return strcmp(((const export_device *)a)->id, ((const export_device *)b)->id);
}

int export_text_sort_devices(export_text *t)
{
    if (t->n_devices > 1)
        qsort(t->devices, t->n_devices, sizeof *t->devices, cmp_device);
    free(t->ids);
    t->ids = malloc((t->n_devices ? t->n_devices : 1) * sizeof *t->ids);
    if (!t->ids)
        return SS_NOMEM;
    for (size_t i = 0; i < t->n_devices; i++)
        t->ids[i] = t->devices[i].id;
    return SS_OK;
}

const char *const *export_text_device_ids(const export_text *t, size_t *n)
{
    *n = t->n_devices;
    return t->ids;
}

/* ---- rows -------------------------------------------------------------------- */

int export_text_header(export_text *t, ss_buf *page)
{
    if (t->header_done || t->format != EXPORT_CSV)
        return SS_OK;
    t->header_done = 1;
    return buf_append(page, csv_header, sizeof csv_header - 1);
}

/* Writes the row straight into the page's room: one reserve per row. */
int export_text_row(export_text *t, ss_buf *page, const store_export_row *row)
{
    const export_device *d = &t->devices[row->device];
    size_t clen = strlen(row->channel);
    if (buf_reserve(page, d->prefix_len + clen + EXPORT_ROW_TAIL_MAX))
        return SS_NOMEM;
    char *p = page->data + page->len;
    memcpy(p, d->prefix, d->prefix_len);
    p += d->prefix_len;
    memcpy(p, row->channel, clen);
    p += clen;
    int csv = t->format == EXPORT_CSV;
    p += sprintf(p, csv ? ",%" PRId64 "," : "\",\"ts\":%" PRId64 ",\"value\":", row->ts);
    p += json_out_double(row->value, p);
    if (!csv)
        *p++ = '}';
    *p++ = '\n';
    *p = '\0';
    page->len = (size_t)(p - page->data);
    return SS_OK;
}

/* Deflates the page into zout, then swaps the two. */
int export_text_finish_page(export_text *t, ss_buf *page, int last)
{
    if (!t->gzip)
        return SS_OK;
    buf_reset(&t->zout);
    t->z.next_in = (Bytef *)page->data;
    t->z.avail_in = (uInt)page->len;
    int flush = last ? Z_FINISH : Z_SYNC_FLUSH, rc;
    do {
        if (buf_reserve(&t->zout, EXPORT_GZIP_CHUNK))
            return SS_NOMEM;
        size_t room = t->zout.cap - t->zout.len;
        t->z.next_out = (Bytef *)t->zout.data + t->zout.len;
        t->z.avail_out = (uInt)room;
        rc = deflate(&t->z, flush);
        t->zout.len += room - t->z.avail_out;
        if (rc == Z_STREAM_ERROR)
            return SS_NOMEM;
    } while (t->z.avail_out == 0 || (last && rc != Z_STREAM_END));
    t->zout.data[t->zout.len] = '\0';
    ss_buf tmp = *page;
    *page = t->zout;
    t->zout = tmp;
    return SS_OK;
}

/* ---- the head ---------------------------------------------------------------- */

const char *export_text_content_type(const export_text *t)
{
    return t->format == EXPORT_CSV ? "text/csv; charset=utf-8" : "application/x-ndjson";
}

void export_text_headers(const export_text *t, const char *org_id, char *out, size_t cap)
{
    snprintf(out, cap,
             "Content-Disposition: attachment; filename=\"export-%s.%s\"\r\n"
             "Vary: Accept-Encoding\r\nCache-Control: no-store\r\n%s",
             org_id, t->format == EXPORT_CSV ? "csv" : "ndjson",
             t->gzip ? "Content-Encoding: gzip\r\n" : "");
}
