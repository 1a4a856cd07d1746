"""ferricorn's ASGI 3 glue, run on the worker's asyncio loop thread.

The I/O thread (Rust, tokio) parses HTTP and queues events; ``Server.wake``
drains them when the loop's eventfd fires. ``receive`` and ``send`` are the
app's callables; ``send`` hands the response to Rust (``AsgiReply``), which
only makes it wait while more than the write credit is unwritten.
"""

import asyncio
import collections
import inspect
import sys
import traceback

_DISCONNECT = {"type": "http.disconnect"}


class ClientDisconnected(OSError):
    """Raised by ``send()`` once the client has gone (ASGI spec 2.4)."""


def single_callable(app):
    """ASGI 3 as is; a legacy double callable (ASGI 2) wrapped."""
    if inspect.isclass(app):
        is_asgi3 = hasattr(app, "__await__")
    else:
        is_asgi3 = inspect.iscoroutinefunction(app) or inspect.iscoroutinefunction(
            getattr(app, "__call__", None))
    if is_asgi3:
        return app

    async def asgi2(scope, receive, send):
        instance = app(scope)
        return await instance(receive, send)

    return asgi2


def new_loop(kind):
    if kind in ("auto", "uvloop"):
        try:
            import uvloop
        except ImportError:
            if kind == "uvloop":
                raise
        else:
            return uvloop.new_event_loop()
    return asyncio.new_event_loop()


class _WriteCredit:
    """The part of a cycle that waits for write credit: ``send`` parks on
    ``writer`` while Rust holds more than the credit unwritten."""

    __slots__ = ()

    async def _wait_writable(self):
        self.writer = writer = asyncio.get_running_loop().create_future()
        await writer

    def _release_writer(self, error=None):
        writer, self.writer = self.writer, None
        if writer is not None and not writer.done():
            if error is None:
                writer.set_result(None)
            else:
                writer.set_exception(error)

    def on_writable(self):
        self._release_writer()


