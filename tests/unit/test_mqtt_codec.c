/* test_mqtt_codec.c — the MQTT packet codec (src/mqtt/codec.h): byte-exact
 * packets of every type in 3.1.1 and 5.0, round trips, and each shape rule
 * a server must enforce, named for its clause of the OASIS specifications.
 *
 * Every input is copied to a malloc'd buffer of exactly its size, so under
 * ASan a read past the packet is caught. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/buf.h"
#include "core/err.h"
#include "mqtt/codec.h"
#include "mqtt/protocol.h"

#define V0 0u
#define V4 MQTT_V311
#define V5 MQTT_V5
#define MAX MQTT_PACKET_MAX

/* ---- helpers ------------------------------------------------------------ */

static uint8_t *exact_copy(const uint8_t *s, size_t n)
{
    uint8_t *b = malloc(n ? n : 1);
    assert_non_null(b);
    memcpy(b, s, n);
    return b;
}

/* The copy the last decoded packet points into: kept until the next
 * decode (or the end of the run), so a test may read the packet. */
static uint8_t *held;

static int release_held(void **state)
{
    (void)state;
    free(held);
    held = NULL;
    return 0;
}

/* Decodes the whole input; checks a success used every byte. */
static int decode(uint8_t v, const uint8_t *in, size_t n, mqtt_packet *p)
{
    release_held(NULL);
    held = exact_copy(in, n);
    size_t used = 0;
    int rc = mqtt_decode(held, n, v, MAX, p, &used);
    if (rc == 0)
        assert_int_equal(used, n);
    return rc;
}

static int rc_of(uint8_t v, const uint8_t *in, size_t n)
{
    mqtt_packet p;
    return decode(v, in, n, &p);
}

#define EXPECT(v, rc, ...)                                                  \
    do {                                                                    \
        static const uint8_t in_[] = {__VA_ARGS__};                         \
        assert_int_equal(rc_of((v), in_, sizeof in_), (rc));                \
    } while (0)

/* Encodes p for v and compares with the expected bytes; the size told
 * beforehand is exact. */
static void expect_encoding(const mqtt_packet *p, uint8_t v, const uint8_t *want, size_t n)
{
    ss_buf out = SS_BUF_INIT;
    assert_int_equal(mqtt_encode(p, v, &out), 0);
    assert_int_equal(out.len, n);
    assert_memory_equal(out.data, want, n);
    assert_int_equal(mqtt_encoded_size(p, v), n);
    buf_free(&out);
}

#define ENCODES_TO(p, v, ...)                                               \
    do {                                                                    \
        static const uint8_t want_[] = {__VA_ARGS__};                       \
        expect_encoding((p), (v), want_, sizeof want_);                     \
    } while (0)

/* Decodes, encodes again, and the bytes are the same (canonical input). */
static void round_trip(uint8_t v, const uint8_t *in, size_t n)
{
    uint8_t *b = exact_copy(in, n);
    mqtt_packet p;
    size_t used;
    assert_int_equal(mqtt_decode(b, n, v, MAX, &p, &used), 0);
    uint8_t ev = p.type == MQTT_CONNECT ? p.connect.version : v;
    expect_encoding(&p, ev, in, n);
    free(b);
}

#define ROUND_TRIP(v, ...)                                                  \
    do {                                                                    \
        static const uint8_t in_[] = {__VA_ARGS__};                         \
        round_trip((v), in_, sizeof in_);                                   \
    } while (0)

static mqtt_str S(const char *s)
{
    return (mqtt_str){s, (uint16_t)strlen(s)};
}

/* ---- fixed header and framing -------------------------------------------- */

static void test_frame_needs_the_whole_header(void **state)
{
    (void)state;
    size_t total = 0;
    const uint8_t one[] = {0x30};
    assert_int_equal(mqtt_frame(one, 0, MAX, &total), MQTT_DECODE_MORE);
    assert_int_equal(mqtt_frame(one, 1, MAX, &total), MQTT_DECODE_MORE);
    const uint8_t part[] = {0x30, 0x80, 0x80};
    assert_int_equal(mqtt_frame(part, sizeof part, MAX, &total), MQTT_DECODE_MORE);
    const uint8_t ok[] = {0x30, 0xFF, 0x7F};
    assert_int_equal(mqtt_frame(ok, sizeof ok, 1u << 20, &total), 0);
    assert_int_equal(total, 3 + 16383);
}

static void test_frame_varint_five_bytes_mqtt_1_5_5(void **state)
{
    (void)state;
    size_t total;
    const uint8_t five[] = {0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01};
    assert_int_equal(mqtt_frame(five, sizeof five, UINT32_MAX, &total), MQTT_RC_MALFORMED_PACKET);
    const uint8_t four[] = {0x30, 0xFF, 0xFF, 0xFF, 0x7F};
    assert_int_equal(mqtt_frame(four, sizeof four, UINT32_MAX, &total), 0);
    assert_int_equal(total, 5 + MQTT_VARINT_MAX);
}

static void test_frame_overlong_varint_mqtt_1_5_5_1(void **state)
{
    (void)state;
    size_t total;
    const uint8_t over[] = {0x30, 0x80, 0x00};
    assert_int_equal(mqtt_frame(over, sizeof over, MAX, &total), MQTT_RC_MALFORMED_PACKET);
    EXPECT(V4, MQTT_RC_MALFORMED_PACKET, 0xC0, 0x80, 0x00);
}

static void test_frame_refuses_oversized_from_header_alone(void **state)
{
    (void)state;
    size_t total;
    /* remaining length 262 142: 262 146 bytes in all, 2 over the maximum */
    const uint8_t big[] = {0x30, 0xFE, 0xFF, 0x0F};
    assert_int_equal(mqtt_frame(big, sizeof big, MAX, &total), MQTT_RC_PACKET_TOO_LARGE);
    uint8_t *b = exact_copy(big, sizeof big);
    mqtt_packet p;
    size_t used;
    assert_int_equal(mqtt_decode(b, sizeof big, V4, MAX, &p, &used), MQTT_RC_PACKET_TOO_LARGE);
    /* exactly the maximum: framed, then more is needed */
    const uint8_t at[] = {0x30, 0xFC, 0xFF, 0x0F};
    assert_int_equal(mqtt_frame(at, sizeof at, MAX, &total), 0);
    assert_int_equal(total, MAX);
    assert_int_equal(mqtt_decode(at, sizeof at, V4, MAX, &p, &used), MQTT_DECODE_MORE);
    free(b);
}

static void test_decode_more_for_every_prefix(void **state)
{
    (void)state;
    static const uint8_t pkt[] = {0x32, 0x0A, 0x00, 0x03, 'a', '/', 'b', 0x00, 0x07, 'h', 'e', 'y'};
    for (size_t n = 0; n < sizeof pkt; n++) {
        uint8_t *b = exact_copy(pkt, n);
        mqtt_packet p;
        size_t used;
        assert_int_equal(mqtt_decode(b, n, V4, MAX, &p, &used), MQTT_DECODE_MORE);
        free(b);
    }
    assert_int_equal(rc_of(V4, pkt, sizeof pkt), 0);
}

static void test_decode_reads_one_packet_of_several(void **state)
{
    (void)state;
    const uint8_t two[] = {0xC0, 0x00, 0xD0, 0x00};
    mqtt_packet p;
    size_t used;
    assert_int_equal(mqtt_decode(two, sizeof two, V4, MAX, &p, &used), 0);
    assert_int_equal(used, 2);
    assert_int_equal(p.type, MQTT_PINGREQ);
    assert_int_equal(mqtt_decode(two + 2, 2, V4, MAX, &p, &used), 0);
    assert_int_equal(p.type, MQTT_PINGRESP);
}

static void test_reserved_type_0_and_15_in_311_mqtt_2_1_2(void **state)
{
    (void)state;
    EXPECT(V4, MQTT_RC_MALFORMED_PACKET, 0x00, 0x00);
    EXPECT(V4, MQTT_RC_MALFORMED_PACKET, 0xF0, 0x00);
    EXPECT(V0, MQTT_RC_MALFORMED_PACKET, 0xF0, 0x00);
    EXPECT(V5, 0, 0xF0, 0x00);
}

