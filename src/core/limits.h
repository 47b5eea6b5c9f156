/* limits.h — every limit of SensorSpace, named, with why it has its value.
 *
 * Configuration may lower a limit but never raise it past the ceiling here
 * (the sqlite3_limit habit): config_load clamps to these. */
#ifndef SS_LIMITS_H
#define SS_LIMITS_H

#include <stdint.h>

/* SPEC §4: 1 MiB HTTP body by default. A batch of 10 000 JSON readings of a
 * few channels fits with room; bigger uploads should be split. */
#define SS_HTTP_BODY_MAX (1024u * 1024u)
/* SPEC §4: 64 KiB request head. Browsers send under 8 KiB; the rest is abuse. */
#define SS_HTTP_HEAD_MAX (64u * 1024u)
/* SPEC §4: time to send the first message (an HTTP request head, counted
 * from the first byte of the request or from accept for the first one; the
 * TCP AUTH line; MQTT's CONNECT). Defeats slow-drip clients. The ceiling and
 * default of --first-message-timeout; tests set a fraction of a second, and
 * below the minimum a TLS handshake on a busy machine would not fit. */
#define SS_FIRST_MESSAGE_TIMEOUT_MS 10000u
#define SS_FIRST_MESSAGE_TIMEOUT_MIN_MS 100u
/* Time to deliver the body once the head is in: 1 MiB at 256 kbit/s is 33 s. */
#define SS_HTTP_BODY_TIMEOUT_MS 60000u
/* An idle keep-alive connection is closed after this long, like nginx's 75 s. */
#define SS_HTTP_KEEPALIVE_TIMEOUT_MS 75000u
/* A closing connection (HTTP or the TCP line socket, both on
 * net/conn_set) may take this long to get its last answers out, so a peer
 * that stopped reading cannot hold the socket, nor a shutdown, for ever;
 * one still sending (a body we refused) is read and discarded meanwhile,
 * up to SS_HTTP_LINGER_BYTES_MAX, so it reads our answer instead of a
 * reset (nginx's lingering close: lingering_time 30 s; a refused upload of
 * a few MB fits). */
#define SS_CLOSE_LINGER_MS 10000u
#define SS_HTTP_LINGER_BYTES_MAX (16u * 1024u * 1024u)
/* Orgs nest a few levels (provider, customer, site). Every walk up or down
 * the org tree (roles, ancestry checks, the quota roll-up) stops at this
 * depth, so a cycle (impossible through the API, possible in a hand-edited
 * store) cannot loop forever; they share it so that they agree on which
 * orgs are inside. A plain literal: the SQLite engine pastes it into SQL. */
#define SS_ORG_DEPTH_MAX 32
/* Unsent output a connection may hold before its next requests wait
 * (back-pressure): a client that pipelines and never reads holds one
 * answer, not all of them. */
#define SS_HTTP_UNSENT_MAX (64u * 1024u)
/* Unsent output all connections of a listener may hold: past it an answer
 * larger than SS_HTTP_UNSENT_MAX is refused with 503 (small ones still go),
 * so clients that do not read cannot pile up memory one large answer per
 * connection; the send stall timeout frees what they hold. */
#define SS_HTTP_UNSENT_TOTAL_MAX (32u * 1024u * 1024u)
/* Unsent output the connections of one principal (a person, key or device)
 * may hold together: past it that principal's next large answer is refused
 * with 429, so one tenant's clients that do not read never reach the
 * listener's budget above, which would refuse everyone's large answers.
 * Three of the largest query answers (100 000 points, ~2.3 MB) fit. */
#define SS_HTTP_UNSENT_PRINCIPAL_MAX (8u * 1024u * 1024u)
/* A connection whose unsent output has not moved for this long is closed,
 * like nginx's send_timeout (60 s between two successful writes). */
#define SS_HTTP_SEND_STALL_MS 60000u
/* A streamed answer (export, live stream) is fed while less than this is
 * unsent: a few socket buffers' worth keeps the link busy, and what one
 * streamed answer holds stays well under SS_HTTP_UNSENT_MAX. */
#define SS_HTTP_STREAM_LOW_WATER (32u * 1024u)
/* Headers kept per request; the rest are counted against the head limit and
 * dropped. We read only a handful. */
#define SS_HTTP_HEADERS_MAX 64u

