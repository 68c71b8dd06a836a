#!/usr/bin/env python3
"""Probe a Kafka broker with the real wire protocol; exit 0 only when it answers correctly.

    probe_kafka.py [HOST:PORT] [--api-only] [--timeout SECONDS]

HOST:PORT defaults to $ORDEXA_KAFKA_BOOTSTRAP, else 127.0.0.1:19092. The probe sends
ApiVersions v3 (what librdkafka and the Java client send first) and, unless --api-only, a
Metadata request for no topics, which a KRaft broker only answers once it has caught up with
the controller and registered itself: an open port alone does not mean the broker is usable.

Exit status: 0 ok, 1 unreachable or bad answer, 2 usage. Standard library only, so it runs
before any project dependency is installed.
"""

import os
import socket
import struct
import sys

API_METADATA = 3
API_VERSIONS = 18
CLIENT_ID = b"ordexa-probe"
MAX_RESPONSE = 64 * 1024 * 1024  # far above any answer to these requests; catches non-Kafka peers

# The codes a probe can plausibly meet; others are printed as numbers.
ERRORS = {
    -1: "UNKNOWN_SERVER_ERROR",
    7: "REQUEST_TIMED_OUT",
    8: "BROKER_NOT_AVAILABLE",
    15: "COORDINATOR_NOT_AVAILABLE",
    35: "UNSUPPORTED_VERSION",
    51: "CONCURRENT_TRANSACTIONS",
}


class ProbeError(Exception):
    pass


def error_name(code):
    return ERRORS.get(code, f"error {code}")


# ---- encoding ------------------------------------------------------------------------------


def uvarint(n):
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def compact_string(b):
    return uvarint(len(b) + 1) + b


def header(api_key, version, corr, flexible):
    # Request header v1, or v2 for flexible versions; client_id stays a classic int16 string.
    h = struct.pack(">hhih", api_key, version, corr, len(CLIENT_ID)) + CLIENT_ID
    return h + (b"\x00" if flexible else b"")


# ---- decoding ------------------------------------------------------------------------------


class Reader:
    def __init__(self, buf, what):
        self.buf, self.pos, self.what = buf, 0, what

    def take(self, n):
        if self.pos + n > len(self.buf):
            raise ProbeError(f"{self.what} response is truncated at byte {self.pos}")
        b = self.buf[self.pos : self.pos + n]
        self.pos += n
        return b

    def int16(self):
        return struct.unpack(">h", self.take(2))[0]

    def int32(self):
        return struct.unpack(">i", self.take(4))[0]

    def uvarint(self):
        n = shift = 0
        while True:
            b = self.take(1)[0]
            n |= (b & 0x7F) << shift
            if b < 0x80:
                return n
            shift += 7
            if shift > 28:
                raise ProbeError(f"{self.what} response has a malformed varint")

    def string(self):  # classic nullable string
        n = self.int16()
        return None if n < 0 else self.take(n).decode("utf-8", "replace")

    def compact_string(self):  # compact nullable string
        n = self.uvarint()
        return None if n == 0 else self.take(n - 1).decode("utf-8", "replace")

    def tagged_fields(self):
        for _ in range(self.uvarint()):
            self.uvarint()
            self.take(self.uvarint())


# ---- transport -----------------------------------------------------------------------------


def recv_exact(sock, n, what):
    buf = bytearray()
    while len(buf) < n:
        try:
            chunk = sock.recv(n - len(buf))
        except socket.timeout:
            if buf or what != "ApiVersions":
                raise ProbeError(f"no complete {what} response within the timeout") from None
            raise ProbeError("no answer to ApiVersions within the timeout: something listens on the port but does not speak Kafka, or the broker is hung") from None
        if not chunk:
            raise ProbeError(
                f"connection closed during the {what} response"
                + (" (is this a Kafka broker?)" if not buf else "")
            )
        buf += chunk
    return bytes(buf)


def round_trip(sock, request, corr, what):
    try:
        sock.sendall(struct.pack(">i", len(request)) + request)
    except socket.timeout:
        raise ProbeError(f"sending the {what} request timed out") from None
    raw = recv_exact(sock, 4, what)
    size = struct.unpack(">i", raw)[0]
    if raw in (b"HTTP", b"<htm", b"<!DO"):
        raise ProbeError("the port answered with HTTP, not Kafka: another program listens there")
    if not 4 <= size <= MAX_RESPONSE:
        raise ProbeError(f"the {what} response has an impossible size {size}: not a Kafka broker?")
    r = Reader(recv_exact(sock, size, what), what)
    got = r.int32()
    if got != corr:
        raise ProbeError(f"{what} response carries correlation id {got}, expected {corr}")
    return r


# ---- requests ------------------------------------------------------------------------------


