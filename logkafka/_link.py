"""What a worker knows of Kafka: whether a broker answers, the last error, whether the producer must be
replaced. An outage and a silence are each said once, and so is their end."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError

from logkafka._delivery import plain_error
from logkafka._report import report

PROBE_EVERY = 1.0  # seconds between looks at the broker while records wait in the spool
PROBE_TIMEOUT = 0.2  # seconds a look may take (the worker waits; the caller never does)
_BACKOFF_MAX = 30.0  # seconds: the longest wait between two replays that failed
#: Seconds with records held and nothing acknowledged before the silence is said (once, and its end).
_SILENT = 5.0


class Link:
    """The worker's view of the cluster, updated by client errors, probes and acknowledgements."""

    def __init__(self, servers: str, spool: bool) -> None:
        self.servers = servers
        self._spool = spool  # whether a spool keeps what Kafka does not take (said in the outage line)
        self.broker_reachable: bool | None = None
        #: True only while the client says no broker answers (all brokers down): close() then stops waiting.
        self.unreachable = False
        self.last_error: str | None = None
        #: The producer must be replaced (the draining thread rebuilds it): a fatal client error,
        #: or the broker lost its idempotent session.
        self.fatal = False
        self.errors = 0
        self.error_counts: dict[str, int] = {}  # by librdkafka error name
        self._away_since: float | None = None  # when the client said no broker answers (until one does)
        self._silent_since: float | None = None  # when the broker's silence was said
        self._acks_seen = 0  # acknowledgements at the last look
        self._acks_changed = time.monotonic()  # when that count last changed (or nothing waited)
        #: No replay before this time (a replay that failed waits longer: 1 s doubling to 30 s).
        self.next_probe = 0.0
        self._backoff = PROBE_EVERY

    def lose_producer(self, why: str) -> None:
        """The producer cannot go on: the draining thread builds a new one."""
        self.last_error = why
        self.fatal = True

    def client_error(self, err: KafkaError) -> str | None:
        """Count a client error (librdkafka's error callback); the line to say, or None (a reconnect, or
        an outage already said)."""
        self.errors += 1
        name = err.name()
        self.error_counts[name] = self.error_counts.get(name, 0) + 1
        self.last_error = err.str()
        if err.fatal():  # e.g. the idempotent producer lost its sequence state: build a new one
            self.fatal = True
        if err.code() == KafkaError._ALL_BROKERS_DOWN:
            self.broker_reachable = False
            self.unreachable = True
            if self._away_since is not None:
                return None  # one line per outage (and its end, see back())
            self._away_since = time.monotonic()
        return plain_error(err, self.servers, self._spool)

    def probe(self, producer: Any, topic: str, timeout: float = PROBE_TIMEOUT) -> bool:
        """Whether a broker answers a metadata request now."""
        try:
            ok = bool(producer.list_topics(topic, timeout=timeout).brokers)
        except Exception:
            ok = False
        if ok:
            self.broker_reachable = True
            self.unreachable = False
            self.back()
        return ok

    def acknowledged(self) -> None:
        """The broker acknowledged records since the last look: it answers, replays need not wait."""
        self._backoff = PROBE_EVERY
        self.back()
        self.broker_reachable = True
        self.unreachable = False

    def not_delivered(self) -> None:
        """Records go to the spool instead of Kafka: the next replay waits (longer after each failure)."""
        self.broker_reachable = False
        now = time.monotonic()
        if now >= self.next_probe:  # the first failure since the last look: the next waits longer (reset by an ack)
            self.next_probe = now + self._backoff
            self._backoff = min(_BACKOFF_MAX, self._backoff * 2)

    def back(self) -> None:
        """A broker answers again after the client said none did: said once, and the old error forgotten."""
        since, self._away_since = self._away_since, None
        if since is not None:
            self.last_error = None
            report("back", f"Kafka at {self.servers} answers again, after {time.monotonic() - since:.0f}s "
                   "without a broker", interval=0.0)

    def trouble_for(self) -> float | None:
        """Seconds for which no broker answers or none acknowledges what waits; None when all is well."""
        starts = [t for t in (self._away_since, self._silent_since) if t is not None]
        return time.monotonic() - min(starts) if starts else None

    def watch_silence(self, acks: int, in_flight: Callable[[], int], spooled_waiting: Callable[[], int],
                      doing: Callable[[], str]) -> None:
        """Records wait and the broker has acknowledged none for ``_SILENT`` seconds (frozen, partitioned:
        the client sees no error): said once, with what happens to them (``doing``); and said again when it
        answers."""
        now = time.monotonic()
        if acks != self._acks_seen:
            if self._silent_since is not None:
                waiting = spooled_waiting()
                more = f"; {waiting} spooled records are sent now" if waiting else ""
                report("silence_end", f"Kafka at {self.servers} acknowledges records again, after "
                       f"{now - self._silent_since:.0f}s{more}", interval=0.0)
                self._silent_since = None
            self._acks_seen, self._acks_changed = acks, now
            return
        waiting = in_flight()
        if not waiting:
            self._acks_changed = now  # nothing waits for an answer: no silence to measure
            return
        if self._silent_since is None and now - self._acks_changed >= _SILENT:
            self._silent_since = self._acks_changed
            report("silence", f"Kafka at {self.servers} has acknowledged nothing for "
                   f"{now - self._acks_changed:.0f}s (frozen or cut off?): {waiting} records wait; "
                   f"{doing()}", interval=0.0)
