"""WebSockets on -k async: keepalive pings, the inbound queue, graceful stop
and many connections, against real ferricorn processes with the
`websockets` client and raw sockets (for a client that ignores pings)."""
import asyncio
import base64
import os
import signal
import socket
import struct
import time
import zlib

import pytest
import websockets
from websockets.asyncio.client import connect as ws_connect

from harness import IO_TIMEOUT, read_head
from test_asgi import raise_nofile, start, wait_for_event, ws_url


def ws_run(coro, timeout=30):
    return asyncio.run(asyncio.wait_for(coro, timeout))


@pytest.fixture
def events(tmp_path):
    return tmp_path / "events.log"


# -- a raw client that answers pings only when told to ----------------------------

def client_frame(opcode, payload, rsv1=False):
    """One final, masked client frame."""
    mask = os.urandom(4)
    n = len(payload)
    first = 0x80 | (0x40 if rsv1 else 0) | opcode
    if n < 126:
        header = struct.pack("!BB", first, 0x80 | n)
    elif n < 65536:
        header = struct.pack("!BBH", first, 0x80 | 126, n)
    else:
        header = struct.pack("!BBQ", first, 0x80 | 127, n)
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes((mask * (n // 4 + 1))[:n], "big"))
    return header + mask + (masked.to_bytes(n, "big") if n else b"")


class RawWs:
    """A WebSocket client on a plain socket: frames in and out by hand."""

    def __init__(self, port, path="/echo", extensions=None):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT)
        key = base64.b64encode(os.urandom(16))
        self.sock.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: x\r\n"
                          b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
                          b"Sec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n" +
                          (b"Sec-WebSocket-Extensions: %s\r\n" % extensions.encode()
                           if extensions else b"") + b"\r\n")
        head, self.buf = read_head(self.sock)
        self.head = head
        self.sock.settimeout(IO_TIMEOUT)
        assert head.startswith(b"HTTP/1.1 101"), head

    def send(self, opcode, payload, rsv1=False):
        self.sock.sendall(client_frame(opcode, payload, rsv1))

    def _need(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("closed after %d bytes" % len(self.buf))
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def frame(self):
        """The next (opcode, payload) from the server (it never masks)."""
        opcode, payload, _ = self.frame_rsv()
        return opcode, payload

    def frame_rsv(self):
        """The next (opcode, payload, rsv1)."""
        b0, b1 = self._need(2)
        n = b1 & 0x7F
        if n == 126:
            n, = struct.unpack("!H", self._need(2))
        elif n == 127:
            n, = struct.unpack("!Q", self._need(8))
        return b0 & 0x0F, self._need(n), bool(b0 & 0x40)

    def eof(self):
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True


def test_unanswered_ping_closes_1011_and_the_app_hears_it(spawn, events):
    server = start(spawn, "asgi_ws:app", "--websocket-ping-interval", "1",
                   "--websocket-ping-timeout", "1", env={"ASGI_EVENTS_FILE": str(events)})
    ws = RawWs(server.port)
    began = time.monotonic()
    opcode, payload = ws.frame()
    assert opcode == 0x9, (opcode, payload)  # the server's ping; not answered
    pinged = time.monotonic() - began
    opcode, payload = ws.frame()
    closed = time.monotonic() - began
    assert opcode == 0x8
    code, = struct.unpack("!H", payload[:2])
    assert (code, payload[2:]) == (1011, b"keepalive ping timeout")
    assert ws.eof()
    assert 0.5 < pinged < 1.9, pinged
    assert 1.5 < closed < 3.5, closed
    wait_for_event(events, "disconnect 1011 keepalive ping timeout")


def test_answered_pings_keep_the_connection_open(spawn):
    server = start(spawn, "asgi_ws:app", "--websocket-ping-interval", "1",
                   "--websocket-ping-timeout", "1")
    ws = RawWs(server.port)
    began = time.monotonic()
    for _ in range(3):
        opcode, payload = ws.frame()
        assert opcode == 0x9
        ws.send(0xA, payload)
    # Three pings answered: well past one interval plus the timeout, and
    # the connection still echoes.
    assert time.monotonic() - began > 2.5
    ws.send(0x1, b"still here")
    assert ws.frame() == (0x1, b"echo:still here")


def test_no_pings_when_the_interval_is_0(spawn):
    server = start(spawn, "asgi_ws:app", "--websocket-ping-interval", "0",
                   "--websocket-ping-timeout", "1")
    ws = RawWs(server.port)
    ws.sock.settimeout(2.5)
    with pytest.raises(socket.timeout):
        ws.frame()
    ws.sock.settimeout(IO_TIMEOUT)
    ws.send(0x1, b"x")
    assert ws.frame() == (0x1, b"echo:x")


def test_client_pings_get_pongs(spawn):
    server = start(spawn, "asgi_ws:app")
    ws = RawWs(server.port)
    ws.send(0x9, b"abc")
    assert ws.frame() == (0xA, b"abc")

    async def main():
        async with ws_connect(ws_url(server, "/echo"), ping_interval=None) as client:
            latency = await asyncio.wait_for(await client.ping(b"hello"), 5)
            return latency
    assert ws_run(main()) >= 0


# -- permessage-deflate --------------------------------------------------------

def deflate(data):
    c = zlib.compressobj(wbits=-15)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


def inflate(data):
    return zlib.decompressobj(wbits=-15).decompress(data + b"\x00\x00\xff\xff")


def test_per_message_deflate_negotiated_with_the_websockets_client(spawn):
    server = start(spawn, "asgi_ws:app")
    text = "compress me " * 5000

    async def main():
        async with ws_connect(ws_url(server, "/echo"), max_size=None) as ws:
            extensions = ws.response.headers["Sec-WebSocket-Extensions"]
            # Both directions compressed: the client's own frames are
            # inflated by the server, the echo by the client.
            await ws.send(text)
            assert await ws.recv() == "echo:" + text
            await ws.send(text.encode())
            assert await ws.recv() == text.encode()
            return extensions
    assert ws_run(main()) == "permessage-deflate; server_no_context_takeover"


def test_per_message_deflate_on_the_wire(spawn):
    server = start(spawn, "asgi_ws:app")
    ws = RawWs(server.port, extensions="permessage-deflate; client_max_window_bits")
    assert b"\r\nSec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n" in ws.head
    text = b"abc " * 10000
    ws.send(0x1, deflate(text), rsv1=True)
    opcode, payload, rsv1 = ws.frame_rsv()
    assert opcode == 0x1 and rsv1
    assert len(payload) < len(text) // 20
    assert inflate(payload) == b"echo:" + text
    # An uncompressed client message is read as one; the echo is compressed.
    ws.send(0x2, b"plain")
    opcode, payload, rsv1 = ws.frame_rsv()
    assert opcode == 0x2 and inflate(payload) == b"plain" and rsv1


def test_per_message_deflate_declined_when_turned_off_or_unhonourable(spawn):
    off = start(spawn, "asgi_ws:app", "--no-websocket-per-message-deflate")
    ws = RawWs(off.port, extensions="permessage-deflate")
    assert b"sec-websocket-extensions" not in ws.head.lower()
    ws.send(0x1, b"x" * 1000)
    assert ws.frame_rsv() == (0x1, b"echo:" + b"x" * 1000, False)
    # A compressed frame where none was agreed is a protocol error.
    ws.send(0x1, deflate(b"y"), rsv1=True)
    opcode, payload, _ = ws.frame_rsv()
    assert opcode == 0x8 and struct.unpack("!H", payload[:2])[0] == 1002

    on = start(spawn, "asgi_ws:app")
    # A smaller server window than 32 KiB cannot be honoured: not agreed.
    ws = RawWs(on.port, extensions="permessage-deflate; server_max_window_bits=10")
    assert b"sec-websocket-extensions" not in ws.head.lower()


def test_deflate_bomb_gets_1009_without_inflating_it(spawn, events):
    server = start(spawn, "asgi_ws:app", "--websocket-max-message-size", "1048576",
                   env={"ASGI_EVENTS_FILE": str(events)})
    worker = server.booted_pids()[-1]
    ws = RawWs(server.port, extensions="permessage-deflate")
    before = rss_kib(worker)
    bomb = deflate(b"\0" * (200 * 1024 * 1024))  # 200 MiB inflated
    assert len(bomb) < 1024 * 1024
    ws.send(0x2, bomb, rsv1=True)
    opcode, payload, _ = ws.frame_rsv()
    assert opcode == 0x8
    assert (struct.unpack("!H", payload[:2])[0], payload[2:]) == (1009, b"message too big")
    grown = rss_kib(worker) - before
    assert grown < 32 * 1024, grown
    wait_for_event(events, "disconnect 1009")


# -- the inbound queue -----------------------------------------------------------

def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for %d" % pid)


def test_app_that_does_not_receive_stops_the_reading(spawn):
    server = start(spawn, "asgi_ws:app")
    worker = server.booted_pids()[-1]
    mib = 1024 * 1024
    total = 200
    noise = os.urandom(mib)  # incompressible: permessage-deflate cannot shrink it

    async def main():
        async with ws_connect(ws_url(server, "/lazy"), max_size=None,
                              ping_interval=None) as ws:
            assert await ws.recv() == "ready"
            before = rss_kib(worker)
            sent = 0

            async def push():
                nonlocal sent
                for _ in range(total):
                    await ws.send(noise)
                    sent += 1

            pusher = asyncio.create_task(push())
            # The client can push only what the 32-message inbox and the
            # socket buffers hold; then its sends wait.
            stalled_at = None
            for _ in range(100):
                await asyncio.sleep(0.1)
                if stalled_at == sent:
                    break
                stalled_at = sent
            grown = rss_kib(worker) - before
            stalled = sent
            assert not pusher.done()
            assert 32 <= stalled < 100, stalled
            assert grown < 100 * 1024, grown
            # The app drains: reading resumes and nothing was lost.
            async with ws_connect(ws_url(server, "/release")) as release:
                with pytest.raises(websockets.ConnectionClosedOK):
                    await release.recv()
            await pusher
            await ws.send("end")
            assert await ws.recv() == "got %d %d" % (total, total * mib)
            return stalled, grown
    stalled, grown = ws_run(main(), timeout=60)
    print("stalled after %d of %d 1 MiB messages; worker RSS +%d KiB" % (stalled, total, grown))


# -- stopping and scale ----------------------------------------------------------

def test_term_with_open_websockets_closes_1012_and_exits_fast(spawn, events):
    server = start(spawn, "asgi_ws:app", "--graceful-timeout", "30",
                   env={"ASGI_EVENTS_FILE": str(events)})

    async def main():
        clients = [await ws_connect(ws_url(server, "/echo")) for _ in range(20)]
        for ws in clients:
            await ws.send("up")
            assert await ws.recv() == "echo:up"
        began = time.monotonic()
        server.signal(signal.SIGTERM)
        codes = []
        for ws in clients:
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await ws.recv()
            codes.append(closed.value.rcvd.code)
        return codes, began
    codes, began = ws_run(main())
    assert codes == [1012] * 20
    assert server.wait() == 0
    elapsed = time.monotonic() - began
    assert elapsed < 5, elapsed  # --graceful-timeout is 30
    assert events.read_text().count("disconnect 1012") == 20


def test_thousand_open_websockets_each_echoing(spawn):
    raise_nofile(4096)
    server = start(spawn, "asgi_ws:app", "--worker-connections", "1100")

    async def main():
        clients = []
        for _ in range(10):
            clients += await asyncio.gather(*(
                ws_connect(ws_url(server, "/echo"), ping_interval=None) for _ in range(100)))
        # All 1,000 are open at once; each echoes its own message.
        await asyncio.gather(*(ws.send("n%d" % i) for i, ws in enumerate(clients)))
        replies = await asyncio.gather(*(ws.recv() for ws in clients))
        await asyncio.gather(*(ws.close() for ws in clients))
        return replies
    replies = ws_run(main(), timeout=120)
    assert replies == ["echo:n%d" % i for i in range(1000)]


# -- HTTP/2 (RFC 8441) -------------------------------------------------------------

def test_websocket_over_http2_extended_connect(spawn):
    h2conn = pytest.importorskip("h2.connection")
    import h2.config
    import h2.events
    server = start(spawn, "asgiraw:app", "--http2-cleartext", "prior-knowledge")
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=IO_TIMEOUT)
    conn = h2conn.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    inbox = {}

    def pump(until):
        while not until():
            data = sock.recv(65536)
            assert data, "connection closed"
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived):
                    inbox.setdefault(event.stream_id, {})["headers"] = dict(event.headers)
                elif isinstance(event, h2.events.DataReceived):
                    conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                    box = inbox.setdefault(event.stream_id, {})
                    box["data"] = box.get("data", b"") + event.data
            sock.sendall(conn.data_to_send())

    # The server offers extended CONNECT in its SETTINGS (RFC 8441 §3).
    pump(lambda: conn.remote_settings.enable_connect_protocol == 1)

    def open_ws(stream, path):
        conn.send_headers(stream, [(":method", "CONNECT"), (":protocol", "websocket"),
                                   (":scheme", "http"), (":path", path),
                                   (":authority", "127.0.0.1"),
                                   ("sec-websocket-version", "13")])
        sock.sendall(conn.data_to_send())
        pump(lambda: "headers" in inbox.get(stream, {}))
        return inbox[stream]["headers"]

    def server_frame(stream):
        pump(lambda: len(inbox.get(stream, {}).get("data", b"")) >= 2)
        pump(lambda: len(inbox[stream]["data"]) >= 4)
        data = inbox[stream]["data"]
        n, at = data[1] & 0x7F, 2
        if n == 126:
            n, = struct.unpack("!H", data[2:4])
            at = 4
        assert n < 65536
        pump(lambda: len(inbox[stream]["data"]) >= at + n)
        data = inbox[stream]["data"]
        inbox[stream]["data"] = data[at + n:]
        return data[0] & 0x0F, data[at:at + n]

    headers = open_ws(1, "/ws/scope")
    assert headers[b":status"] == b"200"
    opcode, payload = server_frame(1)
    scope = __import__("json").loads(payload)
    assert (scope["type"], scope["http_version"], scope["path"]) == ("websocket", "2", "/ws/scope")

    headers = open_ws(3, "/ws/echo")
    assert headers[b":status"] == b"200"
    conn.send_data(3, client_frame(0x1, b"over h2"))
    sock.sendall(conn.data_to_send())
    assert server_frame(3) == (0x1, b"echo:over h2")
    conn.send_data(3, client_frame(0x8, struct.pack("!H", 1000)))
    sock.sendall(conn.data_to_send())
    opcode, payload = server_frame(3)
    assert opcode == 0x8 and struct.unpack("!H", payload[:2])[0] == 1000