def api_versions(sock):
    """ApiVersions v3 -> {api_key: (min, max)}. Its response header is always v0."""
    body = compact_string(b"ordexa-probe") + compact_string(b"1") + b"\x00"
    r = round_trip(sock, header(API_VERSIONS, 3, 1, True) + body, 1, "ApiVersions")
    code = r.int16()
    if code != 0:
        # On UNSUPPORTED_VERSION the broker answers in v0 layout with its own range.
        hint = ""
        if code == 35:
            try:
                hint = "; broker supports ApiVersions " + ", ".join(
                    f"v{mn}-v{mx}" for k, mn, mx in (struct.unpack(">hhh", r.take(6)) for _ in range(r.int32()))
                    if k == API_VERSIONS
                )
            except ProbeError:
                pass
        raise ProbeError(f"broker answered ApiVersions with {error_name(code)}{hint}")
    apis = {}
    for _ in range(r.uvarint() - 1):
        key, lo, hi = r.int16(), r.int16(), r.int16()
        r.tagged_fields()
        apis[key] = (lo, hi)
    return apis


def metadata(sock, supported):
    """Metadata for no topics -> (brokers, cluster_id, controller_id).

    v12 is the flexible encoding current brokers prefer; v4 is the classic one for older brokers.
    """
    lo, hi = supported
    version = next((v for v in (12, 4) if lo <= v <= hi), None)
    if version is None:
        raise ProbeError(f"broker offers Metadata v{lo}-v{hi}, none of which this probe speaks (v4, v12)")
    flexible = version >= 9
    if flexible:  # empty topics array, no auto-creation, no topic ACLs, no tagged fields
        body = uvarint(1) + b"\x00\x00\x00"
    else:  # empty topics array, no auto-creation
        body = struct.pack(">i?", 0, False)
    r = round_trip(sock, header(API_METADATA, version, 2, flexible) + body, 2, "Metadata")
    if flexible:
        r.tagged_fields()  # response header v1
    r.int32()  # throttle_time_ms
    brokers = []
    count = r.uvarint() - 1 if flexible else r.int32()
    for _ in range(count):
        node = r.int32()
        host = r.compact_string() if flexible else r.string()
        port = r.int32()
        r.compact_string() if flexible else r.string()  # rack
        if flexible:
            r.tagged_fields()
        brokers.append(f"{node}@{host}:{port}")
    cluster = r.compact_string() if flexible else r.string()
    controller = r.int32()
    return brokers, cluster, controller


# ---- main ----------------------------------------------------------------------------------


def parse_args(argv):
    target = os.environ.get("ORDEXA_KAFKA_BOOTSTRAP") or "127.0.0.1:19092"
    api_only, timeout = False, 2.0
    args = list(argv)
    while args:
        a = args.pop(0)
        if a in ("-h", "--help"):
            print(__doc__.strip())
            sys.exit(0)
        elif a == "--api-only":
            api_only = True
        elif a == "--timeout" and args:
            timeout = float(args.pop(0))
        elif not a.startswith("-"):
            target = a
        else:
            raise ValueError(f"unknown argument {a}")
    target = target.split(",")[0].strip()
    host, sep, port = target.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"expected HOST:PORT, got {target!r}")
    return host.strip("[]"), int(port), api_only, timeout


def main(argv):
    try:
        host, port, api_only, timeout = parse_args(argv)
    except ValueError as e:
        print(f"probe_kafka: {e}\nusage: probe_kafka.py [HOST:PORT] [--api-only] [--timeout SECONDS]", file=sys.stderr)
        return 2
    where = f"kafka {host}:{port}"
    try:
        try:
            sock = socket.create_connection((host, port), timeout=timeout)
        except socket.timeout:
            raise ProbeError(f"connecting timed out after {timeout:g}s") from None
        except OSError as e:
            raise ProbeError(f"cannot connect: {e.strerror or e}") from None
        with sock:
            sock.settimeout(timeout)  # bounds every send and recv, not just the connect
            apis = api_versions(sock)
            line = f"{where}: ApiVersions ok, {len(apis)} apis"
            if not api_only:
                if API_METADATA not in apis:
                    raise ProbeError("broker does not offer the Metadata API")
                brokers, cluster, controller = metadata(sock, apis[API_METADATA])
                if not brokers:
                    raise ProbeError("Metadata lists no live broker yet (still starting?)")
                line += f", brokers=[{', '.join(brokers)}], cluster={cluster}, controller={controller}"
    except ProbeError as e:
        print(f"{where}: NOT OK: {e}", file=sys.stderr)
        return 1
    except OSError as e:  # resets and the like mid-exchange
        print(f"{where}: NOT OK: {e.strerror or e}", file=sys.stderr)
        return 1
    print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