class Cycle(_WriteCredit):
    """One HTTP request: its receive/send and the app task."""

    __slots__ = (
        "reply", "inbox", "waiter", "body_done", "disconnected", "started",
        "complete", "asked", "writer", "task", "status", "extensions",
        "body_sent", "trailers",
    )

    def __init__(self, reply, extensions=None):
        self.reply = reply
        self.inbox = collections.deque()
        self.waiter = None
        self.body_done = False
        self.disconnected = False
        self.started = False
        self.complete = False
        self.asked = False
        self.writer = None
        self.task = None
        self.status = 0
        # What scope["extensions"] offered this request.
        self.extensions = extensions or {}
        self.body_sent = False
        # Trailers announced by http.response.start and not yet all sent.
        self.trailers = False

    def _wake(self, message):
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():
                waiter.set_result(message)
            return True
        return False

    def on_body(self, body, more):
        message = {"type": "http.request", "body": body, "more_body": more}
        self.body_done = not more
        if not self._wake(message):
            self.inbox.append(message)
        else:
            self.reply.consumed(len(body))

    def on_disconnect(self):
        self.disconnected = True
        self._wake(_DISCONNECT)
        self._release_writer(ClientDisconnected("client disconnected"))

    async def receive(self):
        if not self.asked:
            self.asked = True
            self.reply.want_body()
        if self.inbox:
            message = self.inbox.popleft()
            self.reply.consumed(len(message["body"]))
            return message
        if self.disconnected or self.finished:
            return _DISCONNECT
        loop = asyncio.get_running_loop()
        self.waiter = waiter = loop.create_future()
        try:
            return await waiter
        finally:
            if self.waiter is waiter:
                self.waiter = None

    async def send(self, message):
        kind = message["type"]
        if self.disconnected or self.reply.closed:
            raise ClientDisconnected("client disconnected")
        # The two messages of nearly every response first, with as little
        # work as the rules below allow (they give the same answers).
        if kind == "http.response.body" and self.started and not self.complete:
            body = message.get("body", b"")
            if type(body) is not bytes:
                body = bytes(body)
            more = message.get("more_body", False)
            if more is not False:
                more = bool(more)
            self.body_sent = True
            if not more:
                self.complete = True
                self.reply.body(body, False)
                if not self.trailers:
                    self._wake(_DISCONNECT)
            elif self.reply.body(body, True) and not self.reply.writable():
                await self._wait_writable()
            return
        if kind == "http.response.start" and not self.started:
            status = message["status"]
            if type(status) is not int:
                raise TypeError("http.response.start 'status' must be an int")
            headers = [(bytes(n), bytes(v)) for n, v in message.get("headers", ())]
            trailers = message.get("trailers", False)
            if trailers is not False:
                trailers = bool(trailers)
                if trailers and "http.response.trailers" not in self.extensions:
                    raise RuntimeError(
                        "ASGI extension 'http.response.trailers' is not offered here.")
            self.started = True
            self.trailers = trailers
            self.status = status
            self.reply.start(status, headers, trailers)
            return
        if kind in _INTERIM and not self.body_sent and not self.complete:
            if _INTERIM[kind] not in self.extensions:
                raise RuntimeError("ASGI extension '%s' is not offered here." % _INTERIM[kind])
            status, headers = _interim(kind, message)
            self.reply.informational(status, headers)
            return
        if not self.started:
            if kind != "http.response.start":
                raise RuntimeError(
                    "Expected ASGI message 'http.response.start', but got '%s'." % kind
                )
            status = message["status"]
            if type(status) is not int:
                raise TypeError("http.response.start 'status' must be an int")
            headers = [(bytes(n), bytes(v)) for n, v in message.get("headers", ())]
            trailers = bool(message.get("trailers", False))
            if trailers and "http.response.trailers" not in self.extensions:
                raise RuntimeError("ASGI extension 'http.response.trailers' is not offered here.")
            self.started = True
            self.trailers = trailers
            self.status = status
            self.reply.start(status, headers, trailers)
        elif kind == "http.response.pathsend" and not self.body_sent and not self.complete:
            if "http.response.pathsend" not in self.extensions:
                raise RuntimeError("ASGI extension 'http.response.pathsend' is not offered here.")
            path = message["path"]
            if not isinstance(path, str) or not path.startswith("/"):
                raise RuntimeError("http.response.pathsend 'path' must be an absolute path")
            self.body_sent = True
            self.complete = True
            self.reply.pathsend(path)
            self._wake(_DISCONNECT)
        elif not self.complete:
            if kind != "http.response.body":
                raise RuntimeError(
                    "Expected ASGI message 'http.response.body', but got '%s'." % kind
                )
            body = message.get("body", b"")
            if not isinstance(body, bytes):
                body = bytes(body)
            more = bool(message.get("more_body", False))
            self.body_sent = True
            if not more:
                self.complete = True
            if self.reply.body(body, more) and not self.reply.writable():
                await self._wait_writable()
            if not more and not self.trailers:
                self._wake(_DISCONNECT)
        elif self.trailers and kind == "http.response.trailers":
            headers = [(bytes(n), bytes(v)) for n, v in message.get("headers", ())]
            more = bool(message.get("more_trailers", False))
            self.trailers = more
            self.reply.trailers(headers, more)
            if not more:
                self._wake(_DISCONNECT)
        else:
            raise RuntimeError(
                "Unexpected ASGI message '%s' sent, after response already completed." % kind
            )

    @property
    def finished(self):
        """The response, trailers included, is complete."""
        return self.complete and not self.trailers


# The interim-response messages and the extension that offers each.
_INTERIM = {
    "http.response.informational": "http.response.informational",
    "http.response.early_hint": "http.response.early_hint",
}


def _interim(kind, message):
    """(status, headers) of an interim response message."""
    if kind == "http.response.early_hint":
        return 103, [(b"link", bytes(link)) for link in message.get("links", ())]
    status = message["status"]
    if type(status) is not int or not 100 <= status < 200 or status == 101:
        raise RuntimeError("http.response.informational 'status' must be 1xx (not 101)")
    return status, [(bytes(n), bytes(v)) for n, v in message.get("headers", ())]


