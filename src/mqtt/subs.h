/* subs.h — the subscription index: which sessions a PUBLISH goes to.
 *
 * Every organisation has a topic tree of its own: the index is keyed by
 * (org, filter), so nothing a client of one org does can reach or reveal
 * another's. Matching walks the org's tree level by level (at most
 * MQTT_TOPIC_LEVELS_MAX), never the list of subscriptions. Loop thread
 * only. */
#ifndef SS_MQTT_SUBS_H
#define SS_MQTT_SUBS_H

#include <stddef.h>
#include <stdint.h>

#include "mqtt/topic.h"

typedef struct mqtt_subs mqtt_subs;

/* One subscription as the index holds it. `owner` is the subscriber's (a
 * session); the index never looks inside it. */
typedef struct mqtt_sub_entry {
    void *owner;
    uint8_t options;          /* MQTT_SUBOPT_* */
    uint32_t sub_id;          /* 5.0 subscription identifier, 0: none */
    const char *share_group;  /* NULL for a non-shared subscription */
} mqtt_sub_entry;

int mqtt_subs_new(mqtt_subs **out);
void mqtt_subs_free(mqtt_subs *s);

/* Adds owner's subscription to `filter` (shared ones included) in the org,
 * or replaces its options and id when owner already has this same filter
 * (MQTT-3.8.4-3). OUT replaced (may be NULL): 1 when it existed. 0,
 * SS_NOMEM or SS_INVAL (not a valid filter: mqtt_topic_filter_valid). */
int mqtt_subs_add(mqtt_subs *s, const char *org_id, const char *filter, size_t len, void *owner,
                  uint8_t options, uint32_t sub_id, int *replaced);
/* Removes owner's subscription to exactly `filter`. 0 or SS_NOT_FOUND. */
int mqtt_subs_remove(mqtt_subs *s, const char *org_id, const char *filter, size_t len,
                     void *owner);

/* Calls cb for each subscription in org_id matching topic: every
 * non-shared one, and for each shared group one member, chosen round-robin
 * among those `pick` accepts (pick NULL, or none accepts: any member), so a
 * group's messages go to its online members in turn. A session with
 * several matching subscriptions gets one call per subscription (the
 * broker merges them into one delivery, MQTT-3.3.4-2). cb may not change
 * the index. */
typedef void (*mqtt_subs_cb)(void *ctx, const mqtt_sub_entry *e);
void mqtt_subs_match(mqtt_subs *s, const char *org_id, const char *topic, size_t len,
                     int (*pick)(void *owner), mqtt_subs_cb cb, void *ctx);

/* Subscriptions held in all orgs. */
size_t mqtt_subs_count(const mqtt_subs *s);
/* Tree nodes held in all orgs (the root included): what the index's
 * memory grows with; a node nothing needs any more is freed at once. */
size_t mqtt_subs_nodes(const mqtt_subs *s);

#endif