/* SPEC §3.3: 10 000 readings per request. */
#define SS_INGEST_READINGS_MAX 10000u
/* SPEC §3: channel names are [A-Za-z0-9_.-]{1,64}. */
#define SS_CHANNEL_MAX 64u
/* SPEC §3: a ts more than 10 minutes in the future is refused. */
#define SS_TS_FUTURE_MAX_MS (10LL * 60 * 1000)
/* SPEC §3: a ts before 2000-01-01T00:00:00Z is refused. */
#define SS_TS_MIN_MS 946684800000LL
/* SPEC §4: 64 KiB per line of the line format. */
#define SS_LINE_MAX (64u * 1024u)

/* SPEC §2: secrets are random, at least 128 bits; we use 256. */
#define SS_SECRET_BYTES 32u
/* A secret hash (BLAKE2b-256) as stored. */
#define SS_SECRET_HASH_BYTES 32u
/* Opaque IDs: 96 random bits, hex: unguessable, short in URLs. */
#define SS_ID_BYTES 12u
#define SS_ID_LEN (SS_ID_BYTES * 2u)
/* Names of orgs, devices, dashboards; descriptions. */
#define SS_NAME_MAX 200u
#define SS_DESCRIPTION_MAX 2000u
#define SS_EMAIL_MAX 254u
/* SPEC §1: the admin password has at least 12 characters. */
#define SS_PASSWORD_MIN 12u
/* Argon2 works on whatever it is given; a cap keeps login cheap to refuse. */
#define SS_PASSWORD_MAX 1024u

/* A user session lasts this long after login (absolute expiry). */
#define SS_SESSION_TTL_MS (12LL * 60 * 60 * 1000)
/* A session unused this long ends (idle expiry): a forgotten browser tab
 * does not stay signed in for the whole day. */
#define SS_SESSION_IDLE_MS (2LL * 60 * 60 * 1000)
/* last_seen_at is written at most this often per session: idle expiry
 * needs minutes of precision, not a store write per request. */
#define SS_SESSION_TOUCH_MS (60LL * 1000)
/* Audit entries one request returns, by default and at most. */
#define SS_AUDIT_LIMIT_DEFAULT 100u
#define SS_AUDIT_LIMIT_MAX 10000u
/* A device's attributes (location, type, tags): a JSON object of at most
 * this many bytes serialized, so a device answer stays small and a list
 * page of devices bounded; keys at most SS_DEVICE_ATTRIBUTE_KEYS_MAX, each
 * a name like a channel's, nested at most SS_DEVICE_ATTRIBUTES_DEPTH_MAX
 * (the object itself is depth 1, each object or list in it one more):
 * room for a location {lat, lon, coords: [...]} and a tags list, not a
 * document store. */
#define SS_DEVICE_ATTRIBUTES_MAX 4096u
#define SS_DEVICE_ATTRIBUTE_KEYS_MAX 64u
#define SS_DEVICE_ATTRIBUTES_DEPTH_MAX 3u
/* How stale a device's last_seen may be in the store: it is kept in memory
 * on the commit path and written once a second with the store's
 * checkpoint, never once per batch (ingest keeps its speed); a crash loses
 * at most about this much of it, a clean stop none. */
#define SS_LAST_SEEN_FLUSH_MS 1000u
/* Rows of one list page, by default and at most (every list endpoint:
 * ?limit=, ?cursor=). The default answers a whole list for most
 * organisations, so clients that do not page see what they saw before;
 * the most bounds what one answer holds in memory. */
#define SS_PAGE_LIMIT_DEFAULT 1000u
#define SS_PAGE_LIMIT_MAX 10000u
/* Dashboards (SPEC §2): an org keeps at most SS_DASHBOARDS_PER_ORG_MAX,
 * so the access rule of the dashboard role (aaa/dashboards.h) reads all
 * of an org's in one bounded pass; a dashboard has at most
 * SS_DASHBOARD_WIDGETS_MAX widgets (a screenful of charts, each one
 * query and one live subscription in the browser), each showing at most
 * SS_DASHBOARD_CHANNELS_MAX channels (more lines than a chart can tell
 * apart). A widget's title is a name's length; its options (min, max,
 * unit, fn, every ...) a small object of at most SS_DASHBOARD_OPTIONS_MAX
 * bytes serialised; a dynamic dashboard's device filter at most
 * SS_DASHBOARD_FILTER_KEYS_MAX attribute equalities, as a device list
 * takes. A widget looks back between a second and a leap year (ms). */