class WsCycle(_WriteCredit):
    """One WebSocket: the handshake decided by the app, then messages."""

    __slots__ = ("reply", "inbox", "waiter", "state", "writer", "task", "closed")

    # The app's return always gets handled (Server.run closes an open socket).
    finished = False

    # state: "connecting" (before accept), "denying" (denial response
    # started), "open", "closed" (either side closed)
    def __init__(self, reply):
        self.reply = reply
        self.inbox = collections.deque([{"type": "websocket.connect"}])
        self.waiter = None
        self.state = "connecting"
        self.writer = None
        self.task = None
        self.closed = None

    @property
    def started(self):
        return self.state != "connecting"

    @property
    def disconnected(self):
        return self.closed is not None

    def _deliver(self, message):
        """Hands `message` to a waiting receive() (True) or queues it."""
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            self.waiter = None
            waiter.set_result(message)
            return True
        self.inbox.append(message)
        return False

    def on_message(self, text, data):
        message = {"type": "websocket.receive"}
        if text is not None:
            message["text"] = text
        else:
            message["bytes"] = data
        if self._deliver(message):
            # The I/O thread reads on only while the app keeps up (its
            # inbox of 32 messages).
            self.reply.consumed(1)

    def on_closed(self, code, reason):
        self.state = "closed"
        self.closed = {"type": "websocket.disconnect", "code": code, "reason": reason}
        self._deliver(self.closed)
        self._release_writer(ClientDisconnected("websocket closed"))

    async def receive(self):
        if self.inbox:
            message = self.inbox.popleft()
            if message["type"] == "websocket.receive":
                self.reply.consumed(1)
            return message
        if self.closed is not None:
            return self.closed
        self.waiter = waiter = asyncio.get_running_loop().create_future()
        try:
            return await waiter
        finally:
            if self.waiter is waiter:
                self.waiter = None

    async def send(self, message):
        kind = message["type"]
        if self.state == "closed" or self.reply.closed:
            raise ClientDisconnected("websocket closed")
        if self.state == "connecting":
            if kind == "websocket.accept":
                headers = [(bytes(n), bytes(v)) for n, v in message.get("headers", ())]
                self.state = "open"
                self.reply.ws_accept(message.get("subprotocol"), headers)
            elif kind == "websocket.close":
                self.state = "closed"
                self.reply.ws_close(int(message.get("code", 1000)), message.get("reason") or "")
            elif kind == "websocket.http.response.start":
                headers = [(bytes(n), bytes(v)) for n, v in message.get("headers", ())]
                self.state = "denying"
                self.reply.start(int(message["status"]), headers)
            else:
                raise RuntimeError(
                    "Expected ASGI message 'websocket.accept', 'websocket.close' or "
                    "'websocket.http.response.start', but got '%s'." % kind)
        elif self.state == "denying":
            if kind != "websocket.http.response.body":
                raise RuntimeError(
                    "Expected ASGI message 'websocket.http.response.body', but got '%s'." % kind)
            more = bool(message.get("more_body", False))
            if not more:
                self.state = "closed"
            self.reply.body(bytes(message.get("body", b"")), more)
        else:
            if kind == "websocket.send":
                text, data = message.get("text"), message.get("bytes")
                if (text is None) == (data is None):
                    raise ValueError("websocket.send needs exactly one of 'text' and 'bytes'")
                if data is not None:
                    data = bytes(data)
                if self.reply.ws_send(text, data) and not self.reply.writable():
                    await self._wait_writable()
            elif kind == "websocket.close":
                self.state = "closed"
                self.reply.ws_close(int(message.get("code", 1000)), message.get("reason") or "")
            else:
                raise RuntimeError(
                    "Expected ASGI message 'websocket.send' or 'websocket.close', "
                    "but got '%s'." % kind)


