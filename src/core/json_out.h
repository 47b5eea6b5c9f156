/* json_out.h — the JSON text of every answer, numbers in their shortest form.
 *
 * SPEC §2: a number is written as the shortest text that reads back to the
 * same double ("21.6", never "21.600000000000001"). jansson's json_dumps
 * prints every real with one fixed precision (%.17g by default), so answers
 * go through this writer instead: it walks the jansson tree and prints each
 * real with as few digits as round-trip through strtod. Strings, integers,
 * objects (in insertion order) and arrays come out as json_dumps would with
 * JSON_COMPACT. */
#ifndef SS_JSON_OUT_H
#define SS_JSON_OUT_H

#include <jansson.h>
#include <stddef.h>

#include "core/buf.h"

/* Room for the longest double: sign, 17 digits, point, "e-324", NUL. */
#define JSON_OUT_DOUBLE_MAX 32u

/* Writes v (finite) as the shortest decimal text that strtod reads back to
 * exactly v: "21.6", "0.1", "1e300", "5e-324", "-0", "100". OUT out (NUL-
 * terminated). Returns the length of the text. */
size_t json_out_double(double v, char out[JSON_OUT_DOUBLE_MAX]);

/* Appends the compact JSON text of v to out. Returns 0, SS_NOMEM (out holds
 * a partial text then; the caller discards it) or SS_INVAL (v is NULL). */
int json_out_value(ss_buf *out, const json_t *v);

#endif
