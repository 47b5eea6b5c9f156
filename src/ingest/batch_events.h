/* batch_events.h — a stored batch as the events the live outputs tell
 * (MQTT's readings/<device>, the SSE live stream), written once for both.
 *
 * One event per distinct ts of the batch, in ts order:
 * {"device_id":…,"ts":…,"values":{…}} (the device id only when asked),
 * numbers as the REST API writes them (core/json_out.h); of one channel's
 * readings at one ts, the last that came is the one told. */
#ifndef SS_INGEST_BATCH_EVENTS_H
#define SS_INGEST_BATCH_EVENTS_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "ingest/fanout.h"

/* One event: json[0..len) is valid during the call only. Nonzero stops. */
typedef int (*batch_event_cb)(void *ctx, int64_t ts, const char *json, size_t len);

/* Calls cb for each event of b, in ts order, building each in scratch
 * (the caller's, reused across calls). Returns 0, SS_NOMEM, or the first
 * nonzero value cb returned. */
int batch_events(const fanout_batch *b, int with_device, ss_buf *scratch, batch_event_cb cb,
                 void *ctx);

#endif
