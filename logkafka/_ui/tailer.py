"""The viewer's reading thread: the log topics from a short backfill on, live, into the store.

It assigns every partition itself (no consumer group, nothing committed, nothing written), starts each
partition ``backfill`` records before its end, and keeps reading. Every few seconds it asks the cluster
for its metadata: that tells whether Kafka answers (the page's banner) and brings in topics and
partitions made since. A cluster that goes away is waited for; reading resumes when it answers.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, Consumer, KafkaError, KafkaException, TopicPartition

from logkafka._ui.entries import entry_of
from logkafka._ui.store import Store

_REFRESH = 3.0  # seconds between metadata requests (the banner's delay, and when new topics are seen)
_METADATA_TIMEOUT = 2.0
_BATCH = 500


class Tailer:
    """Reads ``topics`` into ``store`` on a thread of its own until stopped."""

    def __init__(self, consumer_config: Mapping[str, Any], topic_streams: Mapping[str, str], store: Store,
                 backfill: int = 500) -> None:
        self._config = {**consumer_config, "enable.partition.eof": False, "auto.offset.reset": "earliest",
                        "error_cb": self._on_error}
        self._topics: Sequence[str] = list(topic_streams)
        self._topic_streams = dict(topic_streams)
        self._store = store
        self._backfill = backfill
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._all_down = False
        self._last_error: str | None = None
        self._assigned: set[tuple[str, int]] = set()

    def start(self) -> Tailer:
        """Start reading (once)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="logkafka-ui-reader", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop reading and wait for the thread (up to ``timeout`` s)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _on_error(self, err: KafkaError) -> None:
        self._last_error = err.str()
        if err.code() == KafkaError._ALL_BROKERS_DOWN:
            self._all_down = True
            self._say("unreachable", self._last_error)

    def _say(self, state: str, error: str | None = None) -> None:
        kafka = self._store.kafka
        if kafka.state != state:
            kafka.since = time.time()
        kafka.state, kafka.error = state, error

    def _run(self) -> None:
        consumer = Consumer(self._config)
        try:
            next_look = 0.0
            while not self._stop.is_set():
                if time.monotonic() >= next_look:
                    self._look(consumer)
                    next_look = time.monotonic() + _REFRESH
                if not self._assigned:
                    self._stop.wait(0.2)
                    continue
                self._take(consumer.consume(_BATCH, 0.2))
        finally:
            consumer.close()

    def _look(self, consumer: Consumer) -> None:
        """Ask for the metadata: say whether Kafka answers, and assign partitions not read yet."""
        try:
            metadata = consumer.list_topics(timeout=_METADATA_TIMEOUT)
        except KafkaException as exc:
            error = exc.args[0].str() if exc.args and isinstance(exc.args[0], KafkaError) else str(exc)
            self._say("unreachable", self._last_error or error)
            return
        if not metadata.brokers:
            self._say("unreachable", self._last_error or "no broker in the cluster's metadata")
            return
        self._all_down = False
        if self._store.kafka.state == "unreachable":
            self._rewind_past_end(consumer)
        present = []
        for name in self._topics:
            topic = metadata.topics.get(name)
            if topic is not None and topic.error is None and topic.partitions:
                present.append(name)
                for p in topic.partitions:
                    if (name, p) not in self._assigned:
                        self._assign(consumer, name, p)
        self._store.kafka.topics = tuple(present)
        self._say("ok")

    def _rewind_past_end(self, consumer: Consumer) -> None:
        """Kafka answers again: a partition whose log is now shorter than where we read (a broker that came
        back without its data, a topic made again) is read from its start, or its new records would be missed."""
        for topic, partition in sorted(self._assigned):
            tp = TopicPartition(topic, partition)
            try:
                position = consumer.position([tp])[0].offset
                low, high = consumer.get_watermark_offsets(tp, timeout=_METADATA_TIMEOUT)
            except KafkaException:
                continue
            if position > high >= 0:
                consumer.incremental_unassign([tp])
                consumer.incremental_assign([TopicPartition(topic, partition, max(0, low))])

    def _assign(self, consumer: Consumer, topic: str, partition: int) -> None:
        """Read a new partition from ``backfill`` records before its end."""
        try:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=_METADATA_TIMEOUT)
        except KafkaException:
            return  # asked again at the next look
        start = max(low, high - self._backfill) if high >= 0 else low
        consumer.incremental_assign([TopicPartition(topic, partition, max(0, start))])
        self._assigned.add((topic, partition))

    def _take(self, batch: list[Any]) -> None:
        entries = []
        store = self._store
        for m in batch:
            err = m.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    self._last_error = err.str()
                continue
            kind, stamp = m.timestamp()
            entries.append(entry_of(store.next_seq(), m.topic() or "", m.partition() or 0, m.offset() or 0,
                                    m.value(), None if kind == TIMESTAMP_NOT_AVAILABLE else stamp, m.key(),
                                    m.headers(), self._topic_streams))
        if entries:
            store.add(entries)
            if store.kafka.state != "ok":
                self._say("ok")
