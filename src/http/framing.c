#include "http/framing.h"
#include "core/err.h"

#include <arpa/inet.h>
#include <string.h>
#include <strings.h>

/* The longest IPv6 literal inet_pton reads, with its NUL. */
#define FRAMING_IPV6_MAX 46u
/* Ports are 16 bits: at most five digits. */
#define FRAMING_PORT_DIGITS 5u

enum { SCAN_START, SCAN_REQUEST_LINE, SCAN_FIELDS, SCAN_DONE };

void http_head_scan_reset(http_head_scan *s)
{
    s->state = SCAN_START;
    s->prev = -1;
    s->line_len = 0;
}

/* One byte of the request line: words split by exactly one SP, no HTAB. */
static int scan_request_line(http_head_scan *s, unsigned char ch)
{
    if (ch == '\n') {
        s->state = SCAN_FIELDS;
        s->prev = -1;
        s->line_len = 0;
        return SS_OK;
    }
    if (ch == '\t' || (ch == ' ' && (s->prev == ' ' || s->prev == -1)))
        return SS_INVAL;
    s->prev = ch;
    return SS_OK;
}

/* One byte of the field lines: none may start with whitespace; an empty
 * line ends the head. */
static int scan_fields(http_head_scan *s, unsigned char ch)
{
    if (ch == '\n') {
        if (s->line_len == 0)
            s->state = SCAN_DONE;
        s->prev = -1;
        s->line_len = 0;
        return SS_OK;
    }
    if (ch == '\r')
        return SS_OK;
    if (s->prev == -1 && (ch == ' ' || ch == '\t'))
        return SS_INVAL;
    s->prev = ch;
    s->line_len++;
    return SS_OK;
}

int http_head_scan_feed(http_head_scan *s, const char *data, size_t len)
{
    for (size_t i = 0; i < len && s->state != SCAN_DONE; i++) {
        unsigned char ch = (unsigned char)data[i];
        int rc = SS_OK;
        if (s->state == SCAN_START) {
            /* RFC 9112 §2.2: blank lines before a request are ignored. */
            if (ch == '\r' || ch == '\n')
                continue;
            s->state = SCAN_REQUEST_LINE;
        }
        if (s->state == SCAN_REQUEST_LINE)
            rc = scan_request_line(s, ch);
        else
            rc = scan_fields(s, ch);
        if (rc)
            return rc;
    }
    return SS_OK;
}

