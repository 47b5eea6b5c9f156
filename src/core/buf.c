#include "core/buf.h"
#include "core/err.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Small first allocation: most buffers hold one short message. */
#define BUF_MIN_CAP 64u

int buf_reserve(ss_buf *b, size_t extra)
{
    if (extra > SIZE_MAX / 2 - b->len)
        return SS_NOMEM;
    size_t need = b->len + extra;
    if (need <= b->cap && b->data)
        return SS_OK;
    size_t cap = b->cap ? b->cap : BUF_MIN_CAP;
    while (cap < need)
        cap *= 2;
    char *p = realloc(b->data, cap + 1);
    if (!p)
        return SS_NOMEM;
    b->data = p;
    b->cap = cap;
    b->data[b->len] = '\0';
    return SS_OK;
}

int buf_append(ss_buf *b, const void *data, size_t len)
{
    if (buf_reserve(b, len))
        return SS_NOMEM;
    if (len)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
    return SS_OK;
}

int buf_append_str(ss_buf *b, const char *s)
{
    return buf_append(b, s, strlen(s));
}

int buf_printf(ss_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || buf_reserve(b, (size_t)n))
        return SS_NOMEM;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return SS_OK;
}

void buf_consume(ss_buf *b, size_t n)
{
    if (n >= b->len) {
        buf_reset(b);
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
    b->data[b->len] = '\0';
}

void buf_reset(ss_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

void buf_free(ss_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

char *buf_steal(ss_buf *b)
{
    char *p = b->data;
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}
