/* import_parse.h — the formats of a bulk import of history, parsed as the
 * body streams in.
 *
 * Each line names its device, since one file holds many devices' history:
 *   csv     the export's header "device_id,device_name,channel,ts,value"
 *           first, then one reading per record (device_name may be empty
 *           and is ignored; RFC 4180 quotes allowed, a quoted field may
 *           span lines);
 *   ndjson  one object per line: {"device_id","channel","ts","value"} and
 *           optionally "device_name" (ignored) — the export's lines;
 *   line    "<device_id> <channel>=<value>[,<channel>=<value>…] <ts>":
 *           the device id, one space, then a line of SPEC §3.2.
 * Every reading carries its ts (history has no "now": a retried import
 * must store the same readings). Blank lines are skipped everywhere, and
 * lines starting with '#' in the line format.
 *
 * The parser is fed the body in pieces of any size and calls back once per
 * data line with the line's device and readings; it keeps at most one
 * unfinished line (SS_LINE_MAX) between pieces. Allocates only that and the
 * readings it hands out. */
#ifndef SS_IMPORT_PARSE_H
#define SS_IMPORT_PARSE_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/reading.h"
#include "ingest/parse.h"

typedef enum {
    IMPORT_LINE,
    IMPORT_CSV,
    IMPORT_NDJSON,
} import_format;

/* "line", "csv", "ndjson" → *out. 0, or SS_INVAL for another name. */
int import_format_parse(const char *name, import_format *out);

/* One data line: its device (not NUL-terminated, 1..SS_ID_LEN bytes) and
 * its readings (at least one; valid during the call). Returns 0 to go on,
 * nonzero to stop the parse (import_parser_feed then returns SS_CONFLICT,
 * and err is the callback's to fill). */
typedef int (*import_line_cb)(void *ctx, size_t lineno, const char *device, size_t device_len,
                              const ss_readings *readings, ss_parse_error *err);

typedef struct import_parser {
    import_format format;
    int64_t now_ms;        /* for the "more than 10 minutes in the future" check */
    import_line_cb cb;
    void *ctx;
    /* Private. */
    ss_buf carry;          /* an unfinished line from the last piece */
    size_t lineno;         /* lines seen so far */
    int header_seen;       /* csv */
    ss_readings scratch;
} import_parser;

void import_parser_init(import_parser *p, import_format format, int64_t now_ms,
                        import_line_cb cb, void *ctx);
void import_parser_free(import_parser *p);

/* Parses every whole line of the piece and keeps the rest for the next.
 * 0, SS_PARSE (err names the line: position is its 1-based number),
 * SS_CONFLICT (the callback stopped), SS_NOMEM. */
int import_parser_feed(import_parser *p, const char *data, size_t len, ss_parse_error *err);
/* The end of the body: parses a last line without its terminator.
 * Same returns; SS_PARSE also for a CSV body without its header. */
int import_parser_end(import_parser *p, ss_parse_error *err);

/* Parses one line (no terminator) of the format: the unit of the three,
 * exposed for tests. OUT device, device_len; readings appended to out.
 * 0 (a data line), 1 (a line to skip: blank, comment, CSV header), or
 * SS_PARSE (err->message says why, position untouched). */
int import_parse_one(import_format format, const char *line, size_t len, int64_t now_ms,
                     const char **device, size_t *device_len, ss_readings *out,
                     ss_parse_error *err);

#endif
