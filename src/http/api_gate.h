/* api_gate.h — fair shares of the worker pool for heavy REST requests
 * (data queries, channel lists, usage, audit and session lists, sign-in).
 * Private to src/http.
 *
 * Two gates:
 * - before a heavy request is queued for a worker (loop thread): at most
 *   SS_API_HEAVY_PER_PRINCIPAL in flight per credential (a session token
 *   or API key; for sign-in and requests without one, the client
 *   address), and at most SS_API_HEAVY_QUEUED_MAX in flight in all; over
 *   either, 429 too_many_requests with Retry-After;
 * - once a worker knows the org a heavy request acts in (any thread): at
 *   most SS_API_HEAVY_PER_ORG running per org and SS_API_HEAVY_RUNNING_MAX
 *   in all, so one org never holds more than part of the pool and a light
 *   request always finds a free worker soon; a request over these waits
 *   on the loop (bounded by the first gate) and runs when a share frees.
 *   Sign-ins take this gate as one pseudo-org, API_GATE_SIGN_IN, whose
 *   share is SS_API_SIGN_IN_RUNNING_MAX. */
#ifndef SS_HTTP_API_GATE_H
#define SS_HTTP_API_GATE_H

#include <stddef.h>
#include <stdint.h>

#include "core/limits.h"
#include "http/api.h"

/* How long a client refused by a gate should wait before trying again. */
#define API_GATE_RETRY_AFTER_S 1

/* The org gate's name for sign-in: no org id is one (ids are hex). */
#define API_GATE_SIGN_IN "sign-in"

/* A credential's key in the gate: a keyed hash, so a client cannot choose
 * keys that collide. */
#define API_GATE_KEY_BYTES 16

/* The gate key of a credential (token text, or the address). */
void api_gate_key(const api_gate *g, const char *text, size_t len,
                  uint8_t out[API_GATE_KEY_BYTES]);

/* Loop thread. 0 when admitted (then api_gate_leave_principal once the
 * answer is ready), SS_BUSY when the credential or the server has as many
 * heavy requests in flight as allowed. */
int api_gate_enter_principal(api_gate *g, const uint8_t key[API_GATE_KEY_BYTES]);
void api_gate_leave_principal(api_gate *g, const uint8_t key[API_GATE_KEY_BYTES]);

/* Any thread. 0 when admitted (then api_gate_leave_org), SS_BUSY when the
 * org or the pool runs as many heavy requests as allowed. */
int api_gate_enter_org(api_gate *g, const char *org_id);
void api_gate_leave_org(api_gate *g, const char *org_id);
/* 1 when api_gate_enter_org would admit the org now. Any thread. */
int api_gate_has_room(api_gate *g, const char *org_id);

#endif
