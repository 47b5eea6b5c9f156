"""A small MQTT client on a raw socket for the broker's end-to-end tests:
packets built and read byte by byte, so a test sees exactly what the
server sent (reason codes, properties) and can send what a library would
not."""
import select
import socket
import struct
import time

WAIT = 10

CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT = 8, 9, 10, 11, 12, 13, 14

PROP_SESSION_EXPIRY = 0x11
PROP_REASON_STRING = 0x1F
PROP_REQUEST_PROBLEM_INFO = 0x17


def mqtt_addr(server):
    """(host, port) of the plain MQTT listener, reading the rest of the
    server's "listening" lines when start() returned before it."""
    deadline = time.time() + WAIT
    while "mqtt" not in server.addrs and time.time() < deadline:
        r, _, _ = select.select([server.proc.stdout], [], [], 0.2)
        if not r:
            continue
        for line in server.proc.stdout.readline().decode().splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[0] == "listening":
                server.addrs[parts[1]] = parts[2]
    host, port = server.addrs["mqtt"].rsplit(":", 1)
    return host, int(port)


def varint(n):
    out = b""
    while True:
        b = n % 128
        n //= 128
        out += bytes([b | (0x80 if n else 0)])
        if not n:
            return out


def mstr(s):
    if isinstance(s, str):
        s = s.encode()
    return struct.pack("!H", len(s)) + s


def packet(ptype, flags, body):
    return bytes([(ptype << 4) | flags]) + varint(len(body)) + body


def props_bytes(props):
    """props: a list of (id, bytes already encoded)."""
    body = b"".join(bytes([pid]) + val for pid, val in props)
    return varint(len(body)) + body


def parse_props(data, off):
    """The properties at data[off:]: ({id: [values]}, offset after them).
    Values: ints for the integer ones, bytes for strings and binary."""
    n, off = read_varint(data, off)
    end = off + n
    out = {}
    while off < end:
        pid = data[off]
        off += 1
        if pid in (0x01, 0x17, 0x19, 0x24, 0x25, 0x28, 0x29, 0x2A):
            val, off = data[off], off + 1
        elif pid in (0x13, 0x21, 0x22, 0x23):
            val, off = struct.unpack_from("!H", data, off)[0], off + 2
        elif pid in (0x02, 0x11, 0x18, 0x27):
            val, off = struct.unpack_from("!I", data, off)[0], off + 4
        elif pid == 0x0B:
            val, off = read_varint(data, off)
        elif pid == 0x26:
            ln = struct.unpack_from("!H", data, off)[0]
            k = data[off + 2:off + 2 + ln]
            off += 2 + ln
            ln = struct.unpack_from("!H", data, off)[0]
            val = (k, data[off + 2:off + 2 + ln])
            off += 2 + ln
        else:
            ln = struct.unpack_from("!H", data, off)[0]
            val, off = data[off + 2:off + 2 + ln], off + 2 + ln
        out.setdefault(pid, []).append(val)
    return out, end


def read_varint(data, off):
    n, mult = 0, 1
    while True:
        b = data[off]
        off += 1
        n += (b & 0x7F) * mult
        mult *= 128
        if not b & 0x80:
            return n, off


class Raw:
    """One connection. version 4 (3.1.1) or 5."""

    def __init__(self, server, version=5):
        self.version = version
        self.s = socket.create_connection(mqtt_addr(server), timeout=WAIT)
        self.buf = b""

    def close(self):
        self.s.close()

    def send(self, data):
        self.s.sendall(data)

    def connect(self, password, username="dev", client_id="", clean=True, keep_alive=60,
                props=()):
        flags = (0x02 if clean else 0) | 0x80 | (0x40 if password is not None else 0)
        var = mstr("MQTT") + bytes([self.version, flags]) + struct.pack("!H", keep_alive)
        if self.version == 5:
            var += props_bytes(props)
        payload = mstr(client_id) + mstr(username)
        if password is not None:
            payload += mstr(password)
        self.send(packet(CONNECT, 0, var + payload))
        return self.expect(CONNACK)

    def publish(self, topic, payload, qos=0, packet_id=1, retain=False):
        var = mstr(topic) + (struct.pack("!H", packet_id) if qos else b"")
        if self.version == 5:
            var += props_bytes([])
        if isinstance(payload, str):
            payload = payload.encode()
        self.send(packet(PUBLISH, (qos << 1) | (1 if retain else 0), var + payload))

    def subscribe(self, topic, qos=0, packet_id=1):
        var = struct.pack("!H", packet_id) + (props_bytes([]) if self.version == 5 else b"")
        self.send(packet(SUBSCRIBE, 2, var + mstr(topic) + bytes([qos])))
        return self.expect(SUBACK)

    def read(self, timeout=WAIT):
        """The next packet: (type, flags, body), or None when closed."""
        deadline = time.time() + timeout
        while True:
            got = self._frame()
            if got:
                return got
            left = deadline - time.time()
            if left <= 0:
                raise TimeoutError("no packet from the server")
            self.s.settimeout(left)
            try:
                chunk = self.s.recv(65536)
            except (ConnectionResetError, socket.timeout):
                chunk = b""
            if not chunk:
                return None
            self.buf += chunk

    def _frame(self):
        if len(self.buf) < 2:
            return None
        n, mult, off = 0, 1, 1
        while True:
            if off >= len(self.buf):
                return None
            b = self.buf[off]
            off += 1
            n += (b & 0x7F) * mult
            mult *= 128
            if not b & 0x80:
                break
        if len(self.buf) < off + n:
            return None
        first, body = self.buf[0], self.buf[off:off + n]
        self.buf = self.buf[off + n:]
        return first >> 4, first & 0x0F, body

    def expect(self, ptype, timeout=WAIT):
        """The next packet that is not a PUBLISH, which must be ptype;
        parsed: a dict with 'reason'(s), 'props', and what it carries."""
        while True:
            got = self.read(timeout)
            assert got is not None, "closed while waiting for packet type %d" % ptype
            t, flags, body = got
            if t == PUBLISH and ptype != PUBLISH:
                continue
            assert t == ptype, "got packet type %d, wanted %d (%r)" % (t, ptype, body)
            return self.parse(t, flags, body)

    def parse(self, t, flags, body):
        out = {"type": t, "props": {}}
        if t == CONNACK:
            out["present"] = body[0] & 1
            out["reason"] = body[1]
            if self.version == 5:
                out["props"], _ = parse_props(body, 2)
        elif t in (PUBACK, PUBREC, PUBREL, PUBCOMP):
            out["packet_id"] = struct.unpack_from("!H", body)[0]
            out["reason"] = body[2] if len(body) > 2 else 0
            if len(body) > 3:
                out["props"], _ = parse_props(body, 3)
        elif t in (SUBACK, UNSUBACK):
            out["packet_id"] = struct.unpack_from("!H", body)[0]
            off = 2
            if self.version == 5:
                out["props"], off = parse_props(body, 2)
            out["reasons"] = list(body[off:])
        elif t == DISCONNECT:
            out["reason"] = body[0] if body else 0
            if len(body) > 1:
                out["props"], _ = parse_props(body, 1)
        return out

    def closed(self, timeout=WAIT):
        """Reads until the server closes; the DISCONNECT it sent, if any."""
        last = None
        while True:
            got = self.read(timeout)
            if got is None:
                return last
            if got[0] == DISCONNECT:
                last = self.parse(*got)


def reason_string(p):
    """The reason string a parsed packet carries, or None."""
    v = p["props"].get(PROP_REASON_STRING)
    return v[0].decode() if v else None