class Server:
    """Dispatches the I/O thread's events to per-request cycles."""

    def __init__(self, app, inbox, log, grace, state, hooks, loop=None):
        self.app = app
        self.inbox = inbox
        self.log = log
        self.grace = grace
        self.state = state
        # pre_request/post_request (hooks.py's AsgiHooks), or None.
        self.hooks = hooks
        self.cycles = {}
        self.stopped = None
        self.create_task = (loop or asyncio.get_running_loop()).create_task

    def wake(self):
        for event in self.inbox.drain():
            kind = event[0]
            if kind == 0:
                self.start(event[1], event[2], event[3])
                continue
            if kind == 4:
                if self.stopped is not None and not self.stopped.done():
                    self.stopped.set_result(None)
                continue
            cycle = self.cycles.get(event[1])
            if cycle is None:
                continue
            if kind == 1:
                cycle.on_body(event[2], event[3])
            elif kind == 2:
                cycle.on_disconnect()
                task = cycle.task
                if task is not None and not task.done():
                    asyncio.get_running_loop().call_later(self.grace, task.cancel)
            elif kind == 3:
                cycle.on_writable()
            elif kind == 5:
                cycle.on_message(event[2], event[3])
            elif kind == 6:
                cycle.on_closed(event[2], event[3])
                task = cycle.task
                if task is not None and not task.done():
                    asyncio.get_running_loop().call_later(self.grace, task.cancel)

    def start(self, rid, scope, reply):
        if self.state is not None:
            scope["state"] = self.state.copy()
        if scope["type"] == "websocket":
            cycle = WsCycle(reply)
        else:
            cycle = Cycle(reply, scope["extensions"])
        self.cycles[rid] = cycle
        cycle.task = self.create_task(self.run(rid, cycle, scope))

    async def run(self, rid, cycle, scope):
        hooked = None
        if self.hooks is not None and scope["type"] == "http":
            hooked = self.hooks.before(scope, self.log)
        try:
            result = await self.app(scope, cycle.receive, cycle.send)
        except ClientDisconnected:
            cycle.reply.abort()
        except asyncio.CancelledError:
            cycle.reply.abort()
        except BaseException as error:
            if isinstance(error, OSError) and (cycle.disconnected or cycle.reply.closed):
                cycle.reply.abort()
            else:
                self.log(40, "Exception in ASGI application\n" + traceback.format_exc().rstrip())
                if cycle.started:
                    cycle.reply.abort()
                else:
                    cycle.reply.error()
        else:
            if result is None and cycle.finished:
                return
            if result is not None:
                self.log(40, "ASGI callable should return None, but returned '%r'." % (result,))
            if isinstance(cycle, WsCycle):
                if cycle.state == "connecting":
                    # Returned without accepting: refused (403), as gunicorn.
                    cycle.reply.ws_close(1000, "")
                elif cycle.state == "open":
                    cycle.reply.ws_close(1000, "")
                return
            if not cycle.started:
                if not cycle.disconnected:
                    self.log(40, "ASGI callable returned without starting response.")
                cycle.reply.error()
            elif not cycle.finished:
                if not cycle.disconnected:
                    self.log(40, "ASGI callable returned without completing response.")
                cycle.reply.abort()
        finally:
            self.cycles.pop(rid, None)
            if hooked is not None:
                # A response the app never started went out as a 500.
                self.hooks.after(hooked, cycle.status or 500, self.log)


