"""MQTT clients for the end-to-end tests: a raw one that builds every packet
byte by byte for MQTT 3.1.1 (level 4) and 5.0 (level 5), so a test can send
exactly the bytes it means, well-formed or not, and reads the server's
packets strictly (any packet that breaks the format of the version in use
fails the test: flag bits, lengths, reason codes and properties allowed in
that packet); and paho-mqtt helpers, for what a real client library does.

Nothing here starts a server: see conftest.py and the MQTT_ARGS below."""
import json
import queue
import socket
import ssl
import struct
import time

import paho.mqtt.client as paho
import pytest
from paho.mqtt.properties import Properties
from paho.mqtt.packettypes import PacketTypes

V311 = 4
V5 = 5
VERSIONS = [V311, V5]
VERSION_IDS = ["v311", "v5"]

# The server's flags for both MQTT listeners on free ports.
MQTT_ARGS = ["--listen-mqtt", "127.0.0.1:0", "--listen-mqtts", "127.0.0.1:0"]

CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT, AUTH = 8, 9, 10, 11, 12, 13, 14, 15
NAMES = {1: "CONNECT", 2: "CONNACK", 3: "PUBLISH", 4: "PUBACK", 5: "PUBREC", 6: "PUBREL",
         7: "PUBCOMP", 8: "SUBSCRIBE", 9: "SUBACK", 10: "UNSUBSCRIBE", 11: "UNSUBACK",
         12: "PINGREQ", 13: "PINGRESP", 14: "DISCONNECT", 15: "AUTH"}

# 3.1.1 CONNACK return codes.
RC311_ACCEPTED, RC311_BAD_VERSION, RC311_ID_REJECTED = 0x00, 0x01, 0x02
RC311_UNAVAILABLE, RC311_BAD_USER_PASS, RC311_NOT_AUTHORIZED = 0x03, 0x04, 0x05

# 5.0 reason codes the tests name.
RC_SUCCESS = 0x00
RC_NO_SUBSCRIBERS = 0x10
RC_NO_SUBSCRIPTION = 0x11
RC_UNSPECIFIED = 0x80
RC_MALFORMED = 0x81
RC_PROTOCOL_ERROR = 0x82
RC_UNSUPPORTED_VERSION = 0x84
RC_CLIENT_ID_INVALID = 0x85
RC_BAD_USER_PASS = 0x86
RC_NOT_AUTHORIZED = 0x87
RC_BAD_AUTH_METHOD = 0x8C
RC_KEEP_ALIVE_TIMEOUT = 0x8D
RC_SESSION_TAKEN_OVER = 0x8E
RC_FILTER_INVALID = 0x8F
RC_TOPIC_INVALID = 0x90
RC_PACKET_ID_NOT_FOUND = 0x92
RC_RECEIVE_MAX_EXCEEDED = 0x93
RC_ALIAS_INVALID = 0x94
RC_PACKET_TOO_LARGE = 0x95
RC_QUOTA_EXCEEDED = 0x97
RC_ADMINISTRATIVE = 0x98
RC_PAYLOAD_INVALID = 0x99

# 5.0 property identifiers, and how each is written.
P_PAYLOAD_FORMAT, P_MESSAGE_EXPIRY, P_CONTENT_TYPE = 0x01, 0x02, 0x03
P_RESPONSE_TOPIC, P_CORRELATION_DATA, P_SUB_ID = 0x08, 0x09, 0x0B
P_SESSION_EXPIRY, P_ASSIGNED_CLIENT_ID, P_SERVER_KEEP_ALIVE = 0x11, 0x12, 0x13
P_AUTH_METHOD, P_AUTH_DATA, P_REQUEST_PROBLEM_INFO = 0x15, 0x16, 0x17
P_WILL_DELAY, P_REQUEST_RESPONSE_INFO, P_RESPONSE_INFO = 0x18, 0x19, 0x1A
P_SERVER_REFERENCE, P_REASON_STRING, P_RECEIVE_MAX = 0x1C, 0x1F, 0x21
P_TOPIC_ALIAS_MAX, P_TOPIC_ALIAS, P_MAX_QOS = 0x22, 0x23, 0x24
P_RETAIN_AVAILABLE, P_USER_PROPERTY, P_MAX_PACKET_SIZE = 0x25, 0x26, 0x27
P_WILDCARD_AVAILABLE, P_SUB_ID_AVAILABLE, P_SHARED_AVAILABLE = 0x28, 0x29, 0x2A