#define SS_DASHBOARDS_PER_ORG_MAX 256u
#define SS_DASHBOARD_WIDGETS_MAX 32u
#define SS_DASHBOARD_CHANNELS_MAX 8u
#define SS_DASHBOARD_TITLE_MAX SS_NAME_MAX
#define SS_DASHBOARD_OPTIONS_MAX 2048u
#define SS_DASHBOARD_FILTER_KEYS_MAX 8u
#define SS_DASHBOARD_FILTER_VALUE_MAX 256u
#define SS_DASHBOARD_RANGE_MIN_MS 1000LL
#define SS_DASHBOARD_RANGE_MAX_MS 31622400000LL
#define SS_DASHBOARD_RANGE_DEFAULT_MS 3600000LL
/* A dashboard's stored layout (its device filter and widgets, compact
 * JSON): room for every limit above at once, escapes included (asserted
 * below); the request body may hold white space besides, up to
 * SS_DASHBOARD_BODY_MAX, refused before it is parsed. */
#define SS_DASHBOARD_SPEC_MAX (192u * 1024u)
#define SS_DASHBOARD_BODY_MAX (256u * 1024u)
/* A page of dashboards: by default and at most all of an org's, as long
 * as their layouts add up to SS_DASHBOARD_PAGE_BYTES_MAX (the rest follow
 * with the cursor): 256 layouts of the most size would be a 48 MiB answer
 * and ten times that in memory while built, asked by the least role. An
 * org's ordinary dashboards (a few KiB each) fit in one page. */
#define SS_DASHBOARD_PAGE_LIMIT_MAX SS_DASHBOARDS_PER_ORG_MAX
#define SS_DASHBOARD_PAGE_BYTES_MAX (2u * 1024u * 1024u)
/* Query parameters one request may carry: each route names a handful; far
 * more is a malformed request, refused before anything is looked up. */
#define SS_QUERY_PARAMS_MAX 64u
/* An audit entry's detail (the fields changed, as JSON): room for every
 * field of any change, names of 200 characters included. When a detail
 * would not fit, each value is cut to SS_AUDIT_VALUE_MAX bytes: a name or
 * description says what changed in its first words. */
#define SS_AUDIT_DETAIL_MAX 1024u
#define SS_AUDIT_VALUE_MAX 120u
/* Login throttle (SPEC §4; docs/operations.md). An account may fail
 * SS_LOGIN_ACCOUNT_FREE times (typos), an address SS_LOGIN_ADDR_FREE times
 * (an office behind one NAT); each failure after that doubles the wait
 * before the next try, from SS_LOGIN_DELAY_BASE_MS up to
 * SS_LOGIN_DELAY_MAX_MS. The account's wait holds back an address with no
 * failures of its own only once the account has SS_LOGIN_ACCOUNT_SPREAD
 * failures: below that, a stranger's few failures do not delay the
 * rightful person at all; from it on, guessing spread over many addresses
 * (an IPv6 /48 holds 65 536 /64s) stays at about one guess a minute per
 * account, and the rightful person waits at most SS_LOGIN_DELAY_MAX_MS per
 * attempt (or asks for a lift). 50: ten times the free failures, far above
 * any person's typos, yet few guesses against 12+ character passwords.
 * Failures are forgotten SS_LOGIN_FORGET_MS after the last one. */
#define SS_LOGIN_ACCOUNT_FREE 5u
#define SS_LOGIN_ACCOUNT_SPREAD 50u
#define SS_LOGIN_ADDR_FREE 10u
#define SS_LOGIN_DELAY_BASE_MS 1000LL
#define SS_LOGIN_DELAY_MAX_MS (60LL * 1000)
#define SS_LOGIN_FORGET_MS (15LL * 60 * 1000)

/* Group commit: the store thread takes at most this many readings in one
 * transaction. A sender that arrives while a commit runs waits for it, so
 * this bounds everyone's added latency: 20 000 readings take 20-40 ms on
 * SQLite, while the fixed cost of a commit (the fsync, the series and usage
 * updates) stays a few percent of it. */
#define SS_COMMIT_READINGS_MAX 20000u
/* Fair share of the store's commits (deficit round robin): each round of
 * the organisations with work, each gains this many readings of credit and
 * its items go while its credit covers them. A tenth of a full request: an
 * org sending one reading is in the very next commit however large the
 * requests of the others, whose items wait a few rounds (a few fast
 * commits) for their turn. */
