"""The probe of ``logkafka check``: a record sent through a configured KafkaLogHandler and read back.

The probe goes to a topic of its own, ``<application topic>.check`` (created if
missing), never to the application's topic unless ``--probe-topic`` names it.
"""

from __future__ import annotations

import argparse
import logging
import time
import uuid
from collections.abc import Mapping
from typing import IO, Any

from confluent_kafka import OFFSET_BEGINNING, TopicPartition

from logkafka._cli.common import EXIT_USAGE, CliError
from logkafka._cli.connection import check_reachable, list_topics, new_admin, new_consumer
from logkafka._cli.dictconfig import Found
from logkafka._cli.lint_tree import Finding
from logkafka._handler import aim_at
from logkafka._topics import Status, TopicSpec, create_topics, offsets_for_time, wait_for_partitions, wait_for_topics

#: Logger name of the probe record: not ``logkafka...``, whose records a handler drops.
PROBE_LOGGER = "lkcheck"
PROBE_CODE = "LOGKAFKA_CHECK"
#: The probe's own topic is the application topic's name with this suffix.
PROBE_SUFFIX = ".check"
#: Retention of a probe topic the check creates: one day.
PROBE_RETENTION_MS = 86_400_000
#: Client settings a consumer needs to reach the same cluster as a handler's producer.
_SECURITY_PREFIXES = ("security.protocol", "ssl.", "ssl_", "sasl.", "enable.ssl", "enable.sasl", "oauthbearer",
                      "oauth_cb", "broker.address", "client.dns", "socket.", "api.version", "broker.version",
                      "client.rack", "resolve_cb", "bootstrap.servers")


def probe(entry: Found, consumer_extra: Mapping[str, Any], args: argparse.Namespace, out: IO[str],
          findings: list[Finding]) -> None:
    """Send a probe through the handler to the probe topic and read it back; raise :class:`CliError` on failure.

    A missing application topic is added to ``findings``: the probe does not go there.
    """
    handler = entry.handler
    st = handler.settings
    check_reachable(st.producer_config, timeout=min(args.timeout, 15.0))
    print("  connect:           OK", file=out)
    admin = new_admin(st.producer_config, "the handler's producer_config")
    if st.topic not in _topics_of(admin, st.bootstrap_servers, args.timeout) and st.topic != args.probe_topic:
        findings.append(_missing_topic(entry))
    topic = args.probe_topic or f"{st.topic}{PROBE_SUFFIX}"
    if args.probe_topic:
        status = _named_probe_topic(admin, topic, st.bootstrap_servers, args.timeout)
    else:
        status = _own_probe_topic(admin, topic, st.bootstrap_servers, args.timeout)
    print(f"  probe topic:       {topic} ({status})", file=out)
    out.flush()
    aim_at(handler, topic)
    _send_and_read_back(entry, topic, _consumer_config(st.producer_config, consumer_extra), args.timeout, out)


def _missing_topic(entry: Found) -> Finding:
    """The warning for a handler whose application topic does not exist."""
    st = entry.handler.settings
    return Finding(
        "missing-topic", entry.name,
        f"handler {entry.name!r}: its application topic {st.topic!r} does not exist on {st.bootstrap_servers}: "
        "its records are delivered only if the cluster creates topics on first use "
        "(auto.create.topics.enable), and otherwise wait in the spool",
        f"create it: logkafka topics ensure --topic {st.topic} (with the cluster's connection options)",
    )


def _send_and_read_back(entry: Found, topic: str, consumer_config: Mapping[str, Any], timeout: float,
                        out: IO[str]) -> None:
    """Emit the probe record through the handler, wait for its acknowledgement, and find it in ``topic``."""
    handler = entry.handler
    consumer = new_consumer(consumer_config)
    probe_id = f"lkcheck-{uuid.uuid4().hex[:16]}"
    lg = logging.getLogger(PROBE_LOGGER)
    record = lg.makeRecord(PROBE_LOGGER, logging.INFO, __file__, 0, "logkafka check probe %s", (probe_id,), None,
                           extra={"code": PROBE_CODE, "probe_id": probe_id})
    since_ms = int(record.created * 1000) - 60_000  # clocks of client and broker may differ a little
    started = time.monotonic()
    handler.emit(record)  # past the handler's level and filters: this checks the delivery path
    try:
        _await_probe(entry, timeout)
    except BaseException:
        consumer.close()
        raise
    remaining = max(1.0, timeout - (time.monotonic() - started))
    if not read_back(consumer, topic, probe_id.encode(), since_ms, remaining):
        raise CliError(f"handler {entry.name!r}: the probe {probe_id} was acknowledged but not read back "
                       f"from {topic} within {timeout:g} s")
    elapsed = time.monotonic() - started
    print(f"  probe:             OK: {probe_id} sent to {topic} and read back in {elapsed * 1000:.0f} ms",
          file=out)


