/* api_import_int.h — the bulk import's state, shared by its two halves:
 * api_import.c (the request: auth, body, spool, answers) and
 * api_import_commit.c (the commit phase: channel check, quota, steps
 * read back from the spool, ingest-queue items). Private to src/http;
 * loop thread unless a function says otherwise. */
#ifndef SS_HTTP_API_IMPORT_INT_H
#define SS_HTTP_API_IMPORT_INT_H

#include <stdint.h>

#include "http/api_call.h"
#include "ingest/gateway.h"
#include "ingest/import_parse.h"

/* One validated reading in the spool: 24 bytes, its device and channel
 * by their index in the import's tables. */
typedef struct import_rec {
    int64_t ts;
    double value;
    uint32_t device;
    uint32_t channel;
} import_rec;

typedef struct import_device {
    char id[SS_ID_LEN + 1];
    uint16_t channels;            /* distinct channels the import gives it */
} import_device;

typedef struct import_channel {
    char name[SS_CHANNEL_MAX + 1];
    uint8_t len;
} import_channel;

/* Open addressing over indexes + 1 (0: empty). */
typedef struct import_table {
    uint32_t *slots;
    uint32_t mask;
} import_table;

typedef struct import_buf {
    import_rec *recs;
    size_t len, cap;
} import_buf;

typedef struct api_import api_import;

/* One ingest-queue item: one device's readings of the spool. */
typedef struct import_item {
    gateway_msg msg;      /* first: the gateway's ack hands it back */
    api_import *imp;
    uint32_t device;
    struct import_item *next;
} import_item;

typedef enum {
    IMPORT_AUTH,
    IMPORT_BODY,
    IMPORT_COMMIT,
    IMPORT_ANSWERED,
} import_phase;

struct api_import {
    api_ctx *app;
    http_request *req;            /* NULL once answered */
    import_phase phase;
    char org_id[SS_ID_LEN + 1];
    int64_t now_ms;
    int64_t started_ms;           /* monotonic: the head came */
    int64_t commit_started_ms;    /* monotonic: the body was all spooled */
    size_t max_readings;
    import_parser parser;
    struct api_import *next;      /* in app's running imports */

    /* auth (worker) */
    uv_work_t auth_work;
    api_call *call;
    int authing;                  /* the check runs on the worker pool */
    ss_buf early;                 /* body that came before the check was back */
    int early_failed;             /* more of it than kept: answered 503 */
    int spool_fd;
    int spool_err;
    int gone;
    int line_rc;                  /* what on_line returned last */

    /* body */
    import_device *devices;
    size_t n_devices;
    import_table device_table;
    uint32_t last_device;         /* the last line's device + 1 (0: none) */
    import_channel *channels;
    size_t n_channels;
    import_table channel_table;
    uint32_t last_channel;        /* the last reading's channel + 1 (0: none) */
    uint64_t *series;             /* (device + 1) << 32 | channel; 0 empty */
    size_t n_series;
    uint64_t last_series;
    import_buf fill, spare;       /* filling; being written */
    uv_fs_t write_req;
    int writing;
    int write_err;
    int paused;
    int body_done;                /* on_request ran: the whole body is here */
    uint64_t spooled;             /* records handed to the spool */
    uint64_t written;             /* records the spool holds */
    int64_t min_ts, max_ts;

    /* commit */
    uv_work_t check_work;
    int checking;                 /* the channel check runs on the worker pool */
    int check_rc;
    uint32_t check_device;        /* the device it refused */
    quota_ref quota;
    uint64_t submitted;           /* readings handed to the queue */
    uint64_t read_pos;            /* records read back from the spool */
    uv_work_t step_work;
    int stepping;
    import_item *step_out;        /* the step's items, in spool order */
    int step_err;
    import_item *pending, *pending_tail;
    size_t queued_readings;
    size_t in_flight;
    ingest_waiter waiter;
    int commit_err;
    uint32_t err_device;
    int closing;
};

/* Frees the import once nothing of it runs any more: answered, and no
 * check, write, step or item in flight. */
void import_maybe_free(api_import *imp);
/* Answers with the JSON error (`line` > 0 adds "line"), once. */
void import_answer_error(api_import *imp, int status, const char *code, const char *message,
                         size_t line);
/* Answers 200 with the summary. */
void import_answer_done(api_import *imp);

/* The import's tables, read by the commit phase (on a worker too: the
 * body phase that writes them is over). */
uint32_t import_name_hash(const char *s, size_t len);
uint64_t import_series_key(uint32_t dev, uint32_t ch);
/* The slot of key in imp->series: the key's, or the empty one where it
 * would go. */
size_t import_series_slot(const api_import *imp, uint64_t key);

/* The whole body is spooled: the commit phase starts (api_import_commit.c). */
void import_commit_begin(api_import *imp);
/* Frees a list of items and their readings. */
void import_items_free(import_item *it);

#endif