static void test_fixed_header_flags_mqtt_2_1_3_1(void **state)
{
    (void)state;
    EXPECT(V4, MQTT_RC_MALFORMED_PACKET, 0xC1, 0x00);  /* PINGREQ */
    EXPECT(V4, MQTT_RC_MALFORMED_PACKET, 0xE8, 0x00);  /* DISCONNECT */
    EXPECT(V4, MQTT_RC_MALFORMED_PACKET, 0x42, 0x02, 0x00, 0x01); /* PUBACK */
    EXPECT(V4, MQTT_RC_MALFORMED_PACKET, 0x60, 0x02, 0x00, 0x01); /* PUBREL needs 0010 */
    EXPECT(V4, 0, 0x62, 0x02, 0x00, 0x01);
    EXPECT(V4, MQTT_RC_MALFORMED_PACKET, 0x80, 0x06, 0x00, 0x01, 0x00, 0x01, 'a', 0x00);
    EXPECT(V4, MQTT_RC_MALFORMED_PACKET, 0xA0, 0x05, 0x00, 0x01, 0x00, 0x01, 'a');
    EXPECT(V4, MQTT_RC_MALFORMED_PACKET, 0x11, 0x0C, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x02,
           0x00, 0x3C, 0x00, 0x00);
}

static void test_remaining_length_must_match_content(void **state)
{
    (void)state;
    EXPECT(V4, MQTT_RC_MALFORMED_PACKET, 0xC0, 0x01, 0x00);        /* PINGREQ with a byte */
    EXPECT(V4, MQTT_RC_MALFORMED_PACKET, 0x40, 0x03, 0x00, 0x01, 0x00); /* 3.1.1 PUBACK of 3 */
    EXPECT(V4, MQTT_RC_MALFORMED_PACKET, 0x40, 0x01, 0x00);        /* PUBACK of 1 */
    EXPECT(V4, MQTT_RC_MALFORMED_PACKET, 0xE0, 0x01, 0x00);        /* 3.1.1 DISCONNECT */
    /* CONNECT with a byte after its last field */
    EXPECT(V0, MQTT_RC_MALFORMED_PACKET, 0x10, 0x0D, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x02,
           0x00, 0x3C, 0x00, 0x00, 0x00);
    /* CONNECT whose client id runs past the packet */
    EXPECT(V0, MQTT_RC_MALFORMED_PACKET, 0x10, 0x0C, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x02,
           0x00, 0x3C, 0x00, 0x01);
    /* 5.0 property length past the packet */
    EXPECT(V5, MQTT_RC_MALFORMED_PACKET, 0x40, 0x04, 0x00, 0x01, 0x00, 0x05);
    /* SUBSCRIBE with a filter but no options byte */
    EXPECT(V4, MQTT_RC_MALFORMED_PACKET, 0x82, 0x05, 0x00, 0x01, 0x00, 0x01, 'a');
}

/* ---- UTF-8 ----------------------------------------------------------------- */

static void test_utf8_valid_forms(void **state)
{
    (void)state;
    assert_true(mqtt_utf8_valid("", 0));
    assert_true(mqtt_utf8_valid("sensors/kitchen/temp", 20));
    assert_true(mqtt_utf8_valid("\xC3\xA9t\xC3\xA9", 5));               /* été */
    assert_true(mqtt_utf8_valid("\xE2\x82\xAC", 3));                    /* € */
    assert_true(mqtt_utf8_valid("\xF0\x9F\x98\x80", 4));                /* U+1F600 */
    assert_true(mqtt_utf8_valid("\xF4\x8F\xBF\xBF", 4));                /* U+10FFFF */
    assert_true(mqtt_utf8_valid("\xEF\xBF\xBF", 3));                    /* U+FFFF: a SHOULD NOT only */
    assert_true(mqtt_utf8_valid("abcdefghijklmnop\xC3\xA9qrstuvwxyz", 28));
}

static void test_utf8_nul_mqtt_1_5_4_2(void **state)
{
    (void)state;
    assert_false(mqtt_utf8_valid("a\0b", 3));
    assert_false(mqtt_utf8_valid("abcdefgh\0", 9));
    assert_false(mqtt_utf8_valid("abc\0efghijk", 11));
    /* PUBLISH topic "a\0b" */
    EXPECT(V4, MQTT_RC_MALFORMED_PACKET, 0x30, 0x05, 0x00, 0x03, 'a', 0x00, 'b');
}

static void test_utf8_surrogates_mqtt_1_5_4_1(void **state)
{
    (void)state;
    assert_false(mqtt_utf8_valid("\xED\xA0\x80", 3)); /* U+D800 */
    assert_false(mqtt_utf8_valid("\xED\xBF\xBF", 3)); /* U+DFFF */
    assert_true(mqtt_utf8_valid("\xED\x9F\xBF", 3));  /* U+D7FF */
    EXPECT(V4, MQTT_RC_MALFORMED_PACKET, 0x30, 0x05, 0x00, 0x03, 0xED, 0xA0, 0x80);
}

static void test_utf8_ill_formed_mqtt_1_5_4_1(void **state)
{
    (void)state;
    assert_false(mqtt_utf8_valid("\xC0\xAF", 2));         /* overlong '/' */
    assert_false(mqtt_utf8_valid("\xC1\xBF", 2));
    assert_false(mqtt_utf8_valid("\xE0\x80\xAF", 3));     /* overlong, 3 bytes */
    assert_false(mqtt_utf8_valid("\xF0\x80\x80\xAF", 4)); /* overlong, 4 bytes */
    assert_false(mqtt_utf8_valid("\xF4\x90\x80\x80", 4)); /* U+110000 */
    assert_false(mqtt_utf8_valid("\xF5\x80\x80\x80", 4));
    assert_false(mqtt_utf8_valid("\x80", 1));             /* lone continuation */
    assert_false(mqtt_utf8_valid("\xC3", 1));             /* truncated */
    assert_false(mqtt_utf8_valid("\xE2\x82", 2));
    assert_false(mqtt_utf8_valid("\xE2\x28\xA1", 3));     /* bad continuation */
    assert_false(mqtt_utf8_valid("\xFF", 1));
    /* in a SUBSCRIBE filter and a CONNECT client id */
    EXPECT(V4, MQTT_RC_MALFORMED_PACKET, 0x82, 0x06, 0x00, 0x01, 0x00, 0x01, 0xFF, 0x00);
    EXPECT(V0, MQTT_RC_MALFORMED_PACKET, 0x10, 0x0E, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x02,
           0x00, 0x3C, 0x00, 0x02, 0xC0, 0xAF);
}

/* ---- CONNECT ------------------------------------------------------------- */

static void test_connect_311_minimal_bytes(void **state)
{
    (void)state;
    static const uint8_t in[] = {0x10, 0x0C, 0x00, 0x04, 'M', 'Q', 'T', 'T',
                                 0x04, 0x02, 0x00, 0x3C, 0x00, 0x00};
    mqtt_packet p;
    assert_int_equal(decode(V0, in, sizeof in, &p), 0);
    assert_int_equal(p.type, MQTT_CONNECT);
    assert_int_equal(p.connect.version, MQTT_V311);
    assert_int_equal(p.connect.clean_start, 1);
    assert_int_equal(p.connect.keep_alive, 60);
    assert_int_equal(p.connect.client_id.len, 0);
    assert_int_equal(p.connect.will, 0);
    round_trip(V0, in, sizeof in);
}

static void test_connect_311_full_bytes(void **state)
{
    (void)state;
    /* will QoS 1 retained on "w" = "x", user "u", password "pw" */
    static const uint8_t in[] = {0x10, 0x1B, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0xEE,
                                 0x00, 0x0A, 0x00, 0x02, 'c', '1', 0x00, 0x01, 'w', 0x00,
                                 0x01, 'x', 0x00, 0x01, 'u', 0x00, 0x02, 'p', 'w'};
    mqtt_packet p;
    assert_int_equal(decode(V0, in, sizeof in, &p), 0);
    mqtt_connect *c = &p.connect;
    assert_int_equal(c->clean_start, 1);
    assert_int_equal(c->will, 1);
    assert_int_equal(c->will_qos, 1);
    assert_int_equal(c->will_retain, 1);
    assert_memory_equal(c->client_id.p, "c1", 2);
    assert_memory_equal(c->will_topic.p, "w", 1);
    assert_int_equal(c->will_payload.len, 1);
    assert_int_equal(c->has_username, 1);
    assert_memory_equal(c->username.p, "u", 1);
    assert_int_equal(c->has_password, 1);
    assert_memory_equal(c->password.p, "pw", 2);
    round_trip(V0, in, sizeof in);
}

