"""Topics: create them, and wait until their partitions are visible.

One way for every creator of topics (the tests' brokers, ``logkafka broker``, ``demo``, ``check`` and
``topics ensure``): an existing topic is not an error, and an older broker that takes no "broker default"
replication factor is asked again with a number.
"""

from __future__ import annotations

import concurrent.futures
import enum
import time
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, NamedTuple

from confluent_kafka import OFFSET_END, KafkaException, TopicPartition

#: The replication factor that asks for the broker's own default (``default.replication.factor``).
BROKER_DEFAULT = -1


class TopicSpec(NamedTuple):
    """A topic to create: its name, partitions and topic settings (``retention.ms``...)."""

    name: str
    partitions: int
    config: Mapping[str, str] = MappingProxyType({})


class Status(enum.Enum):
    """What became of a topic to create."""

    CREATED = "created"
    EXISTS = "exists"  # also when another client created it meanwhile
    REFUSED = "refused"  # the cluster said no: see Creation.error
    UNANSWERED = "unanswered"  # no answer in time


class Creation(NamedTuple):
    """The outcome of creating one topic: its status, and the cluster's refusal (a ``KafkaException``)."""

    status: Status
    error: BaseException | None = None

    @property
    def text(self) -> str:
        """The refusal in the cluster's words (``KafkaError.str()``), else ``""``."""
        err = self.error.args[0] if self.error is not None and self.error.args else self.error
        text = getattr(err, "str", None)
        return str(text()) if callable(text) else str(self.error or "")


def create_topics(admin: Any, specs: Sequence[TopicSpec], *, replication: int = BROKER_DEFAULT,
                  timeout: float = 15.0) -> dict[str, Creation]:
    """Create ``specs`` with ``admin`` (an ``AdminClient``); each topic's :class:`Creation`, by name.

    ``timeout`` bounds the request, and each answer is awaited ``timeout + 5`` seconds. With
    ``replication`` :data:`BROKER_DEFAULT`, a topic an older broker refuses for want of a number is asked
    again once with the cluster's broker count (3 at most).
    """
    outcomes = _create(admin, specs, replication, timeout)
    if replication == BROKER_DEFAULT:
        again = [spec for spec in specs if _wants_a_number(outcomes[spec.name])]
        brokers = _broker_count(admin, timeout) if again else None
        if brokers is not None:
            outcomes.update(_create(admin, again, min(3, max(1, brokers)), timeout))
    return outcomes


def _create(admin: Any, specs: Sequence[TopicSpec], replication: int, timeout: float) -> dict[str, Creation]:
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import NewTopic  # type: ignore[attr-defined]

    if not specs:
        return {}
    new = [NewTopic(spec.name, spec.partitions, replication, config=dict(spec.config)) for spec in specs]
    futures = admin.create_topics(new, operation_timeout=timeout, request_timeout=timeout)
    out: dict[str, Creation] = {}
    for spec in specs:
        # exception(), not result(): a raised exception's traceback would hold this frame, and so the
        # client, in a reference cycle, connected to the broker until a garbage collection.
        try:
            error = futures[spec.name].exception(timeout + 5)
        except concurrent.futures.TimeoutError:
            out[spec.name] = Creation(Status.UNANSWERED)
            continue
        if error is None:
            out[spec.name] = Creation(Status.CREATED)
        elif isinstance(error, KafkaException) and error.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS:
            out[spec.name] = Creation(Status.EXISTS)
        else:
            out[spec.name] = Creation(Status.REFUSED, error)
    return out


def _wants_a_number(outcome: Creation) -> bool:
    """Whether a refusal is an older broker's, which takes no "broker default" replication factor."""
    from confluent_kafka import KafkaError

    code = getattr(outcome.error.args[0], "code", None) if outcome.error is not None and outcome.error.args else None
    return callable(code) and code() in (KafkaError.INVALID_REPLICATION_FACTOR, KafkaError.INVALID_REQUEST,
                                         KafkaError.UNSUPPORTED_VERSION)


def _broker_count(admin: Any, timeout: float) -> int | None:
    """How many brokers the cluster has; None when it does not say."""
    from confluent_kafka import KafkaException

    try:
        return len(admin.list_topics(timeout=timeout).brokers)
    except KafkaException:
        return None


def wait_for_partitions(client: Any, topic: str, deadline: float, pause: float = 0.1) -> list[int]:
    """The partitions of ``topic`` once a client's metadata (an admin client, producer or consumer) shows
    them, or ``[]`` at ``deadline`` (``time.monotonic()``); a client error meanwhile is asked again."""
    return _wait(lambda timeout: client.list_topics(topic, timeout=timeout), [topic], deadline, pause).get(topic, [])


def wait_for_topics(client: Any, topics: Sequence[str], deadline: float, pause: float = 0.2) -> dict[str, list[int]]:
    """The partitions of each of ``topics`` once a client's metadata shows them all, else of those it shows at
    ``deadline``; a client error meanwhile is asked again. Asks for every topic: asking for one by name may
    create it (``auto.create.topics.enable``)."""
    return _wait(lambda timeout: client.list_topics(timeout=timeout), topics, deadline, pause)


def _wait(ask: Callable[[float], Any], topics: Sequence[str], deadline: float, pause: float) -> dict[str, list[int]]:
    """Ask for metadata (``ask(timeout)``) until it shows every one of ``topics``, or at ``deadline``."""
    from confluent_kafka import KafkaException

    seen: dict[str, list[int]] = {}
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return seen  # what the last answer showed
        try:
            listed = ask(max(0.1, min(5.0, left))).topics
        except KafkaException:
            pass  # no answer says nothing: ask again
        else:
            seen = {name: sorted(t.partitions) for name in topics
                    if (t := listed.get(name)) is not None and t.error is None and t.partitions}
        if len(seen) == len(set(topics)):
            return seen
        time.sleep(pause)


def offsets_for_time(consumer: Any, partitions: Sequence[TopicPartition], since_ms: int, *,
                     timeout: float = 10.0, unanswered: int = OFFSET_END) -> list[TopicPartition]:
    """Each partition from its first record stamped at ``since_ms`` or later (the end when there is none).

    A broker whose offset lookups are inexact (tansu answers 0) only makes the reader skip more records
    by their stamp; a lookup that fails starts every partition at ``unanswered`` (by default the end).
    """
    try:
        found = consumer.offsets_for_times(
            [TopicPartition(tp.topic, tp.partition, since_ms) for tp in partitions], timeout=timeout)
    except KafkaException:
        return [TopicPartition(tp.topic, tp.partition, unanswered) for tp in partitions]
    offsets = {(tp.topic, tp.partition): tp.offset for tp in found if tp.error is None}
    out = []
    for tp in partitions:
        offset = offsets.get((tp.topic, tp.partition), -1)
        out.append(TopicPartition(tp.topic, tp.partition, offset if offset >= 0 else OFFSET_END))
    return out
