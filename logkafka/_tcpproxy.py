"""A TCP proxy in its own process, for network faults in tests (``cut``, ``restore``): see ``TcpProxy``."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import tempfile
import threading
import time
from typing import IO, Any

from logkafka import _proxy


class TcpProxy:
    """A loopback TCP proxy for network faults: 127.0.0.1:``port`` forwards to 127.0.0.1:``target_port``.

    The forwarding runs in a child process of its own (a selector, 64 KiB
    buffers, ``TCP_NODELAY`` on both sides), so it never competes for the GIL
    with the code under test; this process talks to it over a pipe, one line per
    command and one per answer, and a daemon thread ``logkafka-proxy-PORT``
    reads the answers. :meth:`cut` resets every open connection on both sides
    and refuses new ones; :meth:`restore` forwards again on the same port.
    ``port=None`` takes a free port at :meth:`start`.

    If the child process dies, the next call raises :class:`RuntimeError`.
    """

    def __init__(self, target_port: int, port: int | None = None) -> None:
        self.target_port = target_port
        self._port = port or 0
        self._lock = threading.Lock()  # one command at a time
        self._running = False  # between start() and stop()
        self._process: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None
        self._reader: threading.Thread | None = None
        self._replies: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._next_id = 0
        self._failure: str | None = None  # why the child process died, once it did
        self._failure_raised = False  # a call raised it already: stop() does not again
        self._is_cut = False
        self._accepted = 0
        self._connections = 0

    @property
    def port(self) -> int:
        """The port clients connect to (known once started when constructed with ``port=None``)."""
        if not self._port:
            raise RuntimeError("TcpProxy(port=None) has no port before start()")
        return self._port

    @property
    def address(self) -> str:
        """``127.0.0.1:port``, for clients."""
        return f"127.0.0.1:{self.port}"

    @property
    def connections(self) -> int:
        """How many client connections are open (forwarded or still connecting to the target) right now."""
        if self._running:
            self._request("stats")
        return self._connections

    @property
    def accepted(self) -> int:
        """How many client connections were accepted since :meth:`start` (reconnects included)."""
        if self._running:
            self._request("stats")
        return self._accepted

    @property
    def is_cut(self) -> bool:
        """True between :meth:`cut` and :meth:`restore`."""
        return self._is_cut

    def start(self, timeout: float = 10.0) -> TcpProxy:
        """Start the forwarding process and wait until it listens; returns the proxy."""
        with self._lock:
            if self._running:
                raise RuntimeError("TcpProxy already started")
            self._failure = None
            self._failure_raised = False
            self._is_cut = False
            self._accepted = self._connections = 0
            self._next_id = 0
            replies: queue.Queue[dict[str, Any] | None] = queue.Queue()
            self._replies = replies
            stderr = tempfile.TemporaryFile()
            try:
                process = subprocess.Popen(
                    [sys.executable, "-I", _proxy.__file__, str(self.target_port), str(self._port)],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr,
                )
            except BaseException:
                stderr.close()
                raise
            assert process.stdout is not None
            reader = threading.Thread(target=self._read_replies, args=(process.stdout, replies),
                                      name=f"logkafka-proxy-{self._port or '?'}", daemon=True)
            self._process, self._stderr, self._reader = process, stderr, reader
            self._running = True
            reader.start()
            try:
                ready = self._wait_reply(0, timeout, "start")
                if not ready.get("ok"):
                    raise RuntimeError(f"TcpProxy could not start: {ready.get('error')}")
            except BaseException:
                self._kill()
                self._release()
                self._running = False
                raise
            self._port = int(ready["port"])
            reader.name = f"logkafka-proxy-{self._port}"
        return self

    def cut(self) -> None:
        """Reset every open connection, both sides, and refuse new connections until :meth:`restore`.

        Returns once done: clients see a reset at once, new connects are refused.
        """
        self._request("cut")

    def restore(self) -> None:
        """Accept and forward connections again, on the same port."""
        self._request("restore")

    def stop(self, timeout: float = 1.0) -> None:
        """Reset every connection, close the listening socket and end the child process.

        Waits at most ``timeout`` for it to end by itself, then kills it. Idempotent.
        Raises :class:`RuntimeError` if the child process had died or did not stop cleanly.
        """
        with self._lock:
            if not self._running:
                return
            failure = None if self._failure_raised else self._failure
            try:
                if self._failure is None:
                    try:
                        self._send("stop", timeout)
                    except (RuntimeError, TimeoutError) as exc:
                        failure = self._failure or f"TcpProxy did not stop cleanly: {exc}"
                process = self._process
                if process is not None:
                    try:
                        process.wait(timeout)
                    except subprocess.TimeoutExpired:
                        failure = failure or f"TcpProxy process did not exit within {timeout}s"
                        self._kill()
            finally:
                self._release()
                self._running = False
                self._is_cut = False
                self._connections = 0
                self._failure = None
                self._failure_raised = False
        if failure is not None:
            raise RuntimeError(failure)

    def __enter__(self) -> TcpProxy:
        return self.start() if not self._running else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = ("failed" if self._failure else "cut" if self._is_cut else "running") if self._running else "stopped"
        return f"<TcpProxy :{self._port or '?'} -> :{self.target_port} {state}, {self._connections} connections>"

    # -- talking to the child process

    @staticmethod
    def _read_replies(stdout: IO[bytes], replies: queue.Queue[dict[str, Any] | None]) -> None:
        """The reader thread: every answer line of the child, then None at its end of output."""
        try:
            for line in stdout:
                try:
                    reply = json.loads(line)
                except ValueError:
                    reply = {"id": -1, "ok": False, "error": f"unreadable answer {line!r}"}
                replies.put(reply if isinstance(reply, dict) else {"id": -1, "ok": False, "error": repr(reply)})
        except (OSError, ValueError):
            pass
        finally:
            replies.put(None)

    def _request(self, command: str, timeout: float = 5.0) -> dict[str, Any]:
        with self._lock:
            return self._send(command, timeout)

    def _send(self, command: str, timeout: float) -> dict[str, Any]:
        """Send ``command`` and wait for its answer (the caller holds the lock)."""
        if not self._running:
            raise RuntimeError("TcpProxy is not running")
        if self._failure is not None:
            self._failure_raised = True
            raise RuntimeError(self._failure)
        process = self._process
        assert process is not None and process.stdin is not None
        self._next_id += 1
        ident = self._next_id
        try:
            process.stdin.write(f"{ident} {command}\n".encode())
            process.stdin.flush()
        except OSError:  # a broken pipe: the child is gone
            self._failure_raised = True
            raise RuntimeError(self._died()) from None
        reply = self._wait_reply(ident, timeout, command)
        if not reply.get("ok"):
            raise RuntimeError(f"TcpProxy {command} failed: {reply.get('error')}")
        self._connections = int(reply["connections"])
        self._accepted = int(reply["accepted"])
        self._is_cut = bool(reply["cut"])
        return reply

    def _wait_reply(self, ident: int, timeout: float, command: str) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                reply = self._replies.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise TimeoutError(f"TcpProxy did not answer {command!r} within {timeout}s") from None
            if reply is None:
                self._failure_raised = True
                raise RuntimeError(self._died())
            if reply.get("id") == ident:
                return reply
            # an answer to an earlier command that timed out: skip it

    def _died(self) -> str:
        """Record that the child process ended unexpectedly, release its resources; the reason."""
        if self._failure is None:
            process = self._process
            code: int | None = None
            if process is not None:
                try:
                    code = process.wait(2.0)
                except subprocess.TimeoutExpired:
                    self._kill()
                    code = process.returncode
            detail = ""
            if self._stderr is not None:
                try:
                    self._stderr.seek(0)
                    detail = self._stderr.read()[-2000:].decode("utf-8", "replace").strip()
                except OSError:
                    pass
            self._failure = f"TcpProxy forwarding process exited unexpectedly (exit code {code})" + (
                f": {detail}" if detail else "")
            self._release()
            self._connections = 0
        return self._failure

    def _kill(self) -> None:
        process = self._process
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()

    def _release(self) -> None:
        """Close the pipes and the stderr file and join the reader thread (the child has ended)."""
        process, self._process = self._process, None
        if process is not None:
            if process.stdin is not None:
                try:
                    process.stdin.close()
                except OSError:
                    pass
            if process.poll() is None:
                process.kill()
            process.wait()
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.join(2.0)
        if process is not None and process.stdout is not None:
            process.stdout.close()
        stderr, self._stderr = self._stderr, None
        if stderr is not None:
            stderr.close()