static void test_connect_5_with_properties_bytes(void **state)
{
    (void)state;
    /* session expiry 10, receive max 20, will delay 5 */
    static const uint8_t in[] = {0x10, 0x24, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, 0x06, 0x00,
                                 0x3C, 0x08, 0x11, 0x00, 0x00, 0x00, 0x0A, 0x21, 0x00, 0x14,
                                 0x00, 0x02, 'c', '1', 0x05, 0x18, 0x00, 0x00, 0x00, 0x05,
                                 0x00, 0x01, 't', 0x00, 0x02, 'b', 'y'};
    mqtt_packet p;
    assert_int_equal(decode(V0, in, sizeof in, &p), 0);
    mqtt_connect *c = &p.connect;
    assert_int_equal(c->version, MQTT_V5);
    assert_true(MQTT_HAS(&c->props, MQTT_PROP_SESSION_EXPIRY_INTERVAL));
    assert_int_equal(c->props.session_expiry, 10);
    assert_int_equal(c->props.receive_max, 20);
    assert_true(MQTT_HAS(&c->will_props, MQTT_PROP_WILL_DELAY_INTERVAL));
    assert_int_equal(c->will_props.will_delay, 5);
    assert_memory_equal(c->will_payload.p, "by", 2);
    round_trip(V0, in, sizeof in);
}

static void test_connect_encode_both_versions(void **state)
{
    (void)state;
    mqtt_packet p = {.type = MQTT_CONNECT};
    p.connect.clean_start = 1;
    p.connect.keep_alive = 30;
    p.connect.client_id = S("d");
    p.connect.has_username = 1;
    p.connect.username = S("u");
    p.connect.has_password = 1;
    p.connect.password = (mqtt_bin){(const uint8_t *)"t", 1};
    p.connect.props.session_expiry = 60;
    MQTT_SET(&p.connect.props, MQTT_PROP_SESSION_EXPIRY_INTERVAL);
    ENCODES_TO(&p, V4, 0x10, 0x13, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0xC2, 0x00, 0x1E, 0x00,
               0x01, 'd', 0x00, 0x01, 'u', 0x00, 0x01, 't');
    ENCODES_TO(&p, V5, 0x10, 0x19, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, 0xC2, 0x00, 0x1E, 0x05,
               0x11, 0x00, 0x00, 0x00, 0x3C, 0x00, 0x01, 'd', 0x00, 0x01, 'u', 0x00, 0x01, 't');
}

static void test_connect_reserved_flag_mqtt_3_1_2_3(void **state)
{
    (void)state;
    EXPECT(V0, MQTT_RC_MALFORMED_PACKET, 0x10, 0x0C, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x03,
           0x00, 0x3C, 0x00, 0x00);
    EXPECT(V0, MQTT_RC_MALFORMED_PACKET, 0x10, 0x0D, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, 0x03,
           0x00, 0x3C, 0x00, 0x00, 0x00);
}

static void test_connect_protocol_level_mqtt_3_1_2_2(void **state)
{
    (void)state;
    mqtt_packet p;
    /* 3.1 "MQIsdp" level 3: refused, the level is told for the answer */
    static const uint8_t v3[] = {0x10, 0x0E, 0x00, 0x06, 'M', 'Q', 'I', 's', 'd', 'p',
                                 0x03, 0x02, 0x00, 0x3C, 0x00, 0x00};
    assert_int_equal(decode(V0, v3, sizeof v3, &p), MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION);
    assert_int_equal(p.connect.version, 3);
    EXPECT(V0, MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION, 0x10, 0x0C, 0x00, 0x04, 'M', 'Q', 'T', 'T',
           0x06, 0x02, 0x00, 0x3C, 0x00, 0x00);
    EXPECT(V0, MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION, 0x10, 0x0C, 0x00, 0x04, 'M', 'Q', 'T', 'T',
           0x03, 0x02, 0x00, 0x3C, 0x00, 0x00);
}

static void test_connect_protocol_name_mqtt_3_1_2_1(void **state)
{
    (void)state;
    EXPECT(V0, MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION, 0x10, 0x0C, 0x00, 0x04, 'M', 'Q', 'T', 'X',
           0x04, 0x02, 0x00, 0x3C, 0x00, 0x00);
    EXPECT(V0, MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION, 0x10, 0x0C, 0x00, 0x04, 'm', 'q', 't', 't',
           0x04, 0x02, 0x00, 0x3C, 0x00, 0x00);
    /* a name cut short is malformed, not another protocol */
    EXPECT(V0, MQTT_RC_MALFORMED_PACKET, 0x10, 0x04, 0x00, 0x04, 'M', 'Q');
}

static void test_connect_read_by_its_own_level(void **state)
{
    (void)state;
    /* a 5.0 CONNECT decoded on a 3.1.1 connection still reads as 5.0 */
    mqtt_packet p;
    static const uint8_t in[] = {0x10, 0x0D, 0x00, 0x04, 'M', 'Q', 'T', 'T',
                                 0x05, 0x02, 0x00, 0x3C, 0x00, 0x00, 0x00};
    assert_int_equal(decode(V4, in, sizeof in, &p), 0);
    assert_int_equal(p.connect.version, MQTT_V5);
}

static void test_connect_will_qos_without_will_mqtt_3_1_2_11(void **state)
{
    (void)state;
    EXPECT(V0, MQTT_RC_MALFORMED_PACKET, 0x10, 0x0C, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x0A,
           0x00, 0x3C, 0x00, 0x00);
}

static void test_connect_will_retain_without_will_mqtt_3_1_2_13(void **state)
{
    (void)state;
    EXPECT(V0, MQTT_RC_MALFORMED_PACKET, 0x10, 0x0C, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x22,
           0x00, 0x3C, 0x00, 0x00);
}

static void test_connect_will_qos_3_mqtt_3_1_2_14(void **state)
{
    (void)state;
    EXPECT(V0, MQTT_RC_MALFORMED_PACKET, 0x10, 0x11, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x1E,
           0x00, 0x3C, 0x00, 0x00, 0x00, 0x01, 'w', 0x00, 0x00);
}

static void test_connect_will_topic_is_a_topic_name(void **state)
{
    (void)state;
    /* wildcard */
    EXPECT(V0, MQTT_RC_TOPIC_NAME_INVALID, 0x10, 0x11, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x06,
           0x00, 0x3C, 0x00, 0x00, 0x00, 0x01, '#', 0x00, 0x00);
    /* empty */
    EXPECT(V0, MQTT_RC_TOPIC_NAME_INVALID, 0x10, 0x10, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x06,
           0x00, 0x3C, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00);
    /* will flag set, no will fields */
    EXPECT(V0, MQTT_RC_MALFORMED_PACKET, 0x10, 0x0C, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x06,
           0x00, 0x3C, 0x00, 0x00);
}

static void test_connect_311_password_without_username_mqtt_3_1_2_22(void **state)
{
    (void)state;
    EXPECT(V0, MQTT_RC_MALFORMED_PACKET, 0x10, 0x0F, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x42,
           0x00, 0x3C, 0x00, 0x00, 0x00, 0x01, 'p');
    /* 5.0 allows it (§3.1.2.9) */
    EXPECT(V0, 0, 0x10, 0x10, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, 0x42, 0x00, 0x3C, 0x00, 0x00,
           0x00, 0x00, 0x01, 'p');
}

static void test_connect_username_not_utf8_mqtt_3_1_3_11(void **state)
{
    (void)state;
    EXPECT(V0, MQTT_RC_MALFORMED_PACKET, 0x10, 0x0F, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x82,
           0x00, 0x3C, 0x00, 0x00, 0x00, 0x01, 0xFE);
}