static int is_alpha(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static int is_hex(unsigned char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* RFC 9110 §5.6.2: tchar. */
static int is_tchar(unsigned char c)
{
    return is_alpha(c) || is_digit(c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* RFC 3986 §2.3 unreserved and §2.2 sub-delims. */
static int is_unreserved(unsigned char c)
{
    return is_alpha(c) || is_digit(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

static int is_sub_delim(unsigned char c)
{
    return c && strchr("!$&'()*+,;=", c);
}

int http_field_name_valid(const char *s, size_t len)
{
    if (len == 0)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!is_tchar((unsigned char)s[i]))
            return 0;
    return 1;
}

int http_field_value_valid(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return 0;
    }
    return 1;
}

/* Length of a valid "%XX" at s (3), or 0. */
static size_t pct_encoded(const char *s, size_t left)
{
    return left >= 3 && s[0] == '%' && is_hex((unsigned char)s[1]) && is_hex((unsigned char)s[2])
               ? 3
               : 0;
}

/* 1 when s[0..len) is made only of the bytes `allowed` accepts and %XX. */
static int chars_valid(const char *s, size_t len, int (*allowed)(unsigned char))
{
    for (size_t i = 0; i < len;) {
        size_t n = pct_encoded(s + i, len - i);
        if (n) {
            i += n;
            continue;
        }
        if (!allowed((unsigned char)s[i]))
            return 0;
        i++;
    }
    return 1;
}

static int reg_name_char(unsigned char c)
{
    return is_unreserved(c) || is_sub_delim(c);
}

/* RFC 3986 §3.2.3: port = *DIGIT; as a TCP port, at most 65535. */
static int port_valid(const char *s, size_t len)
{
    if (len > FRAMING_PORT_DIGITS)
        return 0;
    unsigned long v = 0;
    for (size_t i = 0; i < len; i++) {
        if (!is_digit((unsigned char)s[i]))
            return 0;
        v = v * 10 + (unsigned long)(s[i] - '0');
    }
    return v <= 65535;
}

/* "[v6]" with its brackets, followed by nothing or ":port". */
static int ip_literal_valid(const char *s, size_t len)
{
    const char *close = memchr(s, ']', len);
    if (!close)
        return 0;
    size_t inner = (size_t)(close - s) - 1;
    char addr[FRAMING_IPV6_MAX];
    struct in6_addr a6;
    if (inner == 0 || inner >= sizeof addr)
        return 0;
    memcpy(addr, s + 1, inner);
    addr[inner] = '\0';
    if (inet_pton(AF_INET6, addr, &a6) != 1)
        return 0;
    size_t rest = len - inner - 2;
    if (rest == 0)
        return 1;
    return close[1] == ':' && port_valid(close + 2, rest - 1);
}

int http_host_valid(const char *s, size_t len)
{
    if (len == 0)
        return 0;
    if (s[0] == '[')
        return ip_literal_valid(s, len);
    const char *colon = memchr(s, ':', len);
    size_t host_len = colon ? (size_t)(colon - s) : len;
    if (host_len == 0 || !chars_valid(s, host_len, reg_name_char))
        return 0;
    return !colon || port_valid(colon + 1, len - host_len - 1);
}

/* RFC 3986 §3.3 pchar, and '/' between segments. */
static int path_char(unsigned char c)
{
    return is_unreserved(c) || is_sub_delim(c) || c == ':' || c == '@' || c == '/';
}

/* RFC 3986 §3.4: query = *( pchar / "/" / "?" ). */
static int query_char(unsigned char c)
{
    return path_char(c) || c == '?';
}

/* Splits "/path?query" starting at off; checks its characters. */
static int origin_parse(const char *t, size_t off, size_t len, http_target *out)
{
    const char *q = memchr(t + off, '?', len - off);
    size_t path_end = q ? (size_t)(q - t) : len;
    out->path_off = off;
    out->path_len = path_end - off;
    out->has_query = q != NULL;
    out->query_off = q ? path_end + 1 : len;
    out->query_len = q ? len - path_end - 1 : 0;
    if (out->path_len && t[off] != '/')
        return SS_INVAL;
    if (!chars_valid(t + out->path_off, out->path_len, path_char) ||
        !chars_valid(t + out->query_off, out->query_len, query_char))
        return SS_INVAL;
    return SS_OK;
}

/* Length of "http://" or "https://" at the start of t (any case), or 0. */
static size_t scheme_len(const char *t, size_t len)
{
    if (len >= 7 && strncasecmp(t, "http://", 7) == 0)
        return 7;
    if (len >= 8 && strncasecmp(t, "https://", 8) == 0)
        return 8;
    return 0;
}

int http_target_parse(const char *t, size_t len, http_target *out)
{
    memset(out, 0, sizeof *out);
    if (len == 1 && t[0] == '*') {
        out->asterisk = 1;
        return SS_OK;
    }
    if (len > 0 && t[0] == '/')
        return origin_parse(t, 0, len, out);
    /* absolute-form (RFC 9112 §3.2.2): the authority, then the path. */
    size_t start = scheme_len(t, len);
    if (start == 0)
        return SS_INVAL;
    size_t end = start;
    while (end < len && t[end] != '/' && t[end] != '?' && t[end] != '#')
        end++;
    /* userinfo ('@') is refused by the host rule (RFC 9110 §4.2.4). */
    if (!http_host_valid(t + start, end - start))
        return SS_INVAL;
    return origin_parse(t, end, len, out);
}