#define SS_COMMIT_ORG_QUANTUM 1000u

/* The ingest queue's bounds (SPEC §4: the queue is bounded per
 * organisation and device). Readings bound the store's work waiting (the
 * whole queue is about 10 s of commits at worst); bytes bound the memory it
 * holds (a reading takes 88 bytes in memory, so 65 KiB of UDP lines can
 * hold 800 KiB). A submit past a bound is refused (HTTP 503 ingest_busy,
 * TCP stops reading, UDP drops), never queued. */
#define SS_INGEST_QUEUE_READINGS_MAX 200000u
#define SS_INGEST_QUEUE_BYTES_MAX (32u * 1024u * 1024u)
/* Room kept beyond the bounds above for organisations with nothing queued:
 * even when several others together fill the queue, a quiet org's next
 * message still gets in. Four full requests. */
#define SS_INGEST_QUEUE_RESERVE_READINGS (4u * SS_INGEST_READINGS_MAX)
#define SS_INGEST_QUEUE_RESERVE_BYTES (8u * 1024u * 1024u)
/* One organisation's share: a quarter of the queue, so it takes four
 * flooding orgs to fill it, and the reserve still serves the rest. */
#define SS_INGEST_ORG_READINGS_MAX (SS_INGEST_QUEUE_READINGS_MAX / 4u)
#define SS_INGEST_ORG_BYTES_MAX (SS_INGEST_QUEUE_BYTES_MAX / 4u)
/* One device's share of its org's: two full requests in flight, so one
 * device cannot take its org's whole share from the org's other devices. */
#define SS_INGEST_DEVICE_READINGS_MAX (2u * SS_INGEST_READINGS_MAX)
#define SS_INGEST_DEVICE_BYTES_MAX (4u * 1024u * 1024u)
/* What a client refused with ingest_busy is told to wait, seconds: a
 * queue share drains in well under a second once its sender pauses. */
#define SS_INGEST_RETRY_AFTER_S 1u

/* Channels (series) one device may have. Real devices carry a few to a few
 * hundred (a multi-sensor board, a PLC's registers); 1024 leaves room for
 * them all, while keeping every device's series in the store thread's
 * series cache (8192 slots) many times over, and a device's channel list
 * one page of answer. A reading that would create channel 1025 is refused
 * (too_many_channels). */
#define SS_DEVICE_CHANNELS_MAX 1024u

/* Bulk import of history (one streamed request, all or nothing). Every
 * reading is validated and spooled to a file in the data dir (24 bytes a
 * reading) before any is committed: 50 million readings are five times the
 * largest history files users bring, and 1.2 GB of spool. Configuration
 * (import-readings-max) may lower it. */
#define SS_IMPORT_READINGS_MAX 50000000u
/* Distinct devices and channel names one import may name: each is kept in
 * memory for the whole request (about 100 bytes). */
#define SS_IMPORT_DEVICES_MAX 10000u
#define SS_IMPORT_CHANNELS_MAX 4096u
/* Series (device and channel pairs) one import may name: each is kept for
 * the request (8 bytes of a table sized twice over), so that a device the
 * import would take past SS_DEVICE_CHANNELS_MAX is refused before anything
 * is stored. A thousand devices of a hundred channels fit. */
#define SS_IMPORT_SERIES_MAX 131072u
/* Validated readings gathered in memory before one write to the spool
 * (two such buffers, one filling while the other is written): a write a
 * few milliseconds long. */
#define SS_IMPORT_BUFFER_BYTES (1024u * 1024u)
/* Readings of one device in one ingest-queue item of the commit phase,
 * and what one import keeps queued at most. The items take their turn in
 * everyone's group commits (deficit round robin per org): an item of two
 * quanta goes every other round, so another org's reading never shares a
 * commit with more than a few thousand of the import's, while an import
 * alone still fills every commit (ten items). And the import leaves part of
 * its org's share (SS_INGEST_ORG_READINGS_MAX) to the org's own devices. */
#define SS_IMPORT_ITEM_READINGS (2u * SS_COMMIT_ORG_QUANTUM)
#define SS_IMPORT_QUEUED_READINGS_MAX (3u * SS_INGEST_ORG_READINGS_MAX / 5u)
/* Spooled readings read back per step of the commit phase (on the worker
 * pool): a little more than the import keeps queued, so the next step is
 * ready when the queue has room. */
