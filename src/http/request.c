/* request.c — what a handler reads of a request: headers by name and query
 * parameters, percent-decoded. Part of the HTTP server's surface
 * (http/server.h); nothing here allocates. */
#include "http/server.h"
#include "core/err.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

/* Parameter names longer than this (whitespace aside) are not compared by
 * http_query_has_name: the names it is asked about are short. */
#define HTTP_QUERY_NAME_CMP_MAX 64u

const char *http_request_header(const http_request *req, const char *name)
{
    const char *p = req->headers.data;
    for (size_t i = 0; i < req->header_count && p; i++) {
        const char *value = p + strlen(p) + 1;
        if (strcmp(p, name) == 0)
            return value;
        p = value + strlen(value) + 1;
    }
    return NULL;
}

static int hex_value(char ch)
{
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

/* The character at s[*i] of a query component, decoded ('+' is a space,
 * %XX a byte), leaving *i on its last byte; -1 for a malformed escape. */
static int decode_char(const char *s, size_t len, size_t *i)
{
    size_t at = *i;
    if (s[at] == '+')
        return ' ';
    if (s[at] != '%')
        return (unsigned char)s[at];
    int hi = at + 1 < len ? hex_value(s[at + 1]) : -1;
    int lo = at + 2 < len ? hex_value(s[at + 2]) : -1;
    if (hi < 0 || lo < 0)
        return -1;
    *i = at + 2;
    return hi * 16 + lo;
}

static int decode_component(const char *s, size_t len, char *out, size_t cap)
{
    size_t o = 0;
    if (cap == 0)
        return SS_TOO_LARGE;
    for (size_t i = 0; i < len; i++) {
        int ch = decode_char(s, len, &i);
        if (ch < 0)
            return SS_INVAL;
        if (o + 1 >= cap)
            return SS_TOO_LARGE;
        out[o++] = (char)ch;
    }
    out[o] = '\0';
    return SS_OK;
}

/* Finds parameter `name` in the query; sets value/len. 1 found, 0 not. */
static int query_find(const char *query, const char *name, const char **value, size_t *vlen)
{
    size_t nlen = strlen(name);
    const char *p = query;
    while (*p) {
        const char *end = strchr(p, '&');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        const char *eq = memchr(p, '=', len);
        size_t klen = eq ? (size_t)(eq - p) : len;
        char key[64];
        if (klen < sizeof key && decode_component(p, klen, key, sizeof key) == 0 &&
            strlen(key) == nlen && strcmp(key, name) == 0) {
            *value = eq ? eq + 1 : p + len;
            *vlen = eq ? len - klen - 1 : 0;
            return 1;
        }
        p += len + (end ? 1 : 0);
    }
    return 0;
}

int http_query_get(const http_request *req, const char *name, char *out, size_t cap)
{
    const char *value, *again;
    size_t vlen, alen;
    if (!query_find(req->query, name, &value, &vlen))
        return 0;
    /* Twice is ambiguous: no first-wins, as with headers. */
    if (query_find(value + vlen, name, &again, &alen))
        return SS_INVAL;
    int rc = decode_component(value, vlen, out, cap);
    return rc ? rc : 1;
}

/* Decodes a parameter name into out (cap bytes), without its leading and
 * trailing whitespace. 1 when it fits, 0 when longer (or malformed). */
static int name_decode_trimmed(const char *s, size_t len, char *out, size_t cap)
{
    size_t n = 0, spaces = 0;
    for (size_t i = 0; i < len; i++) {
        int ch = decode_char(s, len, &i);
        if (ch < 0)
            return 0;
        if (isspace(ch)) {
            spaces += n > 0;
            continue;
        }
        if (n + spaces + 1 >= cap)
            return 0;
        memset(out + n, ' ', spaces);
        n += spaces;
        spaces = 0;
        out[n++] = (char)ch;
    }
    out[n] = '\0';
    return 1;
}

int http_query_has_name(const http_request *req, const char *const *names, size_t count)
{
    const char *p = req->query;
    while (*p) {
        const char *end = strchr(p, '&');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        const char *eq = memchr(p, '=', len);
        char key[HTTP_QUERY_NAME_CMP_MAX];
        if (name_decode_trimmed(p, eq ? (size_t)(eq - p) : len, key, sizeof key))
            for (size_t i = 0; i < count; i++)
                if (strcasecmp(key, names[i]) == 0)
                    return 1;
        p += len + (end ? 1 : 0);
    }
    return 0;
}

/* 1 when the component decodes (its bytes are not kept). */
static int component_valid(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (decode_char(s, len, &i) < 0)
            return 0;
    return 1;
}

int http_query_next(const http_request *req, size_t *pos, http_query_param *out)
{
    const char *q = req->query;
    size_t at = *pos;
    while (q[at] == '&')
        at++;
    if (!q[at]) {
        *pos = at;
        return 0;
    }
    const char *p = q + at;
    const char *end = strchr(p, '&');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    const char *eq = memchr(p, '=', len);
    size_t klen = eq ? (size_t)(eq - p) : len;
    out->name_bad = decode_component(p, klen, out->name, sizeof out->name) != 0;
    if (out->name_bad)
        out->name[0] = '\0';
    out->value_bad = eq && !component_valid(eq + 1, len - klen - 1);
    *pos = at + len;
    return 1;
}
