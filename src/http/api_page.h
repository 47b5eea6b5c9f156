/* api_page.h — one page of a list answer (SPEC §2: `limit` and `cursor`).
 * Private to src/http.
 *
 * A list answers what it always did, a JSON array; when there is more,
 * the header `Next-Cursor` carries the cursor of the next page. A cursor
 * is opaque to clients: the ordering key of the last row given (keyset),
 * so a page resumes after that row whatever was added or removed
 * meanwhile: nothing twice, nothing that existed throughout missed.
 *
 * A handler reads the parameters (api_page_begin), has the store start
 * after the cursor's key (or skips the rows up to it: api_page_after),
 * adds rows with their keys until api_page_add says the page is full, and
 * answers with api_page_reply. */
#ifndef SS_HTTP_API_PAGE_H
#define SS_HTTP_API_PAGE_H

#include <jansson.h>
#include <stddef.h>

#include "http/api_call.h"

/* Parts of an ordering key: (name, id), (time, id) ... */
#define API_PAGE_KEY_PARTS 2

typedef struct api_page {
    size_t limit;
    /* The cursor's key, a JSON array of API_PAGE_KEY_PARTS at most:
     * strings and integers as the list's shape says; NULL: from the start. */
    json_t *after;
    json_t *items;   /* the page's rows */
    json_t *last;    /* key of the last row taken */
    int more;        /* a row past the page was seen */
} api_page;

/* Reads ?limit (default def, 1 to max) and ?cursor, whose key must have
 * the list's shape: one letter a part, 's' a string, 'i' an integer
 * ("ss": name and id). Answers 400 bad_parameter naming the parameter and
 * returns 1 when either is bad; else 0 with p ready (free it with
 * api_page_reply). */
int api_page_begin(api_call *call, size_t def, size_t max, const char *shape, api_page *p);

/* Part i of the cursor's key (NULL / 0 when there is no cursor). */
const char *api_page_after_text(const api_page *p, size_t i);
long long api_page_after_int(const api_page *p, size_t i);

/* For a list the store walks from its start: 1 when the row whose key is
 * `key` (not stolen) comes after the cursor in the list's order, where
 * `order` has one letter a part, '+' ascending, '-' descending; 1 as
 * well when there is no cursor. */
int api_page_after(const api_page *p, const json_t *key, const char *order);

/* Takes a row (item and key stolen). Returns 0 to go on, 1 when the page
 * was full already: the row is not taken (freed), `more` is set, and the
 * store's walk may stop. */
int api_page_add(api_page *p, json_t *item, json_t *key);

/* Answers 200 with the rows and, when there is more, the Next-Cursor
 * header; or the store error of rc. Frees what p holds. */
void api_page_reply(api_call *call, int rc, api_page *p);

#endif