#define SS_IMPORT_STEP_READINGS 40000u
/* Imports running at once: each holds a spool and a share of the commits.
 * One per organisation, a few in all; more are refused with 429. */
#define SS_IMPORT_RUNNING_MAX 4u

/* Query results: a series request returns at most this many points. */
#define SS_QUERY_LIMIT_DEFAULT 1000u
#define SS_QUERY_LIMIT_MAX 100000u

/* Export (GET /orgs/{org}/export) reads a page at a time on a worker:
 * - readings per page: 2048 rows of CSV or NDJSON are 100 to 250 KB of
 *   text, the most an export holds besides what the connection sends,
 *   and a read of a few milliseconds, so the worker is soon free again;
 * - series looked into per page: a page over many series without
 *   readings in the range stays as short (an index probe each);
 * - devices one export may name (device=a,b,...): the list must fit the
 *   request head; more is the whole org, which needs no list. */
#define SS_EXPORT_PAGE_ROWS 2048u
#define SS_EXPORT_PAGE_SERIES 1024u
#define SS_EXPORT_DEVICES_MAX 256u

/* Heavy REST requests (data queries, channel lists, usage, audit and
 * session lists, sign-in's Argon2) share libuv's worker pool (4 threads):
 * - in flight (queued, waiting or running) per credential, or per client
 *   address for sign-in: four lets a dashboard overlap its widgets'
 *   queries, and one client on hundreds of connections still takes no
 *   more; past it, 429;
 * - in flight in all: bounds the queue of heavy work (and its memory);
 *   past it every heavy request gets 429 until some finish;
 * - running per org: half the pool, so another org's query finds a
 *   worker; past it a request waits its turn on the loop;
 * - running in all: one worker of four stays for light requests;
 * - sign-ins running at once (all addresses together, counted in the
 *   running total): as an org's share, so a sign-in flood from many
 *   addresses keeps to part of the pool like one busy org;
 * - the longest a request waits for its org's turn before it gets 429
 *   (--heavy-wait; this is its ceiling and default). */
#define SS_API_HEAVY_PER_PRINCIPAL 4u
#define SS_API_HEAVY_QUEUED_MAX 256u
#define SS_API_HEAVY_PER_ORG 2u
#define SS_API_HEAVY_RUNNING_MAX 3u
#define SS_API_SIGN_IN_RUNNING_MAX 2u
#define SS_API_HEAVY_WAIT_MS 10000u
/* A request refused by the per-credential gate is answered (429) after
 * this delay: a client resending at once costs the loop at most one
 * refusal per connection per delay, not a busy loop. */
#define SS_API_BUSY_DELAY_MS 100u

/* Deleting a device moves its readings to a purge list; a background
 * thread deletes them this many per transaction (about 10-30 ms of write
 * lock), so ingest commits interleave with even a purge of millions. */
#define SS_PURGE_CHUNK_ROWS 10000u
/* DELETE .../data deletes a range in steps of this many readings, each its
 * own transaction, pausing between them as the purge does (at least
 * SS_PURGE_PAUSE_MS, and as long as the step held the write lock): a
 * delete of millions never holds the writer for more than one purge chunk's
 * time, whatever it costs in total. */
#define SS_DATA_DELETE_CHUNK_ROWS SS_PURGE_CHUNK_ROWS
/* The purge sleeps at least this long (and at least as long as the last
 * chunk took) between chunks: longer than SQLite's busy-wait steps, so a
 * commit waiting for the write lock gets it in the gap. */
#define SS_PURGE_PAUSE_MS 30u
/* /healthz answers from the store health the housekeeping thread measures
 * this often, without waiting for a worker; a measure older than the
 * stale age (a stuck store) answers 503. The stale age is past the
 * store's 5 s busy timeout plus a ping period, so a purge chunk waiting
 * for the write lock behind a long commit never reads as a dead store. */
#define SS_HEALTH_PING_MS 1000u
#define SS_HEALTH_STALE_MS 10000u

/* MQTT (SPEC §3.6, §4). Packet size, topic length and levels are the
 * codec's and the topic tree's (mqtt/codec.h, mqtt/topic.h). */