PROP_KIND = {
    0x01: "byte", 0x02: "u32", 0x03: "str", 0x08: "str", 0x09: "bin", 0x0B: "varint",
    0x11: "u32", 0x12: "str", 0x13: "u16", 0x15: "str", 0x16: "bin", 0x17: "byte",
    0x18: "u32", 0x19: "byte", 0x1A: "str", 0x1C: "str", 0x1F: "str", 0x21: "u16",
    0x22: "u16", 0x23: "u16", 0x24: "byte", 0x25: "byte", 0x26: "pair", 0x27: "u32",
    0x28: "byte", 0x29: "byte", 0x2A: "byte",
}
# Properties a server may send, per packet type (5.0 §3.x.2.2).
ACK_PROPS = {P_REASON_STRING, P_USER_PROPERTY}
SERVER_PROPS = {
    CONNACK: {P_SESSION_EXPIRY, P_ASSIGNED_CLIENT_ID, P_SERVER_KEEP_ALIVE, P_AUTH_METHOD,
              P_AUTH_DATA, P_RESPONSE_INFO, P_SERVER_REFERENCE, P_REASON_STRING, P_RECEIVE_MAX,
              P_TOPIC_ALIAS_MAX, P_MAX_QOS, P_RETAIN_AVAILABLE, P_USER_PROPERTY,
              P_MAX_PACKET_SIZE, P_WILDCARD_AVAILABLE, P_SUB_ID_AVAILABLE, P_SHARED_AVAILABLE},
    PUBLISH: {P_PAYLOAD_FORMAT, P_MESSAGE_EXPIRY, P_CONTENT_TYPE, P_RESPONSE_TOPIC,
              P_CORRELATION_DATA, P_SUB_ID, P_TOPIC_ALIAS, P_USER_PROPERTY},
    PUBACK: ACK_PROPS, PUBREC: ACK_PROPS, PUBREL: ACK_PROPS, PUBCOMP: ACK_PROPS,
    SUBACK: ACK_PROPS, UNSUBACK: ACK_PROPS,
    # Session Expiry Interval is a client's only (MQTT-3.14.2-2).
    DISCONNECT: {P_SERVER_REFERENCE, P_REASON_STRING, P_USER_PROPERTY},
    AUTH: {P_AUTH_METHOD, P_AUTH_DATA, P_REASON_STRING, P_USER_PROPERTY},
}
# Reason codes a server may send, per packet type (5.0 §3.x.2.1).
SERVER_REASONS = {
    CONNACK: {0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8C,
              0x90, 0x95, 0x97, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F},
    PUBACK: {0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99},
    PUBREC: {0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99},
    PUBREL: {0x00, 0x92},
    PUBCOMP: {0x00, 0x92},
    SUBACK: {0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2},
    UNSUBACK: {0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91},
    DISCONNECT: {0x00, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D, 0x8E, 0x8F, 0x90, 0x93,
                 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0,
                 0xA1, 0xA2},
    AUTH: {0x00, 0x18, 0x19},
}


class ProtocolViolation(AssertionError):
    """The server sent a packet that breaks the protocol."""


# ---- encoding ------------------------------------------------------------------


def varint(n):
    out = bytearray()
    while True:
        b = n % 128
        n //= 128
        if n:
            b |= 0x80
        out.append(b)
        if not n:
            return bytes(out)


def u16(n):
    return struct.pack(">H", n)


def u32(n):
    return struct.pack(">I", n)


def raw_str(b):
    """A two-byte length and the bytes as given (a test's invalid UTF-8 too)."""
    if isinstance(b, str):
        b = b.encode()
    return u16(len(b)) + b


def props(items):
    """5.0 properties with their length. items: a list of (id, value) (a
    list keeps order and allows repeats: user properties, or a test's
    duplicate), or a dict."""
    if items is None:
        items = []
    if isinstance(items, dict):
        items = list(items.items())
    body = bytearray()
    for pid, val in items:
        body += varint(pid)
        kind = PROP_KIND[pid]
        if kind == "byte":
            body.append(val)
        elif kind == "u16":
            body += u16(val)
        elif kind == "u32":
            body += u32(val)
        elif kind == "varint":
            body += varint(val)
        elif kind in ("str", "bin"):
            body += raw_str(val)
        else:
            body += raw_str(val[0]) + raw_str(val[1])
    return varint(len(body)) + bytes(body)