def _consumer_config(producer_config: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """A consumer for the handler's cluster: its connection and security settings, then ``extra``."""
    config = {k: v for k, v in producer_config.items() if k.startswith(_SECURITY_PREFIXES)}
    config.update({
        "group.id": f"logkafka-check-{uuid.uuid4().hex}",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "log_level": 0,
    })
    config.update(extra)
    config["bootstrap.servers"] = producer_config["bootstrap.servers"]
    return config


def read_back(consumer: Any, topic: str, needle: bytes, since_ms: int, timeout: float) -> bool:
    """Whether a message containing ``needle`` shows up in ``topic`` within ``timeout`` seconds; closes ``consumer``.

    Starts each partition at the first offset whose timestamp is at least ``since_ms``
    (a broker that does not index timestamps answers with the beginning: still correct).
    """
    deadline = time.monotonic() + timeout
    try:
        partitions = wait_for_partitions(consumer, topic, deadline, pause=0.2)
        if not partitions:
            return False
        consumer.assign(offsets_for_time(consumer, [TopicPartition(topic, p) for p in partitions], since_ms,
                                         timeout=max(0.1, min(10.0, deadline - time.monotonic())),
                                         unanswered=OFFSET_BEGINNING))
        while time.monotonic() < deadline:
            for m in consumer.consume(1000, min(0.5, max(0.01, deadline - time.monotonic()))):
                if m.error() is None and needle in (m.value() or b""):
                    return True
        return False
    finally:
        consumer.close()


def _topics_of(admin: Any, servers: str, timeout: float) -> set[str]:
    """The topics the cluster has (with partitions)."""
    md = list_topics(admin, servers, min(timeout, 15.0))
    return {name for name, t in md.topics.items() if t.error is None and t.partitions}


def _named_probe_topic(admin: Any, topic: str, servers: str, timeout: float) -> str:
    """How the topic named by ``--probe-topic`` is there: it must exist (the check never creates it)."""
    if topic not in _topics_of(admin, servers, timeout):
        raise CliError(f"--probe-topic: no topic {topic!r} on {servers} (the check creates only its own "
                       f"<application topic>{PROBE_SUFFIX}; create this one first, e.g. with logkafka topics "
                       "ensure)", EXIT_USAGE)
    return "exists, from --probe-topic"


def _own_probe_topic(admin: Any, topic: str, servers: str, timeout: float) -> str:
    """How the check's own probe topic came to be there: ``"exists"``, or ``"created ..."`` by the check."""
    if topic in _topics_of(admin, servers, timeout):
        return "exists"
    spec = TopicSpec(topic, 1, {"retention.ms": str(PROBE_RETENTION_MS)})
    outcome = create_topics(admin, [spec], timeout=timeout)[topic]
    if outcome.status is Status.UNANSWERED:
        raise CliError(f"creating the probe topic {topic!r}: no answer from {servers} within "
                       f"{timeout + 5:g} s", EXIT_USAGE)
    if outcome.status is Status.EXISTS:
        return "exists"  # made meanwhile, by another check
    if outcome.status is Status.REFUSED:
        raise CliError(f"cannot create the probe topic {topic!r} on {servers}: {outcome.text} (create it with one "
                       "partition, or pass --probe-topic TOPIC naming a topic this client may write to)",
                       EXIT_USAGE)
    if not wait_for_topics(admin, [topic], time.monotonic() + timeout):
        raise CliError(f"the probe topic {topic!r} was created but is not visible after {timeout:g} s",
                       EXIT_USAGE)
    return "created by the check: 1 partition, kept 1 day"


def _await_probe(entry: Found, timeout: float) -> None:
    """Wait until the handler has the probe acknowledged; raise :class:`CliError` when it does not."""
    handler = entry.handler
    st = handler.settings
    if not handler.flush(timeout):
        stats = handler.stats()
        why = stats.get("last_error") or ("spooled to disk" if stats.get("spooling") else "no acknowledgement")
        raise CliError(f"handler {entry.name!r}: the probe was not acknowledged by {st.bootstrap_servers} "
                       f"within {timeout:g} s ({why})")
    stats = handler.stats()
    if stats.get("spooling") and not stats.get("delivered"):
        raise CliError(f"handler {entry.name!r}: the probe went to the disk spool, not to Kafka "
                       f"({stats.get('last_error') or 'broker unreachable'})")