static void test_connect_5_property_rules(void **state)
{
    (void)state;
    /* receive maximum 0: protocol error (§3.1.2.11.3) */
    EXPECT(V0, MQTT_RC_PROTOCOL_ERROR, 0x10, 0x10, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, 0x02,
           0x00, 0x3C, 0x03, 0x21, 0x00, 0x00, 0x00, 0x00);
    /* maximum packet size 0 (§3.1.2.11.4) */
    EXPECT(V0, MQTT_RC_PROTOCOL_ERROR, 0x10, 0x12, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, 0x02,
           0x00, 0x3C, 0x05, 0x27, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00);
    /* session expiry twice */
    EXPECT(V0, MQTT_RC_PROTOCOL_ERROR, 0x10, 0x17, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, 0x02,
           0x00, 0x3C, 0x0A, 0x11, 0x00, 0x00, 0x00, 0x01, 0x11, 0x00, 0x00, 0x00, 0x02, 0x00,
           0x00);
    /* request problem information 2 (§3.1.2.11.7) */
    EXPECT(V0, MQTT_RC_PROTOCOL_ERROR, 0x10, 0x0F, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, 0x02,
           0x00, 0x3C, 0x02, 0x17, 0x02, 0x00, 0x00);
    /* a PUBLISH property (topic alias) in CONNECT */
    EXPECT(V0, MQTT_RC_PROTOCOL_ERROR, 0x10, 0x10, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, 0x02,
           0x00, 0x3C, 0x03, 0x23, 0x00, 0x01, 0x00, 0x00);
    /* an identifier that is no property */
    EXPECT(V0, MQTT_RC_MALFORMED_PACKET, 0x10, 0x0F, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, 0x02,
           0x00, 0x3C, 0x02, 0x07, 0x00, 0x00, 0x00);
    /* authentication data without a method (§3.1.2.11.10) */
    EXPECT(V0, MQTT_RC_PROTOCOL_ERROR, 0x10, 0x10, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, 0x02,
           0x00, 0x3C, 0x03, 0x16, 0x00, 0x00, 0x00, 0x00);
    /* will delay in CONNECT's own properties */
    EXPECT(V0, MQTT_RC_PROTOCOL_ERROR, 0x10, 0x12, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, 0x02,
           0x00, 0x3C, 0x05, 0x18, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00);
    /* user properties may repeat */
    EXPECT(V0, 0, 0x10, 0x19, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, 0x02, 0x00, 0x3C, 0x0C, 0x26,
           0x00, 0x01, 'k', 0x00, 0x00, 0x26, 0x00, 0x01, 'k', 0x00, 0x00, 0x00, 0x00);
}

static void test_connect_will_payload_format_mqtt_3_1_3_9(void **state)
{
    (void)state;
    /* will properties: payload format indicator 2 */
    EXPECT(V0, MQTT_RC_PROTOCOL_ERROR, 0x10, 0x15, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, 0x06,
           0x00, 0x3C, 0x00, 0x00, 0x00, 0x02, 0x01, 0x02, 0x00, 0x01, 'w', 0x00, 0x00);
    EXPECT(V0, 0, 0x10, 0x15, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, 0x06, 0x00, 0x3C, 0x00, 0x00,
           0x00, 0x02, 0x01, 0x01, 0x00, 0x01, 'w', 0x00, 0x00);
}

/* ---- CONNACK ------------------------------------------------------------- */

static void test_connack_bytes_both_versions(void **state)
{
    (void)state;
    mqtt_packet p = {.type = MQTT_CONNACK};
    p.connack.session_present = 1;
    ENCODES_TO(&p, V4, 0x20, 0x02, 0x01, 0x00);
    ENCODES_TO(&p, V5, 0x20, 0x03, 0x01, 0x00, 0x00);
    p.connack.session_present = 0;
    p.connack.reason = MQTT_RC_NOT_AUTHORIZED;
    p.connack.props.receive_max = 10;
    MQTT_SET(&p.connack.props, MQTT_PROP_RECEIVE_MAXIMUM);
    p.connack.props.assigned_client_id = S("id");
    MQTT_SET(&p.connack.props, MQTT_PROP_ASSIGNED_CLIENT_IDENTIFIER);
    ENCODES_TO(&p, V5, 0x20, 0x0B, 0x00, 0x87, 0x08, 0x12, 0x00, 0x02, 'i', 'd', 0x21, 0x00,
               0x0A);
    ROUND_TRIP(V4, 0x20, 0x02, 0x00, 0x05);
    ROUND_TRIP(V5, 0x20, 0x0B, 0x00, 0x87, 0x08, 0x12, 0x00, 0x02, 'i', 'd', 0x21, 0x00, 0x0A);
}

static void test_connack_reserved_and_session_present_mqtt_3_2_2_1(void **state)
{
    (void)state;
    EXPECT(V4, MQTT_RC_MALFORMED_PACKET, 0x20, 0x02, 0x02, 0x00);
    EXPECT(V4, MQTT_RC_PROTOCOL_ERROR, 0x20, 0x02, 0x01, 0x05); /* MQTT-3.2.2-4 */
    EXPECT(V5, MQTT_RC_PROTOCOL_ERROR, 0x20, 0x03, 0x01, 0x87, 0x00);
    EXPECT(V5, MQTT_RC_PROTOCOL_ERROR, 0x20, 0x03, 0x00, 0x11, 0x00); /* not a CONNACK code */
    EXPECT(V5, MQTT_RC_PROTOCOL_ERROR, 0x20, 0x05, 0x00, 0x00, 0x02, 0x24, 0x02); /* max QoS 2 */
}

/* ---- PUBLISH ------------------------------------------------------------- */

static void test_publish_311_qos0_bytes(void **state)
{
    (void)state;
    static const uint8_t in[] = {0x31, 0x08, 0x00, 0x03, 'a', '/', 'b', 'h', 'e', 'y'};
    mqtt_packet p;
    assert_int_equal(decode(V4, in, sizeof in, &p), 0);
    assert_int_equal(p.publish.qos, 0);
    assert_int_equal(p.publish.retain, 1);
    assert_int_equal(p.publish.topic.len, 3);
    assert_int_equal(p.publish.payload_len, 3);
    assert_memory_equal(p.publish.payload, "hey", 3);
    round_trip(V4, in, sizeof in);
}

static void test_publish_5_qos2_with_properties_bytes(void **state)
{
    (void)state;
    /* DUP QoS 2 id 7, payload format 1, message expiry 60, content type
     * "t", user property (k, v), empty payload */
    static const uint8_t in[] = {0x3C, 0x18, 0x00, 0x01, 'x', 0x00, 0x07, 0x12, 0x01, 0x01,
                                 0x02, 0x00, 0x00, 0x00, 0x3C, 0x03, 0x00, 0x01, 't', 0x26,
                                 0x00, 0x01, 'k', 0x00, 0x01, 'v'};
    mqtt_packet p;
    assert_int_equal(decode(V5, in, sizeof in, &p), 0);
    mqtt_publish *m = &p.publish;
    assert_int_equal(m->qos, 2);
    assert_int_equal(m->dup, 1);
    assert_int_equal(m->packet_id, 7);
    assert_int_equal(m->props.payload_format, 1);
    assert_int_equal(m->props.message_expiry, 60);
    assert_int_equal(m->props.n_user, 1);
    assert_int_equal(m->payload_len, 0);
    size_t pos = 0;
    mqtt_str k, v;
    assert_int_equal(mqtt_user_prop_next(&m->props, &pos, &k, &v), 1);
    assert_memory_equal(k.p, "k", 1);
    assert_memory_equal(v.p, "v", 1);
    assert_int_equal(mqtt_user_prop_next(&m->props, &pos, &k, &v), 0);
    round_trip(V5, in, sizeof in);
    /* 3.1.1 has no place for the properties */
    ENCODES_TO(&p, V4, 0x3C, 0x05, 0x00, 0x01, 'x', 0x00, 0x07);
}

static void test_publish_out_carries_sub_ids_and_expiry(void **state)
{
    (void)state;
    mqtt_packet p = {.type = MQTT_PUBLISH};
    p.publish.qos = 1;
    p.publish.packet_id = 2;
    p.publish.topic = S("a");
    p.publish.payload = (const uint8_t *)"1";
    p.publish.payload_len = 1;
    p.publish.props.message_expiry = 5;
    MQTT_SET(&p.publish.props, MQTT_PROP_MESSAGE_EXPIRY_INTERVAL);
    p.publish.props.sub_ids[0] = 1;
    p.publish.props.sub_ids[1] = 200;
    p.publish.props.n_sub_ids = 2;
    ENCODES_TO(&p, V5, 0x32, 0x11, 0x00, 0x01, 'a', 0x00, 0x02, 0x0A, 0x02, 0x00, 0x00, 0x00,
               0x05, 0x0B, 0x01, 0x0B, 0xC8, 0x01, '1');
    ENCODES_TO(&p, V4, 0x32, 0x06, 0x00, 0x01, 'a', 0x00, 0x02, '1');
    /* and decodes back with both identifiers */
    ROUND_TRIP(V5, 0x32, 0x11, 0x00, 0x01, 'a', 0x00, 0x02, 0x0A, 0x02, 0x00, 0x00, 0x00, 0x05,
               0x0B, 0x01, 0x0B, 0xC8, 0x01, '1');
}