def packet(ptype, flags, body):
    """A whole packet: fixed header (type, flags, remaining length) and body."""
    return bytes([(ptype << 4) | flags]) + varint(len(body)) + body


def connect(version=V311, client_id="", clean=True, keepalive=60, username=None, password=None,
            will=None, properties=None, protocol_name=b"MQTT", level=None, flags=None):
    """CONNECT. will: dict(topic, payload, qos=0, retain=False, props=None).
    flags overrides the computed connect flags byte (a test's bad one)."""
    f = 0x02 if clean else 0
    if will is not None:
        f |= 0x04 | (will.get("qos", 0) << 3) | (0x20 if will.get("retain") else 0)
    if username is not None:
        f |= 0x80
    if password is not None:
        f |= 0x40
    if flags is not None:
        f = flags
    body = raw_str(protocol_name) + bytes([version if level is None else level, f]) + u16(keepalive)
    if version == V5:
        body += props(properties)
    body += raw_str(client_id)
    if will is not None:
        if version == V5:
            body += props(will.get("props"))
        body += raw_str(will["topic"]) + raw_str(will["payload"])
    if username is not None:
        body += raw_str(username)
    if password is not None:
        body += raw_str(password)
    return packet(CONNECT, 0, body)


def publish(version, topic, payload=b"", qos=0, retain=False, dup=False, packet_id=None,
            properties=None, flags=None):
    if isinstance(payload, str):
        payload = payload.encode()
    f = (qos << 1) | (1 if retain else 0) | (0x08 if dup else 0)
    body = raw_str(topic)
    if qos:
        body += u16(packet_id if packet_id is not None else 1)
    if version == V5:
        body += props(properties)
    return packet(PUBLISH, f if flags is None else flags, body + payload)


def ack(ptype, version, packet_id, reason=None, properties=None):
    """PUBACK, PUBREC, PUBREL or PUBCOMP."""
    body = u16(packet_id)
    if version == V5 and (reason is not None or properties):
        body += bytes([reason or 0])
        if properties:
            body += props(properties)
    return packet(ptype, 2 if ptype == PUBREL else 0, body)


def subscribe(version, packet_id, filters, properties=None, flags=2):
    """filters: a list of (filter, options byte) or of filters (QoS 1)."""
    body = u16(packet_id)
    if version == V5:
        body += props(properties)
    for f in filters:
        flt, opts = (f, 1) if isinstance(f, (str, bytes)) else f
        body += raw_str(flt) + bytes([opts])
    return packet(SUBSCRIBE, flags, body)


def unsubscribe(version, packet_id, filters, properties=None, flags=2):
    body = u16(packet_id)
    if version == V5:
        body += props(properties)
    for f in filters:
        body += raw_str(f)
    return packet(UNSUBSCRIBE, flags, body)


def pingreq():
    return packet(PINGREQ, 0, b"")


def disconnect(version, reason=0, properties=None):
    if version == V5 and (reason or properties):
        return packet(DISCONNECT, 0, bytes([reason]) + (props(properties) if properties else b""))
    return packet(DISCONNECT, 0, b"")


# ---- decoding (strict) -----------------------------------------------------------


class Packet:
    """A packet the server sent, parsed. Fields by type: CONNACK
    session_present, reason, props; PUBLISH topic, qos, retain, dup,
    packet_id, props, payload; acks packet_id, reason, props; SUBACK /
    UNSUBACK packet_id, props, reasons; DISCONNECT / AUTH reason, props.
    props: {id: value}, with user properties as a list of (key, value)
    pairs and subscription identifiers as a list."""

    def __init__(self, ptype, flags, raw):
        self.type = ptype
        self.flags = flags
        self.raw = raw
        self.props = {}
        self.reason = 0
        self.packet_id = None

    def __repr__(self):
        fields = {k: v for k, v in self.__dict__.items() if k not in ("raw",)}
        return "<%s %r>" % (NAMES.get(self.type, self.type), fields)

    @property
    def name(self):
        return NAMES.get(self.type, str(self.type))

    @property
    def ok(self):
        """An acknowledgement of success: 5.0's 0x00, or 0x10 (accepted, and
        nobody subscribed to it)."""
        return self.reason in (0x00, 0x10)


def check(cond, what, raw=b""):
    if not cond:
        raise ProtocolViolation("%s (packet %s)" % (what, raw[:64].hex()))


