/* parse.h — the reading formats of SPEC §3.1 and §3.2, and a bare value
 * for one channel (an MQTT `devices/<id>/data/<channel>` payload).
 *
 * Both parsers validate everything before they return: on success `out`
 * holds every reading of the input; on failure `out` is left as it was
 * (empty by convention) and `err` names the first bad reading, so a caller
 * can refuse the whole input (all or nothing). Neither allocates beyond
 * `out`, neither reads past `len`, neither needs a NUL terminator. */
#ifndef SS_PARSE_H
#define SS_PARSE_H

#include <stddef.h>
#include <stdint.h>

#include "core/reading.h"

typedef struct ss_parse_error {
    /* JSON: 0-based index of the bad reading set within a batch (0 for a
     * single object). Lines: 1-based line number. */
    size_t position;
    /* A message a device maker can act on, without the offending secret or
     * bytes echoed back beyond a short excerpt. NUL-terminated. */
    char message[160];
} ss_parse_error;

/* JSON (SPEC §3.1): an object {"ch": number, …} (server time now_ms; an
 * optional "ts" key gives the time instead), an object {"ts": ms,
 * "values": {"ch": number, …}} ("ts" optional), or an array of either.
 * Refused: invalid JSON or UTF-8, duplicate keys, non-number values,
 * non-finite numbers, invalid channel names, ts out of range, an empty
 * set or batch, more than `max_readings` readings.
 * IN body, len: the request body. IN now_ms: server time for missing ts.
 * OUT out: readings appended. OUT err: filled on failure.
 * Returns 0, SS_PARSE (bad input; err filled), SS_TOO_LARGE (more than
 * max_readings; err filled) or SS_NOMEM. */
int parse_json_readings(const char *body, size_t len, int64_t now_ms, size_t max_readings,
                        ss_readings *out, ss_parse_error *err);

/* Line format (SPEC §3.2): "<ch>=<value>[,<ch>=<value>…][ <ts>]" per line,
 * "\n" or "\r\n" ends a line (the last line may lack it), blank lines and
 * lines starting with '#' are skipped. Values follow JSON number syntax.
 * Same returns as parse_json_readings; a line over SS_LINE_MAX is SS_PARSE. */
int parse_line_readings(const char *body, size_t len, int64_t now_ms, size_t max_readings,
                        ss_readings *out, ss_parse_error *err);

/* Parses exactly one line (no line terminator inside) into out: the unit the
 * TCP and UDP ingest use. Blank and '#' lines give 0 readings and return 0.
 * Same returns; err->position is left to the caller. */
int parse_line(const char *line, size_t len, int64_t now_ms, ss_readings *out,
               ss_parse_error *err);

/* A bare number for one named channel, at server time now_ms: the payload
 * of a topic that names its channel. JSON number syntax; ASCII whitespace
 * around it is allowed (a trailing newline from a shell). Refused: an
 * invalid channel name, anything but one finite number.
 * Same returns as parse_line_readings (no SS_TOO_LARGE); err->position 0. */
int parse_value_reading(const char *channel, size_t channel_len, const char *payload, size_t len,
                        int64_t now_ms, ss_readings *out, ss_parse_error *err);

#endif
