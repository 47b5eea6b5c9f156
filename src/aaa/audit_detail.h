/* audit_detail.h — the detail text of an audit entry, one way for every
 * writer (the REST API's api_audit and the offline reset-password).
 *
 * The detail is an object of the fields changed and their new values,
 * never a secret: a secret field changed is named with the value
 * AUDIT_SECRET_CHANGED. It must fit the store's column
 * (STORE_AUDIT_DETAIL_MAX), so long values are cut to fit. */
#ifndef SS_AUDIT_DETAIL_H
#define SS_AUDIT_DETAIL_H

#include <jansson.h>
#include <stddef.h>

#define AUDIT_SECRET_CHANGED "(changed)"

/* The detail (NULL: none) as JSON text in out: as it is when it fits cap,
 * else with each string value cut to SS_AUDIT_VALUE_MAX bytes (at a UTF-8
 * boundary, "..." added), else only the field names ({"changed":[...]}),
 * else "{}". May shorten detail's values in place; the caller keeps its
 * reference. */
void audit_detail_text(json_t *detail, char *out, size_t cap);

#endif