class Lifespan:
    """The lifespan scope: startup before serving, shutdown after."""

    def __init__(self, app, mode, log):
        self.app = app
        self.mode = mode
        self.log = log
        self.state = {}
        self.queue = asyncio.Queue()
        self.answer = None
        self.task = None
        self.supported = mode != "off"
        self.failed = None

    async def receive(self):
        return await self.queue.get()

    async def send(self, message):
        kind = message["type"]
        if kind in ("lifespan.startup.complete", "lifespan.shutdown.complete"):
            self._answer(None)
        elif kind in ("lifespan.startup.failed", "lifespan.shutdown.failed"):
            self._answer(message.get("message", "") or "(no message)")
        else:
            raise RuntimeError("Unexpected ASGI lifespan message '%s'." % kind)

    def _answer(self, failure):
        if self.answer is not None and not self.answer.done():
            self.answer.set_result(("answer", failure))

    async def main(self):
        scope = {
            "type": "lifespan",
            "asgi": {"version": "3.0", "spec_version": "2.0"},
            "state": self.state,
        }
        try:
            await self.app(scope, self.receive, self.send)
        except BaseException as error:
            if self.answer is not None and not self.answer.done():
                self.answer.set_result(("raised", error))
            elif not isinstance(error, asyncio.CancelledError):
                self.log(40, "Exception in 'lifespan' protocol\n" + traceback.format_exc().rstrip())
        finally:
            if self.answer is not None and not self.answer.done():
                self.answer.set_result(("returned", None))

    async def startup(self, timeout):
        """None when serving may begin, else the boot failure's message."""
        if not self.supported:
            return None
        loop = asyncio.get_running_loop()
        self.answer = loop.create_future()
        self.task = loop.create_task(self.main())
        await self.queue.put({"type": "lifespan.startup"})
        try:
            how, what = await asyncio.wait_for(asyncio.shield(self.answer), timeout)
        except asyncio.TimeoutError:
            self.task.cancel()
            return "ASGI lifespan startup did not complete within %s seconds" % timeout
        if how == "answer":
            if what is not None:
                return "Application startup failed: %s" % what
            self.log(20, "Application startup complete.")
            return None
        if self.mode == "on":
            detail = ""
            if how == "raised":
                detail = "\n" + "".join(traceback.format_exception(what)).rstrip()
            return "ASGI lifespan startup failed (--asgi-lifespan on)" + detail
        self.log(20, "ASGI 'lifespan' protocol appears unsupported.")
        self.supported = False
        return None

    async def shutdown(self, timeout):
        if not self.supported or self.task is None or self.task.done():
            return
        self.answer = asyncio.get_running_loop().create_future()
        await self.queue.put({"type": "lifespan.shutdown"})
        try:
            how, what = await asyncio.wait_for(asyncio.shield(self.answer), timeout)
        except asyncio.TimeoutError:
            self.log(30, "ASGI lifespan shutdown did not complete within %s seconds" % timeout)
            self.task.cancel()
            return
        if how == "answer" and what is not None:
            self.log(40, "Application shutdown failed: %s" % what)
        elif how == "answer":
            self.log(20, "Application shutdown complete.")


class Runner:
    """The worker's loop, driven in three steps by Rust."""

    def __init__(self, app, inbox, log, loop_kind, lifespan, grace, hooks):
        self.loop = new_loop(loop_kind)
        asyncio.set_event_loop(self.loop)
        self.app = single_callable(app)
        self.inbox = inbox
        self.log = log
        self.lifespan = Lifespan(self.app, lifespan, log)
        self.grace = grace
        self.hooks = hooks
        self.server = None

    def startup(self, timeout):
        return self.loop.run_until_complete(self.lifespan.startup(timeout))

    def serve(self):
        state = self.lifespan.state if self.lifespan.supported else None
        self.server = Server(self.app, self.inbox, self.log, self.grace, state, self.hooks,
                             self.loop)
        self.server.stopped = self.loop.create_future()
        self.loop.add_reader(self.inbox.fileno(), self.server.wake)
        # The app's messages go to the I/O thread once per turn of the loop.
        self.inbox.bind_loop(self.loop.call_soon)
        try:
            self.loop.run_until_complete(self.server.stopped)
            pending = [c.task for c in self.server.cycles.values() if c.task is not None]
            for task in pending:
                task.cancel()
            if pending:
                self.loop.run_until_complete(asyncio.wait(pending, timeout=self.grace or None))
        finally:
            self.inbox.bind_loop(None)
            self.loop.remove_reader(self.inbox.fileno())

    def shutdown(self, timeout):
        try:
            self.loop.run_until_complete(self.lifespan.shutdown(timeout))
        finally:
            self.loop.close()
