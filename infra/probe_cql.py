#!/usr/bin/env python3
"""Readiness probe for the local Cassandra: speaks the CQL native protocol v4 directly.

It succeeds only when the node does what a driver needs at connect time: answer OPTIONS,
accept STARTUP without authentication, and serve a read from system.local. A listening port
alone is not enough (Cassandra opens it before it can serve queries).

Standard library only, so it runs before any project dependency is installed.

Exit status: 0 ready; 1 cannot connect (refused, timeout, closed); 2 usage;
3 the server answered but not as expected (ERROR frame, authentication required, bad frame).
"""

import argparse
import os
import socket
import struct
import sys

PROTOCOL_V4 = 0x04
RESPONSE_BIT = 0x80
HEADER = struct.Struct(">BBhBI")  # version, flags, stream, opcode, body length

OP_ERROR, OP_STARTUP, OP_READY, OP_AUTHENTICATE = 0x00, 0x01, 0x02, 0x03
OP_OPTIONS, OP_SUPPORTED, OP_QUERY, OP_RESULT = 0x05, 0x06, 0x07, 0x08
OPCODE_NAMES = {
    OP_ERROR: "ERROR", OP_STARTUP: "STARTUP", OP_READY: "READY", OP_AUTHENTICATE: "AUTHENTICATE",
    OP_OPTIONS: "OPTIONS", OP_SUPPORTED: "SUPPORTED", OP_QUERY: "QUERY", OP_RESULT: "RESULT",
}

FLAG_TRACING, FLAG_CUSTOM_PAYLOAD, FLAG_WARNING = 0x02, 0x04, 0x08
RESULT_ROWS = 0x0002
ROWS_GLOBAL_TABLES_SPEC, ROWS_HAS_MORE_PAGES, ROWS_NO_METADATA = 0x0001, 0x0002, 0x0004
CONSISTENCY_ONE = 0x0001


class NotReady(Exception):
    """The node answered, but not in a way that lets a client use it."""


class Reader:
    """Cursor over a frame body, decoding the protocol's [short], [string], [bytes], ... types."""

    def __init__(self, data):
        self.data, self.pos = data, 0

    def take(self, n):
        if n < 0 or self.pos + n > len(self.data):
            raise NotReady("truncated frame body")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def byte(self):
        return self.take(1)[0]

    def short(self):
        return struct.unpack(">H", self.take(2))[0]

    def int(self):
        return struct.unpack(">i", self.take(4))[0]

    def string(self):
        return self.take(self.short()).decode("utf-8", "replace")

    def string_list(self):
        return [self.string() for _ in range(self.short())]

    def string_multimap(self):
        return {self.string(): self.string_list() for _ in range(self.short())}

    def bytes(self):
        n = self.int()
        return None if n < 0 else self.take(n)

    def bytes_map(self):
        return {self.string(): self.bytes() for _ in range(self.short())}

    def option(self):
        """Skip a column type [option]; collections and UDTs nest further options."""
        kind = self.short()
        if kind == 0x0000:  # custom: class name
            self.string()
        elif kind in (0x0020, 0x0022):  # list, set
            self.option()
        elif kind == 0x0021:  # map
            self.option()
            self.option()
        elif kind == 0x0030:  # UDT: keyspace, name, fields
            self.string()
            self.string()
            for _ in range(self.short()):
                self.string()
                self.option()
        elif kind == 0x0031:  # tuple
            for _ in range(self.short()):
                self.option()
        return kind


def string_map(entries):
    body = struct.pack(">H", len(entries))
    for key, value in entries.items():
        for s in (key, value):
            raw = s.encode("utf-8")
            body += struct.pack(">H", len(raw)) + raw
    return body