def utf8_ok(b):
    try:
        s = b.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return "\x00" not in s


class Reader:
    def __init__(self, data, raw):
        self.d = data
        self.i = 0
        self.raw = raw

    def left(self):
        return len(self.d) - self.i

    def take(self, n):
        check(self.left() >= n, "packet shorter than its fields", self.raw)
        out = self.d[self.i:self.i + n]
        self.i += n
        return out

    def byte(self):
        return self.take(1)[0]

    def u16(self):
        return struct.unpack(">H", self.take(2))[0]

    def u32(self):
        return struct.unpack(">I", self.take(4))[0]

    def varint(self):
        n, mult, used = 0, 1, 0
        while True:
            b = self.byte()
            used += 1
            n += (b & 0x7F) * mult
            if not b & 0x80:
                break
            mult *= 128
            check(used < 4, "variable byte integer over four bytes", self.raw)
        check(used == len(varint(n)), "variable byte integer not in its fewest bytes", self.raw)
        return n

    def bin(self):
        return self.take(self.u16())

    def string(self):
        b = self.bin()
        check(utf8_ok(b), "string not valid UTF-8 or holding U+0000: %r" % b, self.raw)
        return b.decode()

    def props(self, ptype):
        n = self.varint()
        end = self.i + n
        check(end <= len(self.d), "property length past the packet", self.raw)
        out = {}
        while self.i < end:
            pid = self.varint()
            check(pid in PROP_KIND, "unknown property 0x%02x" % pid, self.raw)
            check(pid in SERVER_PROPS[ptype], "property 0x%02x not allowed in %s" % (pid, NAMES[ptype]),
                  self.raw)
            kind = PROP_KIND[pid]
            if kind == "byte":
                val = self.byte()
            elif kind == "u16":
                val = self.u16()
            elif kind == "u32":
                val = self.u32()
            elif kind == "varint":
                val = self.varint()
            elif kind == "str":
                val = self.string()
            elif kind == "bin":
                val = self.bin()
            else:
                val = (self.string(), self.string())
            if pid == P_USER_PROPERTY or (pid == P_SUB_ID and ptype == PUBLISH):
                out.setdefault(pid, []).append(val)
            else:
                check(pid not in out, "property 0x%02x given twice" % pid, self.raw)
                out[pid] = val
        check(self.i == end, "property list overruns its length", self.raw)
        return out


FIXED_FLAGS = {CONNACK: 0, PUBACK: 0, PUBREC: 0, PUBREL: 2, PUBCOMP: 0, SUBACK: 0, UNSUBACK: 0,
               PINGRESP: 0, DISCONNECT: 0, AUTH: 0}


def parse(version, first, body, raw):
    """Parses one packet the server sent, strictly for `version`."""
    ptype, flags = first >> 4, first & 0x0F
    check(ptype in FIXED_FLAGS or ptype == PUBLISH, "a server never sends packet type %d" % ptype, raw)
    if version == V311:
        check(ptype not in (DISCONNECT, AUTH), "%s in MQTT 3.1.1" % NAMES[ptype], raw)
    if ptype != PUBLISH:
        check(flags == FIXED_FLAGS[ptype], "reserved flags of %s are %x" % (NAMES[ptype], flags), raw)
    p = Packet(ptype, flags, raw)
    r = Reader(body, raw)
    {CONNACK: parse_connack, PUBLISH: parse_publish, PUBACK: parse_ack, PUBREC: parse_ack,
     PUBREL: parse_ack, PUBCOMP: parse_ack, SUBACK: parse_suback, UNSUBACK: parse_suback,
     PINGRESP: lambda *_: None, DISCONNECT: parse_reason_only, AUTH: parse_reason_only}[ptype](version, p, r)
    check(r.left() == 0, "%d bytes after the end of %s" % (r.left(), p.name), raw)
    return p


def parse_connack(version, p, r):
    ack_flags = r.byte()
    check(ack_flags & 0xFE == 0, "CONNACK flag bits 7-1 set", p.raw)
    p.session_present = ack_flags & 1
    p.reason = r.byte()
    if version == V311:
        check(p.reason <= 5, "3.1.1 CONNACK return code 0x%02x" % p.reason, p.raw)
    else:
        check(p.reason in SERVER_REASONS[CONNACK], "CONNACK reason 0x%02x" % p.reason, p.raw)
        p.props = r.props(CONNACK)
    if p.reason:
        check(p.session_present == 0, "a refusing CONNACK with Session Present 1", p.raw)


