/* devices.h — the lifecycle of a device: store, token cache, live
 * connections, purge of its readings, audit (aaa/service.h).
 *
 * Each function expects the caller to have checked access: editor in the
 * device's org (aaa_require_role, aaa_device_access). */
#ifndef SS_AAA_DEVICES_H
#define SS_AAA_DEVICES_H

#include "aaa/secret.h"
#include "aaa/service.h"

/* Creates a device of org_id with a new token: stored, then known to
 * ingest at once. attributes: a JSON object's text, checked by the caller
 * (NULL: none). OUT d, token (shown once; zeroed on failure). 0,
 * SS_QUOTA (the org or an ancestor has as many devices as its quota
 * allows), SS_NOT_FOUND (no such org) or a store error. */
int aaa_device_create(aaa_ctx *cx, const char *org_id, const char *name, const char *description,
                      const char *attributes, store_device *d, char token[SECRET_TEXT_MAX]);

/* The fields a change sets; NULL / set_disabled 0: left as they are. */
typedef struct aaa_device_patch {
    const char *name;
    const char *description;
    const char *attributes;  /* the whole new object's text, checked by the caller */
    int set_disabled;
    int disabled;
} aaa_device_patch;

/* Changes the device d (as loaded) and writes the result back into d. A
 * device disabled is refused by ingest at once and its live connections
 * close. 0 or a store error. */
int aaa_device_update(aaa_ctx *cx, store_device *d, const aaa_device_patch *patch);

/* Deletes the device: its token is refused before the store forgets it,
 * so no reading lands after the answer; its connections close; its
 * readings are purged in the background. 0 or a store error (the device
 * then stays as it was). */
int aaa_device_delete(aaa_ctx *cx, const store_device *d);

/* Gives the device a new token; the old one is refused at once and its
 * connections close. OUT token (zeroed on failure). 0 or a store error. */
int aaa_device_rotate(aaa_ctx *cx, const store_device *d, char token[SECRET_TEXT_MAX]);

#endif