static void test_publish_dup_outgoing_qos0_cleared_mqtt_3_3_1_2(void **state)
{
    (void)state;
    mqtt_packet p = {.type = MQTT_PUBLISH};
    p.publish.dup = 1;
    p.publish.topic = S("a");
    ENCODES_TO(&p, V4, 0x30, 0x03, 0x00, 0x01, 'a');
    EXPECT(V4, MQTT_RC_MALFORMED_PACKET, 0x38, 0x03, 0x00, 0x01, 'a');
}

static void test_publish_qos3_mqtt_3_3_1_4(void **state)
{
    (void)state;
    EXPECT(V4, MQTT_RC_MALFORMED_PACKET, 0x36, 0x05, 0x00, 0x01, 'a', 0x00, 0x01);
    EXPECT(V5, MQTT_RC_MALFORMED_PACKET, 0x36, 0x06, 0x00, 0x01, 'a', 0x00, 0x01, 0x00);
}

static void test_publish_packet_id_zero_mqtt_2_3_1_1(void **state)
{
    (void)state;
    EXPECT(V4, MQTT_RC_PROTOCOL_ERROR, 0x32, 0x05, 0x00, 0x01, 'a', 0x00, 0x00);
    EXPECT(V5, MQTT_RC_PROTOCOL_ERROR, 0x34, 0x06, 0x00, 0x01, 'a', 0x00, 0x00, 0x00);
    /* QoS 1 without room for its id */
    EXPECT(V4, MQTT_RC_MALFORMED_PACKET, 0x32, 0x04, 0x00, 0x01, 'a', 0x00);
}

static void test_publish_wildcard_topic_mqtt_3_3_2_2(void **state)
{
    (void)state;
    EXPECT(V4, MQTT_RC_TOPIC_NAME_INVALID, 0x30, 0x05, 0x00, 0x03, 'a', '/', '#');
    EXPECT(V4, MQTT_RC_TOPIC_NAME_INVALID, 0x30, 0x05, 0x00, 0x03, 'a', '+', 'b');
    EXPECT(V5, MQTT_RC_TOPIC_NAME_INVALID, 0x30, 0x04, 0x00, 0x01, '+', 0x00);
}

static void test_publish_311_empty_topic_mqtt_4_7_3_1(void **state)
{
    (void)state;
    EXPECT(V4, MQTT_RC_TOPIC_NAME_INVALID, 0x30, 0x03, 0x00, 0x00, 'x');
    EXPECT(V0, MQTT_RC_TOPIC_NAME_INVALID, 0x30, 0x02, 0x00, 0x00);
}

static void test_publish_5_empty_topic_needs_alias_mqtt_3_3_2_1(void **state)
{
    (void)state;
    EXPECT(V5, MQTT_RC_PROTOCOL_ERROR, 0x30, 0x03, 0x00, 0x00, 0x00);
    EXPECT(V5, 0, 0x30, 0x06, 0x00, 0x00, 0x03, 0x23, 0x00, 0x01);
}

static void test_publish_topic_alias_0_mqtt_3_3_2_8(void **state)
{
    (void)state;
    EXPECT(V5, MQTT_RC_TOPIC_ALIAS_INVALID, 0x30, 0x07, 0x00, 0x01, 'a', 0x03, 0x23, 0x00, 0x00);
}

static void test_publish_5_property_rules(void **state)
{
    (void)state;
    /* payload format indicator 2 */
    EXPECT(V5, MQTT_RC_PROTOCOL_ERROR, 0x30, 0x06, 0x00, 0x01, 'a', 0x02, 0x01, 0x02);
    /* message expiry twice */
    EXPECT(V5, MQTT_RC_PROTOCOL_ERROR, 0x30, 0x0E, 0x00, 0x01, 'a', 0x0A, 0x02, 0x00, 0x00, 0x00,
           0x01, 0x02, 0x00, 0x00, 0x00, 0x01);
    /* subscription identifier 0 */
    EXPECT(V5, MQTT_RC_PROTOCOL_ERROR, 0x30, 0x06, 0x00, 0x01, 'a', 0x02, 0x0B, 0x00);
    /* response topic with a wildcard (MQTT-3.3.2-14) */
    EXPECT(V5, MQTT_RC_PROTOCOL_ERROR, 0x30, 0x09, 0x00, 0x01, 'a', 0x05, 0x08, 0x00, 0x02, 'r',
           '#');
    /* session expiry: not a PUBLISH property */
    EXPECT(V5, MQTT_RC_PROTOCOL_ERROR, 0x30, 0x09, 0x00, 0x01, 'a', 0x05, 0x11, 0x00, 0x00, 0x00,
           0x01);
    /* content type not UTF-8 */
    EXPECT(V5, MQTT_RC_MALFORMED_PACKET, 0x30, 0x08, 0x00, 0x01, 'a', 0x04, 0x03, 0x00, 0x01,
           0xFF);
    /* user property value without its bytes */
    EXPECT(V5, MQTT_RC_MALFORMED_PACKET, 0x30, 0x0A, 0x00, 0x01, 'a', 0x06, 0x26, 0x00, 0x01,
           'k', 0x00, 0x01);
    /* an overlong property identifier */
    EXPECT(V5, MQTT_RC_MALFORMED_PACKET, 0x30, 0x07, 0x00, 0x01, 'a', 0x03, 0x81, 0x00, 0x00);
}

/* ---- acks ---------------------------------------------------------------- */

static void test_acks_bytes_both_versions(void **state)
{
    (void)state;
    mqtt_packet p = {.type = MQTT_PUBACK};
    p.ack.packet_id = 0x1234;
    ENCODES_TO(&p, V4, 0x40, 0x02, 0x12, 0x34);
    ENCODES_TO(&p, V5, 0x40, 0x02, 0x12, 0x34);
    p.ack.reason = MQTT_RC_PAYLOAD_FORMAT_INVALID;
    ENCODES_TO(&p, V4, 0x40, 0x02, 0x12, 0x34);
    ENCODES_TO(&p, V5, 0x40, 0x03, 0x12, 0x34, 0x99);
    p.ack.props.reason_string = S("no");
    MQTT_SET(&p.ack.props, MQTT_PROP_REASON_STRING);
    ENCODES_TO(&p, V5, 0x40, 0x09, 0x12, 0x34, 0x99, 0x05, 0x1F, 0x00, 0x02, 'n', 'o');
    p.type = MQTT_PUBREL;
    p.ack.reason = 0;
    p.ack.props.has = 0;
    ENCODES_TO(&p, V4, 0x62, 0x02, 0x12, 0x34);
    p.type = MQTT_PUBREC;
    ENCODES_TO(&p, V5, 0x50, 0x02, 0x12, 0x34);
    p.type = MQTT_PUBCOMP;
    p.ack.reason = MQTT_RC_PACKET_ID_NOT_FOUND;
    ENCODES_TO(&p, V5, 0x70, 0x03, 0x12, 0x34, 0x92);
    ROUND_TRIP(V5, 0x40, 0x09, 0x12, 0x34, 0x99, 0x05, 0x1F, 0x00, 0x02, 'n', 'o');
    ROUND_TRIP(V5, 0x62, 0x03, 0x00, 0x01, 0x92);
    ROUND_TRIP(V4, 0x50, 0x02, 0x00, 0x01);
    /* 5.0 reason with empty properties shortens to the reason alone */
    mqtt_packet q;
    static const uint8_t in[] = {0x40, 0x04, 0x00, 0x01, 0x10, 0x00};
    assert_int_equal(decode(V5, in, sizeof in, &q), 0);
    assert_int_equal(q.ack.reason, MQTT_RC_NO_MATCHING_SUBSCRIBERS);
    ENCODES_TO(&q, V5, 0x40, 0x03, 0x00, 0x01, 0x10);
}