def parse_publish(version, p, r):
    p.qos = (p.flags >> 1) & 3
    p.retain = p.flags & 1
    p.dup = (p.flags >> 3) & 1
    check(p.qos != 3, "PUBLISH with QoS 3", p.raw)
    check(not (p.qos == 0 and p.dup), "QoS 0 PUBLISH with DUP", p.raw)
    p.topic = r.string()
    check("+" not in p.topic and "#" not in p.topic, "wildcard in a PUBLISH topic", p.raw)
    if p.qos:
        p.packet_id = r.u16()
        check(p.packet_id != 0, "packet identifier 0", p.raw)
    if version == V5:
        p.props = r.props(PUBLISH)
        check(p.topic or P_TOPIC_ALIAS in p.props, "empty topic without a topic alias", p.raw)
        check(p.props.get(P_TOPIC_ALIAS, 1) != 0, "topic alias 0", p.raw)
    else:
        check(p.topic, "empty PUBLISH topic", p.raw)
    p.payload = r.take(r.left())


def parse_ack(version, p, r):
    p.packet_id = r.u16()
    check(p.packet_id != 0, "packet identifier 0", p.raw)
    if version == V5 and r.left():
        p.reason = r.byte()
        check(p.reason in SERVER_REASONS[p.type], "%s reason 0x%02x" % (p.name, p.reason), p.raw)
        if r.left():
            p.props = r.props(p.type)


def parse_suback(version, p, r):
    p.packet_id = r.u16()
    check(p.packet_id != 0, "packet identifier 0", p.raw)
    if version == V5:
        p.props = r.props(p.type)
    p.reasons = list(r.take(r.left()))
    if version == V311:
        check(p.type == SUBACK or not p.reasons, "3.1.1 UNSUBACK with a payload", p.raw)
        check(all(c in (0, 1, 2, 0x80) for c in p.reasons), "3.1.1 SUBACK codes %r" % p.reasons, p.raw)
    else:
        check(p.reasons, "%s without reason codes" % p.name, p.raw)
        check(all(c in SERVER_REASONS[p.type] for c in p.reasons), "%s codes %r" % (p.name, p.reasons),
              p.raw)


def parse_reason_only(version, p, r):
    if r.left():
        p.reason = r.byte()
        check(p.reason in SERVER_REASONS[p.type], "%s reason 0x%02x" % (p.name, p.reason), p.raw)
        if r.left():
            p.props = r.props(p.type)


# ---- the raw client ---------------------------------------------------------------


def addr_of(srv, tls=False):
    host, port = srv.addrs["mqtts" if tls else "mqtt"].rsplit(":", 1)
    return host, int(port)


def tls_context(srv):
    ctx = ssl.create_default_context(cafile=srv.cert)
    return ctx