/* PUBLISHes of QoS 1 and 2 one client may have unanswered at once: our
 * Receive Maximum (5.0 CONNACK; a 5.0 client past it is disconnected with
 * 0x93, a 3.1.1 one is simply not read until an answer goes out). Each
 * may hold a packet of up to 256 KiB until its commit, so this bounds what
 * one connection pins to 8 MiB; a device with a commit every few ms needs
 * a handful. */
#define SS_MQTT_RECEIVE_MAX 32u
/* Topic aliases a 5.0 client may set (our Topic Alias Maximum): each keeps
 * a topic of up to 1 KiB for the connection's life. */
#define SS_MQTT_TOPIC_ALIASES_MAX 16u
/* Bytes queued for a client and not yet written: twice the largest packet,
 * so one full PUBLISH always fits behind another. A client that does not
 * read past this is a stalled reader and is disconnected; its session
 * keeps what was queued for it (bounded there). */
#define SS_MQTT_UNSENT_MAX (512u * 1024u)
/* Keep-alive: a 5.0 client asking for none, or for longer, is given this
 * (Server Keep Alive) so that a dead peer never holds a connection longer;
 * a 3.1.1 client's own value is kept (it cannot be told another). */
#define SS_MQTT_KEEP_ALIVE_MAX_S 3600u
/* A persistent session outlives its connection at most this long (the
 * 5.0 Session Expiry Interval is capped to it and the cap sent in
 * CONNACK; a 3.1.1 persistent session too): what it holds in the store is
 * bounded in time as well as in size. */
#define SS_MQTT_SESSION_EXPIRY_MAX_S (7u * 24u * 3600u)
/* Subscriptions one session holds (a SUBSCRIBE past it: 0x97 / 0x80).
 * Also the most subscription identifiers one delivery can carry
 * (MQTT_SUB_IDS_MAX); a wildcard covers many devices in one. */
#define SS_MQTT_SESSION_SUBS_MAX 32u
/* Retained messages per organisation (a new one past it: PUBACK 0x97, or
 * dropped at QoS 0): each is kept in memory and in the store. */
#define SS_MQTT_RETAINED_PER_ORG_MAX 10000u
/* A refused MQTT sign-in from an address past its free failures (the
 * login throttle's, SS_LOGIN_ADDR_FREE) is answered this much later at
 * most: a device retrying a revoked token in a tight loop costs one check
 * a second per connection, while a right credential from the same
 * address (a neighbour behind the same NAT) is never held back. */
#define SS_MQTT_REFUSED_DELAY_MAX_MS 1000u
/* What one session holds for its client (docs/mqtt.md says what a
 * client loses past each):
 * - QoS 1/2 messages queued and in flight together, and their bytes:
 *   mosquitto's max_queued_messages (1000), and four of the largest
 *   packets. Past either the oldest queued is dropped (and a connected
 *   client that also stopped reading is disconnected, below);
 * - QoS 0 messages waiting for a connected client that is behind in
 *   reading, with what each costs (message and delivery): a burst of
 *   small messages (about 20 000) rides out a reader's pause where
 *   mosquitto buffers without a bound; past it the oldest go. All
 *   sessions' together stay under the total: many slow readers of one
 *   flood cannot add up past it (a new one is then dropped);
 * - QoS 1/2 PUBLISHes in flight to the client, however large its Receive
 *   Maximum: acks come in order, so the window is a short list to search;
 * - output the client may leave unread before it gets no more PUBLISHes
 *   (they wait in the queue): half the stalled-reader bound, so that a
 *   largest packet sent just under it never trips that;
 * - sessions whose will delay or expiry ends in one timer tick: a mass
 *   expiry is spread over several loop turns;
 * - persistent sessions one principal (a device, a key) holds, online or
 *   not: a device needs one, an app a few per instance; each may hold a
 *   full queue, so this bounds what one principal can pin in memory and
 *   in the store (a CONNECT past it: 0x97 / 3.1.1 0x03). */