static void test_acks_reason_codes_mqtt_3_4_2_1(void **state)
{
    (void)state;
    EXPECT(V5, MQTT_RC_PROTOCOL_ERROR, 0x40, 0x03, 0x00, 0x01, 0x92); /* PUBACK */
    EXPECT(V5, MQTT_RC_PROTOCOL_ERROR, 0x62, 0x03, 0x00, 0x01, 0x10); /* PUBREL */
    EXPECT(V5, MQTT_RC_PROTOCOL_ERROR, 0x40, 0x02, 0x00, 0x00);       /* id 0 */
    EXPECT(V4, MQTT_RC_PROTOCOL_ERROR, 0x70, 0x02, 0x00, 0x00);
    /* a PUBLISH property in a PUBACK */
    EXPECT(V5, MQTT_RC_PROTOCOL_ERROR, 0x40, 0x06, 0x00, 0x01, 0x00, 0x02, 0x01, 0x01);
    /* reason string twice */
    EXPECT(V5, MQTT_RC_PROTOCOL_ERROR, 0x40, 0x0A, 0x00, 0x01, 0x00, 0x06, 0x1F, 0x00, 0x00, 0x1F,
           0x00, 0x00);
}

/* ---- SUBSCRIBE / SUBACK / UNSUBSCRIBE / UNSUBACK ---------------------------- */

static void test_subscribe_bytes_and_filters(void **state)
{
    (void)state;
    static const uint8_t in[] = {0x82, 0x0E, 0x00, 0x0A, 0x00, 0x03, 'a', '/', '+',
                                 0x01, 0x00, 0x03, 'b', '/', '#', 0x02};
    mqtt_packet p;
    assert_int_equal(decode(V4, in, sizeof in, &p), 0);
    assert_int_equal(p.subscribe.packet_id, 10);
    assert_int_equal(p.subscribe.count, 2);
    size_t pos = 0;
    mqtt_str f;
    uint8_t opt;
    assert_int_equal(mqtt_filter_next(&p, &pos, &f, &opt), 1);
    assert_int_equal(f.len, 3);
    assert_memory_equal(f.p, "a/+", 3);
    assert_int_equal(opt, 1);
    assert_int_equal(mqtt_filter_next(&p, &pos, &f, &opt), 1);
    assert_memory_equal(f.p, "b/#", 3);
    assert_int_equal(opt, 2);
    assert_int_equal(mqtt_filter_next(&p, &pos, &f, &opt), 0);
    round_trip(V4, in, sizeof in);
    /* 5.0: subscription identifier 300, no local + retain as published + RH 2 */
    ROUND_TRIP(V5, 0x82, 0x0A, 0x00, 0x01, 0x03, 0x0B, 0xAC, 0x02, 0x00, 0x01, 'x', 0x2D);
}

static void test_subscribe_5_options_drop_to_qos_for_311(void **state)
{
    (void)state;
    static const uint8_t in[] = {0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, 'x', 0x2D};
    mqtt_packet p;
    assert_int_equal(decode(V5, in, sizeof in, &p), 0);
    ENCODES_TO(&p, V4, 0x82, 0x06, 0x00, 0x01, 0x00, 0x01, 'x', 0x01);
}

static void test_subscribe_no_filters_mqtt_3_8_3_3(void **state)
{
    (void)state;
    EXPECT(V4, MQTT_RC_PROTOCOL_ERROR, 0x82, 0x02, 0x00, 0x01);
    EXPECT(V5, MQTT_RC_PROTOCOL_ERROR, 0x82, 0x03, 0x00, 0x01, 0x00);
}

static void test_subscribe_packet_id_zero_mqtt_2_3_1_1(void **state)
{
    (void)state;
    EXPECT(V4, MQTT_RC_PROTOCOL_ERROR, 0x82, 0x06, 0x00, 0x00, 0x00, 0x01, 'a', 0x00);
}

static void test_subscribe_311_reserved_options_mqtt_3_8_3_4(void **state)
{
    (void)state;
    EXPECT(V4, MQTT_RC_MALFORMED_PACKET, 0x82, 0x06, 0x00, 0x01, 0x00, 0x01, 'a', 0x04);
    EXPECT(V4, MQTT_RC_MALFORMED_PACKET, 0x82, 0x06, 0x00, 0x01, 0x00, 0x01, 'a', 0x03);
}

static void test_subscribe_5_reserved_options_mqtt_3_8_3_5(void **state)
{
    (void)state;
    EXPECT(V5, MQTT_RC_MALFORMED_PACKET, 0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, 'a', 0x40);
    EXPECT(V5, MQTT_RC_MALFORMED_PACKET, 0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, 'a', 0x03);
}

static void test_subscribe_5_retain_handling_3_mqtt_3_8_3_1(void **state)
{
    (void)state;
    EXPECT(V5, MQTT_RC_PROTOCOL_ERROR, 0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, 'a', 0x30);
}

static void test_subscribe_5_no_local_shared_mqtt_3_8_3_4(void **state)
{
    (void)state;
    EXPECT(V5, MQTT_RC_PROTOCOL_ERROR, 0x82, 0x0F, 0x00, 0x01, 0x00, 0x00, 0x09, '$', 's', 'h',
           'a', 'r', 'e', '/', 'g', '/', 0x04);
    EXPECT(V5, 0, 0x82, 0x0F, 0x00, 0x01, 0x00, 0x00, 0x09, '$', 's', 'h', 'a', 'r', 'e', '/',
           'g', '/', 0x00);
}

static void test_subscribe_empty_filter_mqtt_4_7_3_1(void **state)
{
    (void)state;
    EXPECT(V4, MQTT_RC_MALFORMED_PACKET, 0x82, 0x05, 0x00, 0x01, 0x00, 0x00, 0x00);
    EXPECT(V4, MQTT_RC_MALFORMED_PACKET, 0xA2, 0x04, 0x00, 0x01, 0x00, 0x00);
}

static void test_subscribe_5_property_rules(void **state)
{
    (void)state;
    /* subscription identifier 0 (§3.8.2.1.2) */
    EXPECT(V5, MQTT_RC_PROTOCOL_ERROR, 0x82, 0x08, 0x00, 0x01, 0x02, 0x0B, 0x00, 0x00, 0x01, 'a',
           0x00);
    /* twice */
    EXPECT(V5, MQTT_RC_PROTOCOL_ERROR, 0x82, 0x0A, 0x00, 0x01, 0x04, 0x0B, 0x01, 0x0B, 0x02, 0x00,
           0x01, 'a', 0x00);
    /* not a SUBSCRIBE property */
    EXPECT(V5, MQTT_RC_PROTOCOL_ERROR, 0x82, 0x08, 0x00, 0x01, 0x02, 0x01, 0x01, 0x00, 0x01, 'a',
           0x00);
    /* UNSUBSCRIBE takes user properties only */
    EXPECT(V5, MQTT_RC_PROTOCOL_ERROR, 0xA2, 0x07, 0x00, 0x01, 0x02, 0x0B, 0x01, 0x00, 0x01, 'a');
}

static void test_unsubscribe_bytes(void **state)
{
    (void)state;
    static const uint8_t in[] = {0xA2, 0x09, 0x00, 0x02, 0x00, 0x01, 'a', 0x00, 0x02, 'b', '/'};
    mqtt_packet p;
    assert_int_equal(decode(V4, in, sizeof in, &p), 0);
    assert_int_equal(p.subscribe.count, 2);
    size_t pos = 0;
    mqtt_str f;
    uint8_t opt = 9;
    assert_int_equal(mqtt_filter_next(&p, &pos, &f, &opt), 1);
    assert_int_equal(opt, 0);
    assert_int_equal(mqtt_filter_next(&p, &pos, &f, &opt), 1);
    assert_memory_equal(f.p, "b/", 2);
    assert_int_equal(mqtt_filter_next(&p, &pos, &f, &opt), 0);
    round_trip(V4, in, sizeof in);
    ROUND_TRIP(V5, 0xA2, 0x06, 0x00, 0x02, 0x00, 0x00, 0x01, 'a');
}

static void test_unsubscribe_no_filters_mqtt_3_10_3_2(void **state)
{
    (void)state;
    EXPECT(V4, MQTT_RC_PROTOCOL_ERROR, 0xA2, 0x02, 0x00, 0x01);
}