class Raw:
    """One connection to the broker, bytes out as given, packets in parsed
    strictly for `version` (the version of the CONNECT this client sends)."""

    def __init__(self, srv, version=V311, tls=False, timeout=10, rcvbuf=None):
        self.version = version
        self.srv = srv
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            # before connect, so the window the server sees is small too
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        s.settimeout(timeout)
        s.connect(addr_of(srv, tls))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if tls:
            s = tls_context(srv).wrap_socket(s, server_hostname="localhost")
        self.s = s
        self.buf = b""
        self.eof = False
        self.next_id = 1
        self.stash = []      # PUBLISHes that came while another packet was awaited
        self.sent = 0        # bytes written and read (TLS: of the plaintext)
        self.received = 0

    def pid(self):
        n = self.next_id
        self.next_id = n % 65535 + 1
        return n

    def send(self, data):
        self.s.sendall(data)
        self.sent += len(data)

    def try_send(self, data):
        """Sends; False when the server has already closed."""
        try:
            self.send(data)
            return True
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            return False

    def _fill(self, deadline):
        left = deadline - time.time()
        if left <= 0:
            raise TimeoutError
        self.s.settimeout(left)
        try:
            chunk = self.s.recv(65536)
        except socket.timeout:
            raise TimeoutError
        except (ConnectionResetError, ssl.SSLError, OSError):
            chunk = b""
        if not chunk:
            self.eof = True
        self.received += len(chunk)
        self.buf += chunk

    def recv(self, timeout=10):
        """The next packet, or None once the server closed. Raises
        TimeoutError when nothing whole came in time."""
        deadline = time.time() + timeout
        while True:
            p = self._split()
            if p is not None:
                return p
            if self.eof:
                check(not self.buf, "connection closed inside a packet", self.buf)
                return None
            self._fill(deadline)

    def _split(self):
        b = self.buf
        if len(b) < 2:
            return None
        n, mult, i = 0, 1, 1
        while True:
            if i >= len(b):
                return None
            c = b[i]
            n += (c & 0x7F) * mult
            i += 1
            if not c & 0x80:
                break
            mult *= 128
            check(i < 5, "remaining length over four bytes", b)
        check(i - 1 == len(varint(n)), "remaining length not in its fewest bytes", b)
        if len(b) < i + n:
            return None
        raw = b[:i + n]
        self.buf = b[i + n:]
        return parse(self.version, b[0], raw[i:], raw)

    def expect(self, ptype, timeout=10, skip=()):
        """The next packet of ptype. A PUBLISH that comes first is kept for
        message() (the server may send one at any time); packets of the
        types in skip are passed over; anything else fails."""
        if ptype == PUBLISH and self.stash:
            return self.stash.pop(0)
        deadline = time.time() + timeout
        while True:
            try:
                p = self.recv(max(0.01, deadline - time.time()))
            except TimeoutError:
                raise AssertionError("no %s within %ss" % (NAMES[ptype], timeout))
            assert p is not None, "closed while waiting for %s" % NAMES[ptype]
            if p.type == ptype:
                return p
            if p.type in skip:
                continue
            assert p.type == PUBLISH, "expected %s, got %r" % (NAMES[ptype], p)
            self.stash.append(p)

    def closed(self, timeout=10):
        """Reads until the server closes; returns the packets it sent before
        (a DISCONNECT among them, for 5.0). Fails if it stays open."""
        got = []
        deadline = time.time() + timeout
        while True:
            try:
                p = self.recv(max(0.01, deadline - time.time()))
            except TimeoutError:
                raise AssertionError("still open after %ss (got %r)" % (timeout, got))
            if p is None:
                return got
            got.append(p)

    def still_open(self, wait=0.3):
        """True when the server has not closed within `wait`, nothing sent."""
        try:
            p = self.recv(wait)
        except TimeoutError:
            return True
        assert p is None, "unexpected %r" % p
        return False

    def disconnect_reason(self, timeout=10):
        """Waits for the close; the reason of the DISCONNECT before it (5.0),
        or None when it just closed."""
        got = self.closed(timeout)
        discs = [p for p in got if p.type == DISCONNECT]
        return discs[-1].reason if discs else None

    def drain_until_close(self, timeout=20, idle=3):
        """Reads raw bytes until the server closes (True) or nothing came
        for `idle` seconds while it stayed open (False). Packets are not
        parsed: a reset may cut one."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            self.s.settimeout(idle)
            try:
                chunk = self.s.recv(1 << 20)
            except socket.timeout:
                return False
            except (ConnectionResetError, ssl.SSLError, OSError):
                return True
            if not chunk:
                return True
            self.received += len(chunk)
        return False

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass

    # -- conveniences -------------------------------------------------------------

    def connect(self, client_id="", clean=True, keepalive=60, username="device", password=None,
                will=None, properties=None, expect_reason=0, **kw):
        """Sends CONNECT, returns the CONNACK (checked against expect_reason
        unless that is None)."""
        self.send(connect(self.version, client_id, clean, keepalive, username, password, will,
                          properties, **kw))
        ca = self.expect(CONNACK)
        self.connack = ca
        if expect_reason is not None:
            assert ca.reason == expect_reason, "CONNACK 0x%02x, expected 0x%02x (%r)" % (
                ca.reason, expect_reason, ca)
        return ca

    def publish(self, topic, payload=b"", qos=0, retain=False, properties=None, dup=False,
                packet_id=None):
        """Publishes; for QoS 1 returns the PUBACK, for QoS 2 completes the
        exchange and returns the PUBREC; None for QoS 0."""
        pid = packet_id or (self.pid() if qos else None)
        self.send(publish(self.version, topic, payload, qos, retain, dup, pid, properties))
        if qos == 0:
            return None
        if qos == 1:
            a = self.expect(PUBACK)
            assert a.packet_id == pid, (a, pid)
            return a
        rec = self.expect(PUBREC)
        assert rec.packet_id == pid, (rec, pid)
        if rec.reason < 0x80:
            self.send(ack(PUBREL, self.version, pid))
            comp = self.expect(PUBCOMP)
            assert comp.packet_id == pid, (comp, pid)
        return rec

    def subscribe(self, *filters, properties=None):
        """filters: "f" (QoS 1) or ("f", options). Returns the SUBACK's codes."""
        pid = self.pid()
        self.send(subscribe(self.version, pid, list(filters), properties))
        sa = self.expect(SUBACK)
        assert sa.packet_id == pid, (sa, pid)
        assert len(sa.reasons) == len(filters), sa
        return sa.reasons

    def unsubscribe(self, *filters):
        pid = self.pid()
        self.send(unsubscribe(self.version, pid, list(filters)))
        ua = self.expect(UNSUBACK)
        assert ua.packet_id == pid, (ua, pid)
        return ua

    def message(self, timeout=10, ack_it=True):
        """The next PUBLISH from the server, acknowledged as its QoS asks
        (QoS 2: PUBREC, then PUBREL awaited and PUBCOMP sent)."""
        p = self.expect(PUBLISH, timeout)
        if ack_it:
            self.ack(p)
        return p

    def ack(self, p):
        if p.qos == 1:
            self.send(ack(PUBACK, self.version, p.packet_id))
        elif p.qos == 2:
            self.send(ack(PUBREC, self.version, p.packet_id))
            rel = self.expect(PUBREL)
            assert rel.packet_id == p.packet_id, (rel, p)
            self.send(ack(PUBCOMP, self.version, p.packet_id))

    def no_message(self, wait=0.5):
        """Asserts no PUBLISH arrives within `wait` seconds."""
        assert not self.stash, "unexpected %r" % self.stash[0]
        try:
            p = self.recv(wait)
        except TimeoutError:
            return
        raise AssertionError("unexpected packet %r" % p)

    def ping(self, timeout=10):
        self.send(pingreq())
        self.expect(PINGRESP, timeout)

    def bye(self):
        self.try_send(disconnect(self.version))
        self.close()