def recv_exactly(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed by the server")
        buf += chunk
    return buf


def request(sock, stream, opcode, body=b""):
    """Send one request frame and return (opcode, body reader) of its response."""
    sock.sendall(HEADER.pack(PROTOCOL_V4, 0, stream, opcode, len(body)) + body)
    version, flags, resp_stream, resp_opcode, length = HEADER.unpack(recv_exactly(sock, HEADER.size))
    reader = Reader(recv_exactly(sock, length))
    # A server that rejects v4 answers with its own (lower) version; the body is still an ERROR.
    if not version & RESPONSE_BIT:
        raise NotReady(f"not a CQL response frame (version byte 0x{version:02x})")
    if resp_opcode == OP_ERROR:
        code = reader.int()
        raise NotReady(f"server ERROR 0x{code:04x}: {reader.string()}")
    if version & 0x7F != PROTOCOL_V4:
        raise NotReady(f"server answered with protocol v{version & 0x7F}, expected v4")
    if resp_stream != stream:
        raise NotReady(f"response for stream {resp_stream}, expected {stream}")
    # Optional prefixes, in the order the spec puts them before the body proper.
    if flags & FLAG_TRACING:
        reader.take(16)
    if flags & FLAG_WARNING:
        for warning in reader.string_list():
            print(f"server warning: {warning}", file=sys.stderr)
    if flags & FLAG_CUSTOM_PAYLOAD:
        reader.bytes_map()
    return resp_opcode, reader


def expect(opcode, wanted, step):
    if opcode != wanted:
        if opcode == OP_AUTHENTICATE:
            raise NotReady(f"{step}: the server requires authentication; "
                           "the local node is expected to use AllowAllAuthenticator")
        got = OPCODE_NAMES.get(opcode, f"0x{opcode:02x}")
        raise NotReady(f"{step}: expected {OPCODE_NAMES[wanted]}, got {got}")


def first_text_cell(reader):
    """Decode a RESULT Rows body and return the first column of the first row as text."""
    kind = reader.int()
    if kind != RESULT_ROWS:
        raise NotReady(f"QUERY: expected a Rows result, got result kind {kind}")
    flags, columns = reader.int(), reader.int()
    if flags & ROWS_HAS_MORE_PAGES:
        reader.bytes()
    if not flags & ROWS_NO_METADATA:
        if flags & ROWS_GLOBAL_TABLES_SPEC:
            reader.string()
            reader.string()
        for _ in range(columns):
            if not flags & ROWS_GLOBAL_TABLES_SPEC:
                reader.string()
                reader.string()
            reader.string()  # column name
            reader.option()
    if reader.int() < 1 or columns < 1:
        raise NotReady("QUERY: system.local returned no rows")
    cell = reader.bytes()
    if cell is None:
        raise NotReady("QUERY: release_version is null")
    return cell.decode("utf-8", "replace")


class Silent(Exception):
    """Connected, but no complete answer in time: often some other service on the port."""


def probe(host, port, timeout):
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        try:
            return converse(sock)
        except socket.timeout as e:
            raise Silent() from e


def converse(sock):
    """OPTIONS, STARTUP, then the query, as a driver does at connect time."""
    opcode, reader = request(sock, 0, OP_OPTIONS)
    expect(opcode, OP_SUPPORTED, "OPTIONS")
    reader.string_multimap()  # decoding it proves the frame is well formed
    opcode, _ = request(sock, 1, OP_STARTUP, string_map({"CQL_VERSION": "3.0.0"}))
    expect(opcode, OP_READY, "STARTUP")
    query = "SELECT release_version FROM system.local".encode("utf-8")
    body = struct.pack(">i", len(query)) + query + struct.pack(">HB", CONSISTENCY_ONE, 0)
    opcode, reader = request(sock, 2, OP_QUERY, body)
    expect(opcode, OP_RESULT, "QUERY")
    return first_text_cell(reader)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("host", nargs="?", default="127.0.0.1")
    parser.add_argument("port", nargs="?", type=int,
                        default=int(os.environ.get("ORDEXA_CASSANDRA_PORT", "19042")))
    parser.add_argument("--timeout", type=float, default=2.0, help="socket timeout in seconds")
    args = parser.parse_args()
    where = f"cassandra {args.host}:{args.port}"
    try:
        version = probe(args.host, args.port, args.timeout)
    except NotReady as e:
        print(f"{where}: not ready: {e}", file=sys.stderr)
        return 3
    except Silent:
        print(f"{where}: connected, but no CQL answer within {args.timeout:g}s "
              "(still starting, overloaded, or not Cassandra?)", file=sys.stderr)
        return 1
    except socket.timeout:
        print(f"{where}: connection timed out after {args.timeout:g}s", file=sys.stderr)
        return 1
    except OSError as e:  # refused, reset, closed, unreachable
        print(f"{where}: cannot talk CQL: {e.strerror or e}", file=sys.stderr)
        return 1
    print(f"{where}: release_version {version}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