static void test_suback_unsuback_bytes_both_versions(void **state)
{
    (void)state;
    static const uint8_t rs[] = {0x01, MQTT_RC_NOT_AUTHORIZED, 0x00};
    mqtt_packet p = {.type = MQTT_SUBACK};
    p.suback.packet_id = 5;
    p.suback.reasons = rs;
    p.suback.count = 3;
    ENCODES_TO(&p, V4, 0x90, 0x05, 0x00, 0x05, 0x01, 0x80, 0x00);
    ENCODES_TO(&p, V5, 0x90, 0x06, 0x00, 0x05, 0x00, 0x01, 0x87, 0x00);
    p.type = MQTT_UNSUBACK;
    static const uint8_t us[] = {0x00, 0x11};
    p.suback.reasons = us;
    p.suback.count = 2;
    ENCODES_TO(&p, V4, 0xB0, 0x02, 0x00, 0x05);
    ENCODES_TO(&p, V5, 0xB0, 0x05, 0x00, 0x05, 0x00, 0x00, 0x11);
    ROUND_TRIP(V4, 0x90, 0x04, 0x00, 0x05, 0x02, 0x80);
    ROUND_TRIP(V5, 0x90, 0x06, 0x00, 0x05, 0x00, 0x01, 0x87, 0x00);
    ROUND_TRIP(V4, 0xB0, 0x02, 0x00, 0x05);
    ROUND_TRIP(V5, 0xB0, 0x05, 0x00, 0x05, 0x00, 0x00, 0x11);
}

static void test_suback_return_codes_mqtt_3_9_3_2(void **state)
{
    (void)state;
    EXPECT(V4, MQTT_RC_PROTOCOL_ERROR, 0x90, 0x03, 0x00, 0x01, 0x87);
    EXPECT(V4, MQTT_RC_PROTOCOL_ERROR, 0x90, 0x02, 0x00, 0x01); /* none */
    EXPECT(V5, MQTT_RC_PROTOCOL_ERROR, 0x90, 0x04, 0x00, 0x01, 0x00, 0x11);
    EXPECT(V5, MQTT_RC_PROTOCOL_ERROR, 0xB0, 0x04, 0x00, 0x01, 0x00, 0x02);
    EXPECT(V4, MQTT_RC_MALFORMED_PACKET, 0xB0, 0x03, 0x00, 0x01, 0x00);
}

/* ---- PINGREQ / PINGRESP / DISCONNECT / AUTH -------------------------------- */

static void test_ping_disconnect_auth_bytes(void **state)
{
    (void)state;
    mqtt_packet p = {.type = MQTT_PINGREQ};
    ENCODES_TO(&p, V4, 0xC0, 0x00);
    p.type = MQTT_PINGRESP;
    ENCODES_TO(&p, V5, 0xD0, 0x00);
    p.type = MQTT_DISCONNECT;
    ENCODES_TO(&p, V4, 0xE0, 0x00);
    ENCODES_TO(&p, V5, 0xE0, 0x00);
    p.disconnect.reason = MQTT_RC_SESSION_TAKEN_OVER;
    ENCODES_TO(&p, V4, 0xE0, 0x00);
    ENCODES_TO(&p, V5, 0xE0, 0x01, 0x8E);
    p.disconnect.props.session_expiry = 0;
    MQTT_SET(&p.disconnect.props, MQTT_PROP_SESSION_EXPIRY_INTERVAL);
    ENCODES_TO(&p, V5, 0xE0, 0x07, 0x8E, 0x05, 0x11, 0x00, 0x00, 0x00, 0x00);
    mqtt_packet a = {.type = MQTT_AUTH};
    ENCODES_TO(&a, V5, 0xF0, 0x00);
    ss_buf out = SS_BUF_INIT;
    assert_int_equal(mqtt_encode(&a, V4, &out), SS_INVAL);
    assert_int_equal(out.len, 0);
    buf_free(&out);
    ROUND_TRIP(V5, 0xE0, 0x07, 0x8E, 0x05, 0x11, 0x00, 0x00, 0x00, 0x00);
    ROUND_TRIP(V5, 0xE0, 0x01, 0x04);
    ROUND_TRIP(V5, 0xF0, 0x07, 0x18, 0x05, 0x15, 0x00, 0x02, 'm', 'x');
    ROUND_TRIP(V4, 0xC0, 0x00);
    ROUND_TRIP(V4, 0xD0, 0x00);
}

static void test_disconnect_and_auth_rules(void **state)
{
    (void)state;
    EXPECT(V5, MQTT_RC_PROTOCOL_ERROR, 0xE0, 0x01, 0x92); /* not a DISCONNECT code */
    EXPECT(V5, MQTT_RC_PROTOCOL_ERROR, 0xF0, 0x01, 0x01);
    /* a CONNACK-only property in DISCONNECT */
    EXPECT(V5, MQTT_RC_PROTOCOL_ERROR, 0xE0, 0x04, 0x00, 0x02, 0x24, 0x01);
    /* auth data without a method */
    EXPECT(V5, MQTT_RC_PROTOCOL_ERROR, 0xF0, 0x06, 0x18, 0x04, 0x16, 0x00, 0x01, 'x');
    /* PINGREQ with content */
    EXPECT(V5, MQTT_RC_MALFORMED_PACKET, 0xC0, 0x01, 0x00);
}

/* ---- properties alone and encoding limits ------------------------------- */

static void test_props_encode_decode_persisted_form(void **state)
{
    (void)state;
    mqtt_props pr = {0};
    pr.payload_format = 1;
    MQTT_SET(&pr, MQTT_PROP_PAYLOAD_FORMAT_INDICATOR);
    pr.response_topic = S("r/1");
    MQTT_SET(&pr, MQTT_PROP_RESPONSE_TOPIC);
    pr.correlation_data = (mqtt_bin){(const uint8_t *)"\x00\x01", 2};
    MQTT_SET(&pr, MQTT_PROP_CORRELATION_DATA);
    static const uint8_t user[] = {0x26, 0x00, 0x01, 'a', 0x00, 0x01, 'b',
                                   0x26, 0x00, 0x01, 'a', 0x00, 0x00};
    pr.user = user;
    pr.user_len = sizeof user;
    pr.n_user = 2;
    MQTT_SET(&pr, MQTT_PROP_USER_PROPERTY);
    pr.session_expiry = 9; /* not a PUBLISH property: left out */
    MQTT_SET(&pr, MQTT_PROP_SESSION_EXPIRY_INTERVAL);
    ss_buf out = SS_BUF_INIT;
    assert_int_equal(mqtt_props_encode(&pr, MQTT_PUBLISH, &out), 0);
    static const uint8_t want[] = {0x01, 0x01, 0x08, 0x00, 0x03, 'r', '/', '1', 0x09, 0x00,
                                   0x02, 0x00, 0x01, 0x26, 0x00, 0x01, 'a', 0x00, 0x01, 'b',
                                   0x26, 0x00, 0x01, 'a', 0x00, 0x00};
    assert_int_equal(out.len, sizeof want);
    assert_memory_equal(out.data, want, sizeof want);
    mqtt_props back;
    assert_int_equal(mqtt_props_decode((const uint8_t *)out.data, out.len, MQTT_PUBLISH, &back), 0);
    assert_int_equal(back.payload_format, 1);
    assert_int_equal(back.response_topic.len, 3);
    assert_int_equal(back.correlation_data.len, 2);
    assert_int_equal(back.n_user, 2);
    assert_false(MQTT_HAS(&back, MQTT_PROP_SESSION_EXPIRY_INTERVAL));
    assert_int_equal(mqtt_props_decode((const uint8_t *)out.data, out.len, MQTT_PUBACK, &back),
                     MQTT_RC_PROTOCOL_ERROR);
    buf_free(&out);
}

static void test_user_props_step_over_others(void **state)
{
    (void)state;
    /* user, content type, user: the span covers all three */
    static const uint8_t list[] = {0x26, 0x00, 0x01, 'a', 0x00, 0x00, 0x03, 0x00, 0x01,
                                   't', 0x0B, 0x05, 0x26, 0x00, 0x01, 'b', 0x00, 0x01, 'c'};
    mqtt_props pr;
    assert_int_equal(mqtt_props_decode(list, sizeof list, MQTT_PUBLISH, &pr), 0);
    assert_int_equal(pr.n_user, 2);
    assert_int_equal(pr.n_sub_ids, 1);
    size_t pos = 0;
    mqtt_str k, v;
    assert_int_equal(mqtt_user_prop_next(&pr, &pos, &k, &v), 1);
    assert_memory_equal(k.p, "a", 1);
    assert_int_equal(v.len, 0);
    assert_int_equal(mqtt_user_prop_next(&pr, &pos, &k, &v), 1);
    assert_memory_equal(k.p, "b", 1);
    assert_memory_equal(v.p, "c", 1);
    assert_int_equal(mqtt_user_prop_next(&pr, &pos, &k, &v), 0);
}