def reason_string(p):
    """The Reason String a parsed packet carries, or None."""
    return p.props.get(P_REASON_STRING)


def device_client(srv, dev, version=V311, tls=False, client_id="", clean=True, **kw):
    """A raw client connected as the device (token as the password)."""
    c = Raw(srv, version, tls)
    c.connect(client_id=client_id, clean=clean, password=dev["token"], **kw)
    return c


def app_client(srv, key, version=V311, tls=False, client_id="", clean=True, **kw):
    """A raw client connected as an app (username apikey, the key as password)."""
    c = Raw(srv, version, tls)
    c.connect(client_id=client_id, clean=clean, username="apikey", password=key, **kw)
    return c


def session_props(version, expiry=0xFFFFFFFF):
    """CONNECT properties that keep a 5.0 session (3.1.1: none; use clean=False)."""
    return [(P_SESSION_EXPIRY, expiry)] if version == V5 else None


def refused(c, version, reason_v5, timeout=10):
    """The server refused what c just sent, in its version's terms: 5.0 a
    DISCONNECT with reason_v5 (any reason when reason_v5 is None) before the
    close; 3.1.1 just the close."""
    reason = c.disconnect_reason(timeout)
    if version == V5:
        assert reason is not None, "closed without DISCONNECT"
        if reason_v5 is not None:
            assert reason == reason_v5, "DISCONNECT 0x%02x, expected 0x%02x" % (reason, reason_v5)
    else:
        assert reason is None


# ---- paho -------------------------------------------------------------------------


