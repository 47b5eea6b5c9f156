/* fuzz_line.c — libFuzzer target for the line format (SPEC §3.2):
 * parse_line_readings over arbitrary bytes, the parser every TCP line, UDP
 * datagram and text/plain HTTP body goes through.
 *
 * Beyond "no crash, no leak, no read past len" (ASan, UBSan), it checks the
 * parser's promises: on failure nothing is appended; on success every
 * reading has a valid channel, a finite value and a ts in range; and the
 * same input parses the same way twice. Built and run by fuzz/run.sh. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/limits.h"
#include "ingest/parse.h"
#include "core/reading.h"

/* A fixed clock: runs are reproducible from the crashing input alone. */
#define FUZZ_NOW_MS 1732480000000LL

static void check_readings(const ss_readings *r)
{
    for (size_t i = 0; i < r->len; i++) {
        const ss_reading *x = &r->items[i];
        if (!reading_channel_valid(x->channel, strlen(x->channel)) || !isfinite(x->value) ||
            reading_ts_check(x->ts, FUZZ_NOW_MS) != SS_OK)
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A copy of exactly `size` bytes on the heap: ASan flags any read past
     * the end, which a NUL-terminated fuzzer buffer could hide. */
    char *body = malloc(size ? size : 1);
    if (!body)
        return 0;
    memcpy(body, data, size);
    ss_readings a = SS_READINGS_INIT, b = SS_READINGS_INIT;
    ss_parse_error ea = {0}, eb = {0};
    int ra = parse_line_readings(body, size, FUZZ_NOW_MS, SS_INGEST_READINGS_MAX, &a, &ea);
    int rb = parse_line_readings(body, size, FUZZ_NOW_MS, SS_INGEST_READINGS_MAX, &b, &eb);
    if (ra != rb || a.len != b.len)
        abort();
    if (ra != SS_OK) {
        if (a.len != 0 || memchr(ea.message, '\0', sizeof ea.message) == NULL)
            abort();
    } else {
        if (a.len == 0)
            abort();
        check_readings(&a);
        for (size_t i = 0; i < a.len; i++)
            if (a.items[i].ts != b.items[i].ts || a.items[i].value != b.items[i].value ||
                strcmp(a.items[i].channel, b.items[i].channel) != 0)
                abort();
    }
    readings_free(&a);
    readings_free(&b);
    free(body);
    return 0;
}
