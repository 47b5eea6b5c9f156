/* topic.h — topic names, topic filters and how they match (MQTT 3.1.1 and
 * 5.0 §4.7). Wildcards at the first level do not match topics starting
 * with '$' (MQTT-4.7.2-1). Pure functions. */
#ifndef SS_MQTT_TOPIC_H
#define SS_MQTT_TOPIC_H

#include <stddef.h>
#include <stdint.h>


/* Topics: a limit of ours under the protocol's 65 535 bytes, so the
 * index's keys and a session's filters stay small; and a bound on levels,
 * so matching a topic against the tree costs at most this many steps. */
#define MQTT_TOPIC_MAX 1024u
#define MQTT_TOPIC_LEVELS_MAX 32u

/* A topic name a client may PUBLISH to: 1..MQTT_TOPIC_MAX bytes, at most
 * MQTT_TOPIC_LEVELS_MAX levels, no '+' or '#' (MQTT-3.3.2-2). UTF-8
 * validity is the codec's. 1 or 0. */
int mqtt_topic_name_valid(const char *t, size_t len);

/* A topic filter (MQTT-4.7.1): '#' only last and alone in its level, '+'
 * alone in its level; a shared one "$share/<group>/<filter>" with a
 * non-empty group without wildcards (5.0 §4.8.2). OUT shared (may be
 * NULL): 1 for a shared subscription. 1 or 0. */
int mqtt_topic_filter_valid(const char *f, size_t len, int *shared);

/* 1 when the filter (not shared) matches the topic name. */
int mqtt_topic_match(const char *filter, size_t flen, const char *topic, size_t tlen);

#endif
