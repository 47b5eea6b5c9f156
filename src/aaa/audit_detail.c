#include "aaa/audit_detail.h"
#include "core/buf.h"
#include "core/json_out.h"
#include "core/limits.h"

#include <stdio.h>

/* Cuts a string value to SS_AUDIT_VALUE_MAX bytes at a UTF-8 boundary. */
static void shorten_strings(json_t *detail)
{
    const char *key;
    json_t *v;
    json_object_foreach(detail, key, v) {
        size_t len = json_is_string(v) ? json_string_length(v) : 0;
        if (len <= SS_AUDIT_VALUE_MAX)
            continue;
        const char *text = json_string_value(v);
        size_t cut = SS_AUDIT_VALUE_MAX;
        while (cut > 0 && ((unsigned char)text[cut] & 0xC0) == 0x80)
            cut--;
        json_object_set_new(detail, key, json_sprintf("%.*s...", (int)cut, text));
    }
}

void audit_detail_text(json_t *detail, char *out, size_t cap)
{
    ss_buf b = SS_BUF_INIT;
    int rc = detail ? json_out_value(&b, detail) : -1;
    if (rc == 0 && b.len >= cap) {
        shorten_strings(detail);
        buf_reset(&b);
        rc = json_out_value(&b, detail);
    }
    if (rc == 0 && b.len >= cap) {
        json_t *names = json_array();
        const char *key;
        json_t *v;
        json_object_foreach(detail, key, v)
            json_array_append_new(names, json_string(key));
        buf_reset(&b);
        json_t *brief = json_pack("{s:o}", "changed", names);
        rc = json_out_value(&b, brief);
        json_decref(brief);
    }
    snprintf(out, cap, "%s", rc == 0 && b.len < cap ? b.data : "{}");
    buf_free(&b);
}
