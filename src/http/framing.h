/* framing.h — the syntax rules of RFC 9112 / RFC 9110 that http-parser, as
 * the system library builds it (lenient: HTTP_PARSER_STRICT 0), lets pass.
 *
 * The lenient parser takes a space inside a field name as part of the name
 * ("Content-Length : 5" is a field named "Content-Length "), folds lines,
 * takes any byte but CR and LF in a value, any request line with words
 * separated by runs of spaces, and any request-target characters. Each of
 * these is a way to make two parsers disagree about where a request ends
 * (request smuggling), so each is refused here: pure functions over bytes,
 * no allocation, used by the HTTP server. */
#ifndef SS_HTTP_FRAMING_H
#define SS_HTTP_FRAMING_H

#include <stddef.h>

/* A scanner over the raw bytes of one request head, fed as they arrive. */
typedef struct http_head_scan {
    int state;          /* private */
    int prev;           /* private: the byte before, -1 at a line start */
    size_t line_len;    /* private */
} http_head_scan;

/* Ready for the next request (the bytes before it may be blank lines). */
void http_head_scan_reset(http_head_scan *s);

/* Looks at the next bytes of the stream. 0 when they are fine so far (or
 * belong to the body: after the blank line ending the head nothing is looked
 * at until the next reset); SS_INVAL for a request line whose parts are not
 * separated by exactly one SP, a field line starting with SP or HTAB
 * (obs-fold, RFC 9112 §5.2, or whitespace before the first field, §2.2). */
int http_head_scan_feed(http_head_scan *s, const char *data, size_t len);

/* 1 when the bytes are a field name: a token (RFC 9110 §5.1) of one byte or
 * more; 0 else (whitespace before the colon, §5.1 of RFC 9112, included). */
int http_field_name_valid(const char *s, size_t len);

/* 1 when every byte may be in a field value: VCHAR, obs-text, SP, HTAB
 * (RFC 9110 §5.5); 0 for a control character. */
int http_field_value_valid(const char *s, size_t len);

/* 1 when the text is uri-host [ ":" port ] (RFC 9112 §3.2, RFC 3986 §3.2):
 * a reg-name or IPv4 address of unreserved, sub-delims and %XX, or an IPv6
 * literal in brackets; port digits up to 65535, possibly empty. An empty
 * host is refused: no "http" URI has one (RFC 9110 §4.2.1). */
int http_host_valid(const char *s, size_t len);

/* Where path and query lie in a request-target. */
typedef struct http_target {
    size_t path_off, path_len;    /* path_len 0: the path is "/" */
    size_t query_off, query_len;  /* after '?'; has_query 0: no '?' */
    int has_query;
    int asterisk;                 /* the target is "*" */
} http_target;

/* Parses a request-target (RFC 9112 §3.2): origin-form, absolute-form with
 * the scheme http or https (case-insensitive) and a valid authority without
 * userinfo, or "*". Every character must be one RFC 3986 allows there, every
 * '%' followed by two hex digits; a fragment is refused. 0 or SS_INVAL. */
int http_target_parse(const char *t, size_t len, http_target *out);

#endif
