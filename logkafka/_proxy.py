"""The forwarding process of :class:`logkafka.testing.TcpProxy`.

Run as a script (``python -I _proxy.py TARGET_PORT PORT``), it listens on
127.0.0.1:``PORT`` (0: a free port) and forwards every connection to
127.0.0.1:``TARGET_PORT``, in one selector loop of its own process, so that
forwarding never competes for the GIL with the application under test.

It is driven over its standard streams, one line each way. First it writes
``{"id": 0, "ok": true, "port": P}`` (or ``"ok": false`` and an ``"error"``).
Then it reads commands ``ID WORD`` -- ``stats``, ``cut``, ``restore``, ``stop``
-- and answers each, once done, with a JSON line carrying the same ``id``,
``ok``, ``connections``, ``accepted`` and ``cut`` (or ``error``). ``stop``, or
the end of its standard input (the parent is gone), resets every connection
and ends the process.

Standard library only: the parent starts it with ``-I`` and without importing
the ``logkafka`` package.
"""

from __future__ import annotations

import errno
import json
import os
import selectors
import signal
import socket
import struct
import sys
import time
from typing import Any

_BUFFER = 64 * 1024
_LINGER_RESET = struct.pack("ii", 1, 0)
_STDIN = 0
_STDOUT = 1


def _reset(sock: socket.socket) -> None:
    """Close ``sock`` with a reset (RST) rather than an orderly FIN."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
    except OSError:
        pass
    sock.close()


def _stream_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    return sock


def listen(port: int, retry: float = 2.0) -> socket.socket:
    """A non-blocking socket listening on 127.0.0.1:``port``, retrying ``EADDRINUSE`` for ``retry`` seconds."""
    deadline = time.monotonic() + retry
    while True:
        sock = _stream_socket()
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", port))
            sock.listen(128)
            return sock
        except OSError as exc:
            sock.close()
            if exc.errno != errno.EADDRINUSE or time.monotonic() >= deadline:
                raise
            time.sleep(0.01)


class _Flow:
    """One direction of a forwarded connection: bytes read from ``src`` wait in ``buf`` for ``dst``."""

    __slots__ = ("buf", "dst", "eof", "shut", "src")

    def __init__(self, src: socket.socket, dst: socket.socket) -> None:
        self.src = src
        self.dst = dst
        self.buf = bytearray()
        self.eof = False  # src sent FIN
        self.shut = False  # FIN passed on to dst


class _Link:
    """An accepted client connection and its own connection to the target."""

    __slots__ = ("client", "closed", "connected", "flows", "masks", "upstream")

    def __init__(self, client: socket.socket, upstream: socket.socket) -> None:
        self.client = client
        self.upstream = upstream
        self.connected = False
        self.closed = False
        self.flows = (_Flow(client, upstream), _Flow(upstream, client))
        self.masks = {client: 0, upstream: 0}  # events registered with the selector; 0: not registered


class Forwarder:
    """The selector loop: every forwarded connection, both ways, and the commands on standard input."""

    def __init__(self, listener: socket.socket, target_port: int) -> None:
        self.listener: socket.socket | None = listener
        self.port = int(listener.getsockname()[1])
        self.target_port = target_port
        self.selector = selectors.DefaultSelector()
        self.selector.register(listener, selectors.EVENT_READ, self._on_accept)
        os.set_blocking(_STDIN, False)
        self.selector.register(_STDIN, selectors.EVENT_READ, self._on_stdin)
        self.links: set[_Link] = set()
        self.pending = bytearray()  # a command line read in part
        self.accepted = 0
        self.is_cut = False
        self.stopping = False

    def run(self) -> None:
        try:
            while not self.stopping:
                for key, mask in self.selector.select():
                    if isinstance(key.data, _Link):
                        self._on_link(key.data, key.fileobj, mask)  # type: ignore[arg-type]
                    else:
                        key.data(mask)
        finally:
            self._shutdown()

    def _shutdown(self) -> None:
        self._close_all()
        self.selector.close()

    def _close_all(self) -> None:
        """Reset every connection and stop listening."""
        for link in list(self.links):
            self._close_link(link, reset=True)
        if self.listener is not None:
            self.listener.close()
            self.listener = None

    # -- commands

    def _on_stdin(self, mask: int) -> None:
        try:
            data = os.read(_STDIN, 4096)
        except (BlockingIOError, InterruptedError):
            return
        if not data:  # the parent is gone
            self.stopping = True
            return
        self.pending += data
        while b"\n" in self.pending:
            line, _, rest = self.pending.partition(b"\n")
            self.pending = bytearray(rest)
            self._command(line.decode("ascii", "replace").split())
            if self.stopping:
                return

    def _command(self, words: list[str]) -> None:
        if len(words) != 2 or not words[0].isdigit():
            _send({"id": -1, "ok": False, "error": f"bad command line {' '.join(words)!r}"})
            return
        ident, word = int(words[0]), words[1]
        action = {"stats": None, "cut": self._cut, "restore": self._restore, "stop": self._stop}
        if word not in action:
            _send({"id": ident, "ok": False, "error": f"unknown command {word!r}"})
            return
        try:
            fn = action[word]
            if fn is not None:
                fn()
        except OSError as exc:
            _send({"id": ident, "ok": False, "error": f"{word}: {exc}"})
            return
        _send({"id": ident, "ok": True, "connections": len(self.links), "accepted": self.accepted,
               "cut": self.is_cut})

    def _cut(self) -> None:
        self.is_cut = True
        for link in list(self.links):
            self._close_link(link, reset=True)
        listener = self.listener
        if listener is not None and self.selector.get_map().get(listener) is not None:
            self.selector.unregister(listener)
            try:
                # Linux: the socket stops listening (connects are refused, queued ones reset)
                # but keeps its port, so nothing else can take it before restore().
                listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                listener.close()
                self.listener = None

    def _restore(self) -> None:
        if not self.is_cut:
            return
        if self.listener is not None:
            self.listener.close()
            self.listener = None
        self.listener = listen(self.port)
        self.selector.register(self.listener, selectors.EVENT_READ, self._on_accept)
        self.is_cut = False

    def _stop(self) -> None:
        self._close_all()
        self.stopping = True

    # -- forwarding

    def _on_accept(self, mask: int) -> None:
        listener = self.listener
        if listener is None or self.is_cut:  # an event of the same round as cut
            return
        for _ in range(64):
            try:
                client, _ = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno == errno.ECONNABORTED:  # the client gave up already
                    continue
                return
            self.accepted += 1
            try:
                upstream = _stream_socket()
            except OSError:
                _reset(client)
                continue
            link = _Link(client, upstream)
            self.links.add(link)
            try:
                client.setblocking(False)
                for sock in (client, upstream):
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                err = upstream.connect_ex(("127.0.0.1", self.target_port))
                if err == 0:
                    link.connected = True
                elif err not in (errno.EINPROGRESS, errno.EAGAIN, errno.EWOULDBLOCK):
                    raise OSError(err, os.strerror(err))
                self._update(link)
            except OSError:  # the target is down: the client sees a reset
                self._close_link(link, reset=True)

    def _on_link(self, link: _Link, sock: socket.socket, mask: int) -> None:
        if link.closed:  # closed by an earlier event of the same round
            return
        try:
            if not link.connected:
                err = link.upstream.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    raise OSError(err, os.strerror(err))
                link.connected = True
            else:
                for flow in link.flows:
                    if flow.src is sock and mask & selectors.EVENT_READ:
                        self._read(flow)
                    if flow.dst is sock and mask & selectors.EVENT_WRITE:
                        self._write(flow)
            if all(flow.shut for flow in link.flows):
                self._close_link(link, reset=False)
            else:
                self._update(link)
        except OSError:  # a reset on either side: reset the other one too
            self._close_link(link, reset=True)

    def _read(self, flow: _Flow) -> None:
        try:
            data = flow.src.recv(_BUFFER)
        except (BlockingIOError, InterruptedError):
            return
        if data:
            flow.buf += data
        else:
            flow.eof = True
        self._write(flow)

    @staticmethod
    def _write(flow: _Flow) -> None:
        if flow.buf:
            try:
                sent = flow.dst.send(flow.buf)
            except (BlockingIOError, InterruptedError):
                return
            del flow.buf[:sent]
        if flow.eof and not flow.buf and not flow.shut:
            flow.shut = True
            flow.dst.shutdown(socket.SHUT_WR)  # pass the half-close on

    def _update(self, link: _Link) -> None:
        """Register each socket of ``link`` for the events it waits for now."""
        want = {link.client: 0, link.upstream: 0}
        if not link.connected:
            want[link.upstream] = selectors.EVENT_WRITE
        else:
            for flow in link.flows:
                if not flow.eof and len(flow.buf) < _BUFFER:
                    want[flow.src] |= selectors.EVENT_READ
                if flow.buf:
                    want[flow.dst] |= selectors.EVENT_WRITE
        for sock, events in want.items():
            old = link.masks[sock]
            if events == old:
                continue
            if not old:
                self.selector.register(sock, events, link)
            elif not events:
                self.selector.unregister(sock)
            else:
                self.selector.modify(sock, events, link)
            link.masks[sock] = events

    def _close_link(self, link: _Link, *, reset: bool) -> None:
        if link.closed:
            return
        link.closed = True
        self.links.discard(link)
        for sock in (link.client, link.upstream):
            if link.masks[sock]:
                self.selector.unregister(sock)
                link.masks[sock] = 0
            if reset:
                _reset(sock)
            else:
                sock.close()


def _send(reply: dict[str, Any]) -> None:
    """Write one reply line to standard output (blocking: the parent reads it at once)."""
    data = (json.dumps(reply) + "\n").encode()
    while data:
        data = data[os.write(_STDOUT, data):]


def main(argv: list[str]) -> int:
    # Ctrl-C in a test run reaches the whole process group: the parent decides when this ends.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if len(argv) != 2:
        _send({"id": 0, "ok": False, "error": "usage: _proxy.py TARGET_PORT PORT"})
        return 2
    target_port, port = int(argv[0]), int(argv[1])
    try:
        listener = listen(port)
    except OSError as exc:
        _send({"id": 0, "ok": False, "error": f"cannot listen on 127.0.0.1:{port}: {exc}"})
        return 1
    forwarder = Forwarder(listener, target_port)
    _send({"id": 0, "ok": True, "port": forwarder.port})
    forwarder.run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
