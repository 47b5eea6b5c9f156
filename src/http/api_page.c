/* api_page.c — pages of list answers: limit, the opaque cursor, and the
 * Next-Cursor header.
 *
 * A cursor is the key of the last row given, in a small binary form
 * (base64url, no padding): per part a tag, 's' with a 16-bit length and
 * the bytes, or 'i' with 8 bytes big-endian. Binary rather than JSON so a
 * key of a 200-byte name stays short whatever its characters. A cursor
 * says only where a list of the caller's own resumes: the store is asked
 * within the caller's access as for the first page, so a forged one shows
 * nothing more. */
#include "http/api_page.h"

#include "core/err.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A text part is at most an email (SS_EMAIL_MAX) or a name. */
#define PAGE_TEXT_PART_MAX 255u
/* The longest key. The longest of any list, a device's or an org's (a name
 * and an id), encodes in 308 characters: with "Next-Cursor: " it fits the
 * room of an answer's extra headers (API_EXTRA_HEADERS_MAX). */
#define PAGE_KEY_BYTES_MAX (API_PAGE_KEY_PARTS * (3 + PAGE_TEXT_PART_MAX))
/* Its base64 text, with room for the terminator. */
#define PAGE_CURSOR_TEXT_MAX (PAGE_KEY_BYTES_MAX / 3 * 4 + 8)
#define PAGE_PARAM_MAX 32

static void refuse(api_call *call, const char *message)
{
    api_reply_error(call, 400, "bad_parameter", message);
}

static size_t key_encode(const json_t *key, unsigned char *out, size_t cap)
{
    size_t n = 0, i;
    const json_t *part;
    json_array_foreach(key, i, part) {
        if (json_is_integer(part)) {
            if (n + 9 > cap)
                return 0;
            uint64_t v = (uint64_t)json_integer_value(part);
            out[n++] = 'i';
            for (int b = 7; b >= 0; b--)
                out[n++] = (unsigned char)(v >> (8 * b));
            continue;
        }
        const char *s = json_string_value(part);
        size_t len = s ? strlen(s) : 0;
        if (!s || len > PAGE_TEXT_PART_MAX || n + 3 + len > cap)
            return 0;
        out[n++] = 's';
        out[n++] = (unsigned char)(len >> 8);
        out[n++] = (unsigned char)len;
        memcpy(out + n, s, len);
        n += len;
    }
    return n;
}

/* The key of a cursor's bytes when it has the shape; NULL else. */
static json_t *key_decode(const unsigned char *in, size_t len, const char *shape)
{
    json_t *key = json_array();
    size_t at = 0;
    for (const char *want = shape; *want; want++) {
        if (at >= len || in[at] != (unsigned char)*want)
            break;
        at++;
        if (*want == 'i' && at + 8 <= len) {
            uint64_t v = 0;
            for (int b = 0; b < 8; b++)
                v = v << 8 | in[at++];
            json_array_append_new(key, json_integer((json_int_t)v));
            continue;
        }
        size_t slen = at + 2 <= len ? (size_t)in[at] << 8 | in[at + 1] : SIZE_MAX;
        if (*want != 's' || slen > PAGE_TEXT_PART_MAX || at + 2 + slen > len)
            break;
        json_t *s = json_stringn((const char *)in + at + 2, slen);
        if (!s)  /* not UTF-8, or holds a NUL */
            break;
        json_array_append_new(key, s);
        at += 2 + slen;
    }
    if (at == len && json_array_size(key) == strlen(shape))
        return key;
    json_decref(key);
    return NULL;
}

static int parse_limit(api_call *call, size_t def, size_t max, size_t *out)
{
    char text[PAGE_PARAM_MAX], *end;
    int rc = http_query_get(call->req, "limit", text, sizeof text);
    *out = def;
    if (rc == 0)
        return 0;
    long long v = rc > 0 ? strtoll(text, &end, 10) : 0;
    if (rc < 0 || !text[0] || *end || v < 1 || (unsigned long long)v > max) {
        char msg[96];
        snprintf(msg, sizeof msg, "query parameter 'limit' is a whole number from 1 to %zu",
                 max);
        refuse(call, msg);
        return 1;
    }
    *out = (size_t)v;
    return 0;
}

static int parse_cursor(api_call *call, const char *shape, json_t **out)
{
    char text[PAGE_CURSOR_TEXT_MAX];
    unsigned char bytes[PAGE_KEY_BYTES_MAX];
    size_t len = 0;
    *out = NULL;
    int rc = http_query_get(call->req, "cursor", text, sizeof text);
    if (rc == 0)
        return 0;
    if (rc > 0 && sodium_base642bin(bytes, sizeof bytes, text, strlen(text), NULL, &len, NULL,
                                    sodium_base64_VARIANT_URLSAFE_NO_PADDING) == 0)
        *out = key_decode(bytes, len, shape);
    if (*out)
        return 0;
    refuse(call, "query parameter 'cursor' is not one this list gave (pass the Next-Cursor "
                 "of the previous page as it is)");
    return 1;
}

int api_page_begin(api_call *call, size_t def, size_t max, const char *shape, api_page *p)
{
    memset(p, 0, sizeof *p);
    if (parse_limit(call, def, max, &p->limit) || parse_cursor(call, shape, &p->after))
        return 1;
    p->items = json_array();
    return 0;
}

const char *api_page_after_text(const api_page *p, size_t i)
{
    return p->after ? json_string_value(json_array_get(p->after, i)) : NULL;
}

long long api_page_after_int(const api_page *p, size_t i)
{
    return p->after ? (long long)json_integer_value(json_array_get(p->after, i)) : 0;
}

static int part_cmp(const json_t *a, const json_t *b)
{
    if (json_is_integer(a) && json_is_integer(b)) {
        json_int_t x = json_integer_value(a), y = json_integer_value(b);
        return (x > y) - (x < y);
    }
    const char *s = json_string_value(a), *t = json_string_value(b);
    int c = strcmp(s ? s : "", t ? t : "");  /* bytes, as the store's BINARY order */
    return (c > 0) - (c < 0);
}

int api_page_after(const api_page *p, const json_t *key, const char *order)
{
    if (!p->after)
        return 1;
    for (size_t i = 0; order[i]; i++) {
        int c = part_cmp(json_array_get(key, i), json_array_get(p->after, i));
        if (c != 0)
            return order[i] == '-' ? c < 0 : c > 0;
    }
    return 0;  /* the cursor's own row */
}

int api_page_add(api_page *p, json_t *item, json_t *key)
{
    if (json_array_size(p->items) >= p->limit) {
        p->more = 1;
        json_decref(item);
        json_decref(key);
        return 1;
    }
    json_array_append_new(p->items, item);
    json_decref(p->last);
    p->last = key;
    return 0;
}

static void set_next_cursor(api_call *call, const json_t *key)
{
    unsigned char bytes[PAGE_KEY_BYTES_MAX];
    char text[PAGE_CURSOR_TEXT_MAX];
    size_t len = key_encode(key, bytes, sizeof bytes);
    if (len == 0)
        return;
    sodium_bin2base64(text, sizeof text, bytes, len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    size_t used = strlen(call->extra_headers);
    snprintf(call->extra_headers + used, sizeof call->extra_headers - used,
             "Next-Cursor: %s\r\n", text);
}

void api_page_reply(api_call *call, int rc, api_page *p)
{
    if (rc == 0 && p->more && p->last)
        set_next_cursor(call, p->last);
    api_reply_list(call, rc, p->items);
    p->items = NULL;
    json_decref(p->after);
    json_decref(p->last);
    p->after = p->last = NULL;
}
