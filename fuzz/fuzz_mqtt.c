/* fuzz_mqtt.c — libFuzzer target for the MQTT packet codec (mqtt/codec.h):
 * mqtt_decode over arbitrary bytes, as the broker reads every packet of
 * every client, before CONNECT (version 0) and on 3.1.1 and 5.0
 * connections.
 *
 * Beyond "no crash, no leak, no read past len" (ASan, UBSan), it checks
 * the codec's promises: a refusal is MQTT_DECODE_MORE or a reason code of
 * 0x80 and over; a decoded packet's filters and user properties walk to
 * their counts as valid UTF-8; every shorter prefix of it asks for more;
 * it re-encodes to exactly mqtt_encoded_size bytes, which decode again,
 * and encode once more to the same bytes. The property list decoder and
 * encoder are held to the same round trip. Built and run by fuzz/run.sh. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/err.h"
#include "mqtt/codec.h"
#include "mqtt/protocol.h"

/* Decode with room for any length the header can say: the fuzzer's
 * inputs are what bound the size. */
#define FUZZ_MAX (MQTT_VARINT_MAX + 5u)

static void check_refusal(int rc)
{
    if (rc == MQTT_DECODE_MORE)
        return;
    if (rc < MQTT_RC_UNSPECIFIED || rc > 0xFF)
        abort();
}

static void check_users(const mqtt_props *pr)
{
    size_t pos = 0;
    uint32_t n = 0;
    mqtt_str k, v;
    while (mqtt_user_prop_next(pr, &pos, &k, &v)) {
        if (!mqtt_utf8_valid(k.p, k.len) || !mqtt_utf8_valid(v.p, v.len))
            abort();
        n++;
    }
    if (n != pr->n_user || pos > pr->user_len)
        abort();
}

static void check_filters(const mqtt_packet *p)
{
    size_t pos = 0;
    uint32_t n = 0;
    mqtt_str f;
    uint8_t opt;
    while (mqtt_filter_next(p, &pos, &f, &opt)) {
        if (f.len == 0 || !mqtt_utf8_valid(f.p, f.len) || (opt & MQTT_SUBOPT_QOS_MASK) == 3)
            abort();
        n++;
    }
    if (n != p->subscribe.count || pos != p->subscribe.list_len)
        abort();
}

static void walk(const mqtt_packet *p)
{
    switch (p->type) {
    case MQTT_CONNECT:
        check_users(&p->connect.props);
        check_users(&p->connect.will_props);
        break;
    case MQTT_CONNACK: check_users(&p->connack.props); break;
    case MQTT_PUBLISH: check_users(&p->publish.props); break;
    case MQTT_SUBSCRIBE:
    case MQTT_UNSUBSCRIBE:
        check_users(&p->subscribe.props);
        check_filters(p);
        break;
    case MQTT_SUBACK:
    case MQTT_UNSUBACK: check_users(&p->suback.props); break;
    case MQTT_DISCONNECT: check_users(&p->disconnect.props); break;
    case MQTT_AUTH: check_users(&p->auth.props); break;
    case MQTT_PINGREQ:
    case MQTT_PINGRESP: break;
    default: check_users(&p->ack.props); break;
    }
}

/* Every shorter prefix of a whole packet is "more", never a verdict. */
static void check_prefixes(const uint8_t *data, size_t used, uint8_t version)
{
    mqtt_packet p;
    size_t u;
    size_t step = used > 64 ? used / 16 : 1;
    for (size_t n = 0; n < used; n += step)
        if (mqtt_decode(data, n, version, FUZZ_MAX, &p, &u) != MQTT_DECODE_MORE)
            abort();
    if (used > 0 && mqtt_decode(data, used - 1, version, FUZZ_MAX, &p, &u) != MQTT_DECODE_MORE)
        abort();
}

/* encode(p) decodes back, and encodes to the same bytes again. */
static void check_round_trip(const mqtt_packet *p, uint8_t version)
{
    uint8_t ev = p->type == MQTT_CONNECT ? p->connect.version : version;
    ss_buf a = SS_BUF_INIT, b = SS_BUF_INIT;
    if (mqtt_encode(p, ev, &a) != 0 || a.len != mqtt_encoded_size(p, ev))
        abort();
    mqtt_packet q;
    size_t used;
    if (mqtt_decode((const uint8_t *)a.data, a.len, ev, FUZZ_MAX, &q, &used) != 0 ||
        used != a.len || q.type != p->type)
        abort();
    if (mqtt_encode(&q, ev, &b) != 0 || b.len != a.len || memcmp(a.data, b.data, a.len) != 0)
        abort();
    buf_free(&a);
    buf_free(&b);
}

static void fuzz_decode(const uint8_t *data, size_t size, uint8_t version)
{
    mqtt_packet p;
    size_t used = 0;
    int rc = mqtt_decode(data, size, version, FUZZ_MAX, &p, &used);
    if (rc != 0) {
        check_refusal(rc);
        return;
    }
    size_t total;
    if (used == 0 || used > size || mqtt_frame(data, size, FUZZ_MAX, &total) != 0 || total != used)
        abort();
    walk(&p);
    check_prefixes(data, used, version);
    check_round_trip(&p, version == MQTT_V5 ? MQTT_V5 : MQTT_V311);
}

/* The persisted form: a property list alone, for the packet type the
 * first byte names. */
static void fuzz_props(const uint8_t *data, size_t size)
{
    if (size == 0)
        return;
    uint8_t type = data[0] & 0x0Fu;
    mqtt_props pr;
    int rc = mqtt_props_decode(data + 1, size - 1, type, &pr);
    if (rc != 0) {
        check_refusal(rc);
        return;
    }
    check_users(&pr);
    ss_buf a = SS_BUF_INIT, b = SS_BUF_INIT;
    mqtt_props back;
    if (mqtt_props_encode(&pr, type, &a) != 0 ||
        mqtt_props_decode((const uint8_t *)a.data, a.len, type, &back) != 0 ||
        mqtt_props_encode(&back, type, &b) != 0 || a.len != b.len ||
        memcmp(a.data, b.data, a.len) != 0 || back.has != pr.has || back.n_user != pr.n_user ||
        back.n_sub_ids != pr.n_sub_ids)
        abort();
    buf_free(&a);
    buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A copy of exactly `size` bytes on the heap: ASan flags any read past
     * the end. */
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    fuzz_decode(buf, size, 0);
    fuzz_decode(buf, size, MQTT_V311);
    fuzz_decode(buf, size, MQTT_V5);
    fuzz_props(buf, size);
    free(buf);
    return 0;
}