#define SS_MQTT_SESSION_QUEUE_MAX 1000u
#define SS_MQTT_SESSION_QUEUE_BYTES_MAX (1024u * 1024u)
#define SS_MQTT_QOS0_QUEUE_BYTES_MAX (8u * 1024u * 1024u)
#define SS_MQTT_QOS0_QUEUED_TOTAL_MAX (256u * 1024u * 1024u)
#define SS_MQTT_INFLIGHT_OUT_MAX 64u
#define SS_MQTT_DELIVER_UNSENT_MAX (SS_MQTT_UNSENT_MAX / 2u)
#define SS_MQTT_EXPIRE_BATCH 1000u
/* A connected client whose queue overflows while its socket takes
 * (TCP-acknowledges) next to nothing, for this long or while this many
 * bytes meant for it are dropped, is a stalled reader: disconnected
 * (0x97). One that reads, however slowly, is not: it loses what its queue
 * could not hold. The time is a congested link's pause; the bytes are
 * several loop turns of a flood (a turn reads up to 2 MiB per publisher),
 * so a stuck client goes soon after the flood began. */
#define SS_MQTT_STALL_MS 2000u
#define SS_MQTT_STALL_DROPPED_BYTES (8u * 1024u * 1024u)
/* ... but never sooner than this: a peer reading in small pieces
 * acknowledges in steps of about its receive window (4 KiB every 2 ms
 * through a 64 KiB buffer: a step every 30-40 ms), and a flood drops
 * 8 MiB in a few ms; 200 ms covers a reader several times as slow. */
#define SS_MQTT_STALL_MIN_MS 200u
/* What its socket must take meanwhile for a client to count as reading:
 * more than the last few KiB a full receive window still lets through,
 * far less than any reader takes in SS_MQTT_STALL_MIN_MS (16 KiB in
 * 200 ms is 80 KiB/s). */
#define SS_MQTT_STALL_TAKEN_MIN (16u * 1024u)
#define SS_MQTT_STORED_SESSIONS_PER_PRINCIPAL_MAX 100u
/* The broker's $SYS/broker/… counts are published this often (and when
 * the superadmin signs in): mosquitto's sys_interval default, often
 * enough for a dashboard, a dozen small messages to one tree. */
#define SS_MQTT_SYS_INTERVAL_MS 10000u
/* MQTT sign-ins with an email and a password (Argon2) on the worker pool
 * at once; one more is refused as the server busy (5.0 0x89, 3.1.1
 * 0x03). Only the superadmin signs in so, so one is room enough, and a
 * flood of them holds one worker, never the pool REST needs (its own
 * sign-ins have SS_API_SIGN_IN_RUNNING_MAX). */
#define SS_MQTT_SIGN_IN_RUNNING_MAX 1u
/* Revocations the broker remembers for the sign-ins (API keys, the
 * superadmin) on the worker pool: one that a revocation of its principal
 * (or its key's org) overtook is refused as revoked. Revocations come
 * seconds apart, an org's deletion one per device and key: a sign-in that
 * saw more than this many meanwhile cannot tell and is refused as the
 * server busy (5.0 0x89, 3.1.1 0x03; the client retries). */
#define SS_MQTT_REVOKED_RECENT_MAX 64u
/* Revocations the connection registry remembers, so that a stream whose
 * access was checked on a worker and registered on the loop a moment
 * later learns of one that fell in between (conn_registry_revoked_since).
 * Past it, a stream opening then is refused as if revoked: the client
 * retries. Revocations are admin acts, far fewer than this in the
 * milliseconds of that gap. */
#define SS_CONN_REG_RECENT_MAX 64u

/* ---- the live stream (GET /api/v1/orgs/{org}/live, Server-Sent Events) ----
 * An org's window of recent events, which a client that reconnects with
 * Last-Event-ID is resent from. One event is ~120 bytes: 16 384 events
 * hold a minute of an org sending 250 batches a second, and more than the
 * largest batch (SS_INGEST_READINGS_MAX readings, each of its own ts), so
 * a client that keeps up never loses events to one batch; 4 MiB bounds
 * events of many channels. An org's window is kept while it has streams
 * and SS_LIVE_ORG_LINGER_MS after the last one ends (time to reconnect);
 * all windows together hold at most SS_LIVE_RING_BYTES_MAX (the oldest
 * events of any org go first). */
#define SS_LIVE_ORG_EVENTS_MAX 16384u
#define SS_LIVE_ORG_BYTES_MAX (4u * 1024u * 1024u)
#define SS_LIVE_RING_BYTES_MAX (32u * 1024u * 1024u)
#define SS_LIVE_ORG_LINGER_MS (5u * 60u * 1000u)
/* Streams open at once, per org and on the whole server: each holds up to
 * SS_HTTP_STREAM_LOW_WATER unsent and a connection; a dashboard wall of a
 * hundred screens fits an org, and 4 096 streams hold at most 128 MiB. */
