#include "core/json_out.h"
#include "core/err.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* DBL_DIG (15) significant digits always survive a trip through a normal
 * double and back; 17 always identify a double. */
#define JSON_OUT_DIGITS_SAFE 15
#define JSON_OUT_DIGITS_EXACT 17

/* "1e+300" → "1e300", "1e-05" → "1e-5": the exponent without '+' or
 * leading zeros, which strtod reads the same. */
static size_t tidy_exponent(char *s)
{
    char *e = strchr(s, 'e');
    if (!e)
        return strlen(s);
    char *src = e + 1, *dst = e + 1;
    if (*src == '+')
        src++;
    else if (*src == '-')
        *dst++ = *src++;
    while (*src == '0' && src[1])
        src++;
    memmove(dst, src, strlen(src) + 1);
    return strlen(s);
}

/* For a normal double, a text of at most 15 digits that reads back to it
 * is what %.15g prints (the double lies within half an ulp of that text,
 * well inside half a unit of the 15th digit), so 15, 16, 17 digits find the
 * shortest. A subnormal has fewer bits, so it tries from one digit up. */
size_t json_out_double(double v, char out[JSON_OUT_DOUBLE_MAX])
{
    if (v == 0)
        return (size_t)snprintf(out, JSON_OUT_DOUBLE_MAX, "%s", signbit(v) ? "-0" : "0");
    int digits = fabs(v) < DBL_MIN ? 1 : JSON_OUT_DIGITS_SAFE;
    for (; digits < JSON_OUT_DIGITS_EXACT; digits++) {
        snprintf(out, JSON_OUT_DOUBLE_MAX, "%.*g", digits, v);
        if (strtod(out, NULL) == v)
            return tidy_exponent(out);
    }
    snprintf(out, JSON_OUT_DOUBLE_MAX, "%.*g", JSON_OUT_DIGITS_EXACT, v);
    return tidy_exponent(out);
}

/* JSON string escapes, as jansson writes them without JSON_ENSURE_ASCII:
 * quote, backslash and control characters; UTF-8 passes through. */
static int write_string(ss_buf *out, const char *s, size_t len)
{
    int rc = buf_append(out, "\"", 1);
    size_t run = 0;
    for (size_t i = 0; rc == 0 && i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        rc = buf_append(out, s + run, i - run);
        run = i + 1;
        static const char short_esc[] = "btn?fr";
        if (rc == 0 && (c == '"' || c == '\\'))
            rc = buf_printf(out, "\\%c", c);
        else if (rc == 0 && c >= '\b' && c <= '\r' && c != '\v')
            rc = buf_printf(out, "\\%c", short_esc[c - '\b']);
        else if (rc == 0)
            rc = buf_printf(out, "\\u%04x", c);
    }
    if (rc == 0)
        rc = buf_append(out, s + run, len - run);
    return rc ? rc : buf_append(out, "\"", 1);
}

static int write_object(ss_buf *out, const json_t *v)
{
    int rc = buf_append(out, "{", 1);
    const char *key;
    json_t *item;
    int first = 1;
    json_object_foreach((json_t *)v, key, item) {
        if (rc == 0 && !first)
            rc = buf_append(out, ",", 1);
        if (rc == 0)
            rc = write_string(out, key, strlen(key));
        if (rc == 0)
            rc = buf_append(out, ":", 1);
        if (rc == 0)
            rc = json_out_value(out, item);
        first = 0;
    }
    return rc ? rc : buf_append(out, "}", 1);
}

static int write_array(ss_buf *out, const json_t *v)
{
    int rc = buf_append(out, "[", 1);
    for (size_t i = 0; rc == 0 && i < json_array_size(v); i++) {
        if (i)
            rc = buf_append(out, ",", 1);
        if (rc == 0)
            rc = json_out_value(out, json_array_get(v, i));
    }
    return rc ? rc : buf_append(out, "]", 1);
}

int json_out_value(ss_buf *out, const json_t *v)
{
    char num[JSON_OUT_DOUBLE_MAX];
    switch (v ? json_typeof(v) : JSON_NULL) {
    case JSON_OBJECT:
        return write_object(out, v);
    case JSON_ARRAY:
        return write_array(out, v);
    case JSON_STRING:
        return write_string(out, json_string_value(v), json_string_length(v));
    case JSON_INTEGER:
        return buf_printf(out, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    case JSON_REAL:
        return buf_append(out, num, json_out_double(json_real_value(v), num));
    case JSON_TRUE:
        return buf_append_str(out, "true");
    case JSON_FALSE:
        return buf_append_str(out, "false");
    case JSON_NULL:
    default:
        return v ? buf_append_str(out, "null") : SS_INVAL;
    }
}