/* Found by fuzz_mqtt: walking the user properties of a packet that has
 * none (a bare DISCONNECT, E0 00) did arithmetic on a NULL pointer. */
static void test_user_props_none_fuzz_disconnect(void **state)
{
    (void)state;
    static const uint8_t in[] = {0xE0, 0x00};
    mqtt_packet p;
    assert_int_equal(decode(V5, in, sizeof in, &p), 0);
    size_t pos = 0;
    mqtt_str k, v;
    assert_int_equal(mqtt_user_prop_next(&p.disconnect.props, &pos, &k, &v), 0);
    mqtt_props empty;
    assert_int_equal(mqtt_props_decode(NULL, 0, MQTT_PUBLISH, &empty), 0);
    assert_int_equal(empty.has, 0);
}

static void test_publish_sub_ids_bounded(void **state)
{
    (void)state;
    uint8_t list[2 * (MQTT_SUB_IDS_MAX + 1)];
    for (size_t i = 0; i <= MQTT_SUB_IDS_MAX; i++) {
        list[2 * i] = MQTT_PROP_SUBSCRIPTION_IDENTIFIER;
        list[2 * i + 1] = (uint8_t)(i + 1);
    }
    mqtt_props pr;
    assert_int_equal(mqtt_props_decode(list, 2 * MQTT_SUB_IDS_MAX, MQTT_PUBLISH, &pr), 0);
    assert_int_equal(pr.n_sub_ids, MQTT_SUB_IDS_MAX);
    assert_int_equal(mqtt_props_decode(list, sizeof list, MQTT_PUBLISH, &pr),
                     MQTT_RC_PROTOCOL_ERROR);
}

static void test_encode_large_payload_and_too_large(void **state)
{
    (void)state;
    size_t n = 200000;
    uint8_t *big = calloc(1, n);
    assert_non_null(big);
    mqtt_packet p = {.type = MQTT_PUBLISH};
    p.publish.topic = S("t");
    p.publish.payload = big;
    p.publish.payload_len = n;
    ss_buf out = SS_BUF_INIT;
    assert_int_equal(mqtt_encode(&p, V5, &out), 0);
    assert_int_equal(out.len, mqtt_encoded_size(&p, V5));
    assert_int_equal(out.len, 1 + 3 + 3 + 1 + n);
    mqtt_packet q;
    size_t used;
    assert_int_equal(mqtt_decode((const uint8_t *)out.data, out.len, V5, MAX, &q, &used), 0);
    assert_int_equal(q.publish.payload_len, n);
    /* appends after what is there */
    size_t first = out.len;
    assert_int_equal(mqtt_encode(&p, V4, &out), 0);
    assert_int_equal(out.len, first + 1 + 3 + 3 + n);
    /* past the largest remaining length */
    p.publish.payload_len = MQTT_VARINT_MAX;
    size_t before = out.len;
    assert_int_equal(mqtt_encode(&p, V4, &out), SS_TOO_LARGE);
    assert_int_equal(out.len, before);
    assert_true(mqtt_encoded_size(&p, V4) > MQTT_VARINT_MAX);
    buf_free(&out);
    free(big);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_frame_needs_the_whole_header),
        cmocka_unit_test(test_frame_varint_five_bytes_mqtt_1_5_5),
        cmocka_unit_test(test_frame_overlong_varint_mqtt_1_5_5_1),
        cmocka_unit_test(test_frame_refuses_oversized_from_header_alone),
        cmocka_unit_test(test_decode_more_for_every_prefix),
        cmocka_unit_test(test_decode_reads_one_packet_of_several),
        cmocka_unit_test(test_reserved_type_0_and_15_in_311_mqtt_2_1_2),
        cmocka_unit_test(test_fixed_header_flags_mqtt_2_1_3_1),
        cmocka_unit_test(test_remaining_length_must_match_content),
        cmocka_unit_test(test_utf8_valid_forms),
        cmocka_unit_test(test_utf8_nul_mqtt_1_5_4_2),
        cmocka_unit_test(test_utf8_surrogates_mqtt_1_5_4_1),
        cmocka_unit_test(test_utf8_ill_formed_mqtt_1_5_4_1),
        cmocka_unit_test(test_connect_311_minimal_bytes),
        cmocka_unit_test(test_connect_311_full_bytes),
        cmocka_unit_test(test_connect_5_with_properties_bytes),
        cmocka_unit_test(test_connect_encode_both_versions),
        cmocka_unit_test(test_connect_reserved_flag_mqtt_3_1_2_3),
        cmocka_unit_test(test_connect_protocol_level_mqtt_3_1_2_2),
        cmocka_unit_test(test_connect_protocol_name_mqtt_3_1_2_1),
        cmocka_unit_test(test_connect_read_by_its_own_level),
        cmocka_unit_test(test_connect_will_qos_without_will_mqtt_3_1_2_11),
        cmocka_unit_test(test_connect_will_retain_without_will_mqtt_3_1_2_13),
        cmocka_unit_test(test_connect_will_qos_3_mqtt_3_1_2_14),
        cmocka_unit_test(test_connect_will_topic_is_a_topic_name),
        cmocka_unit_test(test_connect_311_password_without_username_mqtt_3_1_2_22),
        cmocka_unit_test(test_connect_username_not_utf8_mqtt_3_1_3_11),
        cmocka_unit_test(test_connect_5_property_rules),
        cmocka_unit_test(test_connect_will_payload_format_mqtt_3_1_3_9),
        cmocka_unit_test(test_connack_bytes_both_versions),
        cmocka_unit_test(test_connack_reserved_and_session_present_mqtt_3_2_2_1),
        cmocka_unit_test(test_publish_311_qos0_bytes),
        cmocka_unit_test(test_publish_5_qos2_with_properties_bytes),
        cmocka_unit_test(test_publish_out_carries_sub_ids_and_expiry),
        cmocka_unit_test(test_publish_dup_outgoing_qos0_cleared_mqtt_3_3_1_2),
        cmocka_unit_test(test_publish_qos3_mqtt_3_3_1_4),
        cmocka_unit_test(test_publish_packet_id_zero_mqtt_2_3_1_1),
        cmocka_unit_test(test_publish_wildcard_topic_mqtt_3_3_2_2),
        cmocka_unit_test(test_publish_311_empty_topic_mqtt_4_7_3_1),
        cmocka_unit_test(test_publish_5_empty_topic_needs_alias_mqtt_3_3_2_1),
        cmocka_unit_test(test_publish_topic_alias_0_mqtt_3_3_2_8),
        cmocka_unit_test(test_publish_5_property_rules),
        cmocka_unit_test(test_acks_bytes_both_versions),
        cmocka_unit_test(test_acks_reason_codes_mqtt_3_4_2_1),
        cmocka_unit_test(test_subscribe_bytes_and_filters),
        cmocka_unit_test(test_subscribe_5_options_drop_to_qos_for_311),
        cmocka_unit_test(test_subscribe_no_filters_mqtt_3_8_3_3),
        cmocka_unit_test(test_subscribe_packet_id_zero_mqtt_2_3_1_1),
        cmocka_unit_test(test_subscribe_311_reserved_options_mqtt_3_8_3_4),
        cmocka_unit_test(test_subscribe_5_reserved_options_mqtt_3_8_3_5),
        cmocka_unit_test(test_subscribe_5_retain_handling_3_mqtt_3_8_3_1),
        cmocka_unit_test(test_subscribe_5_no_local_shared_mqtt_3_8_3_4),
        cmocka_unit_test(test_subscribe_empty_filter_mqtt_4_7_3_1),
        cmocka_unit_test(test_subscribe_5_property_rules),
        cmocka_unit_test(test_unsubscribe_bytes),
        cmocka_unit_test(test_unsubscribe_no_filters_mqtt_3_10_3_2),
        cmocka_unit_test(test_suback_unsuback_bytes_both_versions),
        cmocka_unit_test(test_suback_return_codes_mqtt_3_9_3_2),
        cmocka_unit_test(test_ping_disconnect_auth_bytes),
        cmocka_unit_test(test_disconnect_and_auth_rules),
        cmocka_unit_test(test_props_encode_decode_persisted_form),
        cmocka_unit_test(test_user_props_step_over_others),
        cmocka_unit_test(test_user_props_none_fuzz_disconnect),
        cmocka_unit_test(test_publish_sub_ids_bounded),
        cmocka_unit_test(test_encode_large_payload_and_too_large),
    };
    return cmocka_run_group_tests(tests, NULL, release_held);
}
