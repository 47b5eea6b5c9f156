/* retain.h — retained messages, one per (org, topic), kept by reference
 * (message.h) and found by the filters of new subscriptions. Each org's
 * topics are its own. Loop thread only. */
#ifndef SS_MQTT_RETAIN_H
#define SS_MQTT_RETAIN_H

#include <stddef.h>
#include <stdint.h>

#include "mqtt/message.h"

typedef struct mqtt_retain mqtt_retain;

int mqtt_retain_new(mqtt_retain **out);
/* Drops every message's reference. */
void mqtt_retain_free(mqtt_retain *r);

/* Keeps m (a reference taken) as the retained message of its org and
 * topic, replacing the one before; an empty payload clears it instead
 * (MQTT-3.3.1-6, -7). 0, SS_NOMEM or SS_INVAL (the topic is not a valid
 * name: mqtt_topic_name_valid). */
int mqtt_retain_set(mqtt_retain *r, mqtt_msg *m);
/* The retained message of exactly this topic, or NULL (no reference
 * taken). */
mqtt_msg *mqtt_retain_get(mqtt_retain *r, const char *org_id, const char *topic, size_t len);
/* Calls cb for each retained message of the org whose topic the filter
 * (not shared) matches; expired ones (message expiry) are dropped on the
 * way and not passed. cb may not change the store. */
void mqtt_retain_match(mqtt_retain *r, const char *org_id, const char *filter, size_t len,
                       int64_t now_ms, void (*cb)(void *ctx, mqtt_msg *m), void *ctx);
/* The org was deleted: every retained message of its tree goes at once
 * (the store's rows went with the org). */
void mqtt_retain_drop_org(mqtt_retain *r, const char *org_id);
/* Retained messages the org holds now (the per-org limit is the broker's). */
size_t mqtt_retain_count(const mqtt_retain *r, const char *org_id);
/* Retained messages of every org together ($SYS/broker/…). */
size_t mqtt_retain_total(const mqtt_retain *r);

#endif
