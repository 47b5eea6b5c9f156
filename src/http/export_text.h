/* export_text.h — the text of an export (api_export.c): CSV or NDJSON rows,
 * gzipped when the client takes it. Private to src/http.
 *
 * CSV: the header `device_id,device_name,channel,ts,value`, then a line per
 * reading; a device name with a comma, a quote or a line break is quoted
 * (RFC 4180). NDJSON: one object per line,
 * {"device_id","device_name","channel","ts","value"}. Numbers as every
 * answer writes them (json_out.h): ts in ms, the value in the shortest
 * text that reads back to the same double.
 *
 * An export_text is used by one thread at a time (the worker reading a
 * page, then the loop): it holds no lock. */
#ifndef SS_HTTP_EXPORT_TEXT_H
#define SS_HTTP_EXPORT_TEXT_H

#include <stddef.h>
#include <zlib.h>

#include "core/buf.h"
#include "core/limits.h"
#include "store/store_series.h"

typedef enum { EXPORT_CSV = 0, EXPORT_NDJSON } export_format;

typedef struct export_device {
    char id[SS_ID_LEN + 1];
    char *prefix;        /* what each of its rows starts with */
    size_t prefix_len;
} export_device;

typedef struct export_text {
    export_format format;
    int gzip;
    int header_done;
    z_stream z;          /* gzip: one stream for the whole answer */
    int z_ready;
    ss_buf zout;         /* gzip: a page compressed, swapped into the page */
    export_device *devices;
    size_t n_devices, cap_devices;
    const char **ids;    /* the devices' ids in order (after sort) */
} export_text;

/* 1 when an Accept-Encoding value (NULL: none) takes gzip (RFC 9110
 * §12.5.3): `gzip`, `x-gzip` or `*` with a q above 0, gzip not refused by
 * name. */
int export_text_accepts_gzip(const char *accept_encoding);

/* 0 or SS_NOMEM (then export_text_free). */
int export_text_init(export_text *t, export_format format, int gzip);
void export_text_free(export_text *t);

/* Adds a device (its name copied). 0 or SS_NOMEM. */
int export_text_add_device(export_text *t, const char *id, const char *name);
/* Puts the devices in id order, the order of the store's export scan.
 * 0 or SS_NOMEM. */
int export_text_sort_devices(export_text *t);
/* The ids, sorted (valid until export_text_free). OUT n: their count. */
const char *const *export_text_device_ids(const export_text *t, size_t *n);

/* Appends the CSV header line, the first time only (nothing for NDJSON).
 * 0 or SS_NOMEM. */
int export_text_header(export_text *t, ss_buf *page);
/* Appends one reading's line; row->device indexes the sorted devices. 0 or
 * SS_NOMEM. */
int export_text_row(export_text *t, ss_buf *page, const store_export_row *row);
/* Once a page is written: with gzip, replaces the page's text by its
 * compressed form (flushed, so the client can read all it got so far;
 * last: the gzip trailer too). 0, SS_NOMEM. */
int export_text_finish_page(export_text *t, ss_buf *page, int last);

/* The answer's content type. */
const char *export_text_content_type(const export_text *t);
/* The answer's extra header lines: Content-Disposition (a file name from
 * the org's id), Vary, Cache-Control, and Content-Encoding with gzip. */
void export_text_headers(const export_text *t, const char *org_id, char *out, size_t cap);

#endif
