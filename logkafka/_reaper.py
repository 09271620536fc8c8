"""The reaper: a second thread of a worker that serves delivery reports while a backlog waits.

confluent-kafka takes the GIL once per delivered record to serve its report; while the app logs
on a busy thread each take waits for a GIL switch, so serving reports is slow (thousands a
second). Served between batches, they would stall the draining thread for seconds and the queue
would overflow; so once the queue holds a backlog the reaper serves them and the draining thread
never waits (the producer's buffer fills, the rest goes to the spool). Without a backlog the
draining thread serves them itself: a third thread taking the GIL for every report would slow
the caller (measured: 19 -> 44 us per call).
"""

from __future__ import annotations

import threading

from logkafka._report import report
from logkafka._sender import Sender

_REAP_POLL = 0.2  # seconds between the reaper's looks at the queue, and its longest wait in poll()


class Reaper:
    """Starts and stops the reaper thread of one worker's sender."""

    def __init__(self, name: str, sender: Sender, idents: set[int]) -> None:
        self._name = name
        self._sender = sender
        self._idents = idents  # logkafka's threads (records logged on them never re-enter a handler)
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def start(self) -> None:
        """Start the thread unless it runs (none at interpreter shutdown: the draining thread polls)."""
        if self._thread is not None:
            return
        self._stop.clear()
        thread = threading.Thread(target=self._reap, name=self._name, daemon=True)
        try:
            thread.start()
        except RuntimeError:  # interpreter shutdown: the draining thread polls itself
            return
        self._thread = thread
        self._sender.reaping = True

    def stop(self) -> None:
        """Stop the thread and wait for it (from here on the draining thread serves the reports)."""
        thread, self._thread = self._thread, None
        self._sender.reaping = False
        if thread is not None:
            self._stop.set()
            if thread is not threading.current_thread():
                thread.join()

    def _reap(self) -> None:
        """Serve delivery reports and client events until stopped."""
        ident = threading.get_ident()
        self._idents.add(ident)
        stop, sender = self._stop, self._sender
        try:
            while not stop.is_set():
                producer = sender.session.producer
                if producer is None or (len(sender.queue) < sender.backlog and not sender.spill.spooling):
                    stop.wait(_REAP_POLL)  # the draining thread serves the reports
                    continue
                try:
                    producer.poll(_REAP_POLL)
                except Exception as exc:  # a callback of ours failed: keep serving
                    report("worker", f"delivery report error, continuing: {type(exc).__name__}: {exc}")
                    stop.wait(0.1)
        finally:
            self._idents.discard(ident)