class PahoClient:
    """paho-mqtt with its callbacks turned into queues: connected, messages,
    disconnected."""

    def __init__(self, srv, version=V311, tls=False, client_id="", clean=True, username="device",
                 password=None, session_expiry=None):
        self.version = version
        proto = paho.MQTTv5 if version == V5 else paho.MQTTv311
        if version == V5:
            self.c = paho.Client(client_id=client_id, protocol=proto)
        else:
            self.c = paho.Client(client_id=client_id, clean_session=clean, protocol=proto)
        self.clean = clean
        self.session_expiry = session_expiry
        self.connacks = queue.Queue()
        self.messages = queue.Queue()
        self.disconnects = queue.Queue()
        self.subacks = queue.Queue()
        self.c.on_connect = self._on_connect
        self.c.on_message = lambda c, u, m: self.messages.put(m)
        self.c.on_disconnect = self._on_disconnect
        self.c.on_subscribe = self._on_subscribe
        if username is not None or password is not None:
            self.c.username_pw_set(username, password)
        if tls:
            self.c.tls_set(ca_certs=srv.cert)
        host, port = addr_of(srv, tls)
        self.host = "localhost" if tls else host
        self.port = port

    def _on_connect(self, c, u, flags, rc, properties=None):
        self.connacks.put((flags, int(rc.value) if hasattr(rc, "value") else rc))

    def _on_disconnect(self, c, u, rc, properties=None):
        self.disconnects.put(int(rc.value) if hasattr(rc, "value") else rc)

    def _on_subscribe(self, c, u, mid, granted, properties=None):
        codes = [int(g.value) if hasattr(g, "value") else g for g in granted]
        self.subacks.put((mid, codes))

    def connect(self, timeout=10, keepalive=60):
        """Connects; returns (flags, reason code)."""
        if self.version == V5:
            pr = None
            if self.session_expiry is not None:
                pr = Properties(PacketTypes.CONNECT)
                pr.SessionExpiryInterval = self.session_expiry
            self.c.connect(self.host, self.port, keepalive, clean_start=self.clean, properties=pr)
        else:
            self.c.connect(self.host, self.port, keepalive)
        self.c.loop_start()
        try:
            return self.connacks.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("no CONNACK within %ss" % timeout)

    def subscribe(self, topic, qos=1, timeout=10):
        """Subscribes; returns the granted codes."""
        rc, mid = self.c.subscribe(topic, qos)
        assert rc == paho.MQTT_ERR_SUCCESS, rc
        got_mid, codes = self.subacks.get(timeout=timeout)
        assert got_mid == mid
        return codes

    def publish(self, topic, payload, qos=1, retain=False, timeout=10):
        """Publishes and waits for the acknowledgement (QoS 1/2)."""
        info = self.c.publish(topic, payload, qos, retain)
        info.wait_for_publish(timeout)
        assert info.is_published(), "no acknowledgement within %ss" % timeout
        return info

    def message(self, timeout=10):
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("no message within %ss" % timeout)

    def disconnected(self, timeout=10):
        """The reason code of the next disconnect (paho's rc for 3.1.1)."""
        try:
            return self.disconnects.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("still connected after %ss" % timeout)

    def stop(self):
        try:
            self.c.disconnect()
        finally:
            self.c.loop_stop()


# ---- what several test files share ---------------------------------------------------


@pytest.fixture(params=VERSIONS, ids=VERSION_IDS)
def version(request):
    """Each test that takes it runs for MQTT 3.1.1 and for 5.0."""
    return request.param


@pytest.fixture(params=[False, True], ids=["plain", "tls"])
def tls(request):
    """Each test that takes it runs on the plaintext and the TLS listener."""
    return request.param


def readings(api, dev, channel, **params):
    """[[ts, value], …] of one channel of a device, over REST."""
    q = "&".join("%s=%s" % kv for kv in params.items())
    r = api.get("/api/v1/devices/%s/data?channel=%s%s" % (dev["id"], channel, "&" + q if q else ""))
    assert r.status_code == 200, r.text
    return r.json()["series"].get(channel, [])


def wait_readings(api, dev, channel, n, timeout=10):
    """Polls until the channel has at least n readings; returns them."""
    deadline = time.time() + timeout
    while True:
        got = readings(api, dev, channel)
        if len(got) >= n or time.time() > deadline:
            return got
        time.sleep(0.05)


def new_key(api, org_id, scopes=("data:read", "data:write")):
    r = api.post("/api/v1/orgs/%s/apikeys" % org_id, json={"name": "mqtt-app", "scopes": list(scopes)})
    assert r.status_code == 201, r.text
    return r.json()["key"]


def assert_broker_serves(srv, dev, version=V311, tls=False):
    """Another client on the same server still works: connects, publishes a
    reading at QoS 1 and gets its PUBACK."""
    c = device_client(srv, dev, version, tls)
    a = c.publish("devices/me/data/witness", "1", qos=1)
    assert a.reason == 0, a
    c.bye()


def json_payload(values, ts=None):
    return json.dumps({"ts": ts, "values": values} if ts is not None else values)