#define SS_LIVE_STREAMS_ORG_MAX 256u
#define SS_LIVE_STREAMS_MAX 4096u
/* A comment line goes to every stream idle this long, so proxies (nginx
 * closes after 60 s of silence) and clients see the link alive. The
 * ceiling and default of --live-heartbeat; tests set a fraction of a
 * second. */
#define SS_LIVE_HEARTBEAT_MS 15000u
#define SS_LIVE_HEARTBEAT_MIN_MS 100u
/* The `retry:` advice to clients: how long an EventSource waits before it
 * reconnects (its default is about 3 s in browsers). */
#define SS_LIVE_RETRY_MS 2000u

_Static_assert(SS_HTTP_BODY_MAX >= SS_HTTP_HEAD_MAX, "body limit below head limit");
_Static_assert(SS_EXPORT_DEVICES_MAX * (SS_ID_LEN + 1) < SS_HTTP_HEAD_MAX,
               "an export's device list fits a request head");
_Static_assert(SS_SECRET_BYTES >= 16, "secrets must carry at least 128 bits");
_Static_assert(SS_CHANNEL_MAX < 256, "channel names are stored in fixed buffers");
_Static_assert(SS_LOGIN_DELAY_BASE_MS <= SS_LOGIN_DELAY_MAX_MS &&
                   SS_LOGIN_DELAY_MAX_MS < SS_LOGIN_FORGET_MS,
               "a login delay ends before its failures are forgotten");
_Static_assert(SS_LOGIN_ACCOUNT_SPREAD > SS_LOGIN_ACCOUNT_FREE,
               "an account's typos never hold back its clean addresses");
_Static_assert(SS_COMMIT_READINGS_MAX >= SS_INGEST_READINGS_MAX, "a full request fits a commit");
_Static_assert(SS_INGEST_DEVICE_READINGS_MAX <= SS_INGEST_ORG_READINGS_MAX &&
                   SS_INGEST_ORG_READINGS_MAX <= SS_INGEST_QUEUE_READINGS_MAX,
               "a device's share within its org's, an org's within the queue");
_Static_assert(SS_IMPORT_ITEM_READINGS <= SS_INGEST_DEVICE_READINGS_MAX &&
                   SS_IMPORT_QUEUED_READINGS_MAX < SS_INGEST_ORG_READINGS_MAX,
               "an import's items fit a device's share, and leave room in its org's");
_Static_assert(SS_MQTT_INFLIGHT_OUT_MAX < SS_MQTT_SESSION_QUEUE_MAX,
               "a session's queue holds its whole window and more");
_Static_assert(SS_MQTT_DELIVER_UNSENT_MAX + 256u * 1024u <= SS_MQTT_UNSENT_MAX,
               "a largest packet sent under the delivery bound never stalls the client");
_Static_assert(SS_INGEST_DEVICE_BYTES_MAX <= SS_INGEST_ORG_BYTES_MAX &&
                   SS_INGEST_ORG_BYTES_MAX <= SS_INGEST_QUEUE_BYTES_MAX,
               "a device's share within its org's, an org's within the queue");
_Static_assert(SS_DASHBOARD_WIDGETS_MAX * (SS_DASHBOARD_OPTIONS_MAX + 6u * SS_DASHBOARD_TITLE_MAX +
                                          SS_DASHBOARD_CHANNELS_MAX * (SS_CHANNEL_MAX + 3u) +
                                          256u) +
                       SS_DASHBOARD_FILTER_KEYS_MAX *
                           (SS_CHANNEL_MAX + 6u * SS_DASHBOARD_FILTER_VALUE_MAX + 8u) +
                       64u <=
                   SS_DASHBOARD_SPEC_MAX,
               "a dashboard at every limit fits its stored layout");
_Static_assert(SS_DASHBOARD_SPEC_MAX < SS_DASHBOARD_BODY_MAX &&
                   SS_DASHBOARD_BODY_MAX <= SS_HTTP_BODY_MAX,
               "a dashboard's body holds its layout and fits a request");
_Static_assert(SS_LIVE_ORG_EVENTS_MAX >= SS_INGEST_READINGS_MAX &&
                   SS_LIVE_ORG_BYTES_MAX <= SS_LIVE_RING_BYTES_MAX,
               "a largest batch fits an org's live window, an org's window the whole");

#endif
