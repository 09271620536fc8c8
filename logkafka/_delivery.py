"""Kafka's errors in our words: which delivery failures no retry can cure, which mean a lost producer
session, and what a client error or a failed delivery means, said plainly."""

from __future__ import annotations

from confluent_kafka import KafkaError

#: Delivery errors that no retry of the same record can cure (too large, malformed, refused by policy
#: or authorization): the handler counts the record failed instead of spooling it for ever, and
#: ``logkafka replay`` keeps it in the spool with the reason.
PERMANENT = frozenset({
    KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.INVALID_MSG, KafkaError.INVALID_MSG_SIZE, KafkaError._INVALID_ARG,
    KafkaError.INVALID_RECORD, KafkaError.RECORD_LIST_TOO_LARGE, KafkaError.INVALID_TIMESTAMP,
    KafkaError.TOPIC_EXCEPTION, KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.CLUSTER_AUTHORIZATION_FAILED,
    KafkaError.INVALID_REQUIRED_ACKS, KafkaError.UNSUPPORTED_FOR_MESSAGE_FORMAT, KafkaError.POLICY_VIOLATION,
})

#: The topic or partition does not exist (yet): a running handler spools and tries again later (the
#: topic may be created); ``logkafka replay`` reports the records as not sendable now.
NO_TOPIC = frozenset({KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC, KafkaError._UNKNOWN_PARTITION})

#: Delivery errors that mean the broker no longer knows this producer's idempotent session (restarted
#: empty, replaced, or confused after timeouts): every later record would fail the same way. The record
#: is spooled and the producer rebuilt (a new session).
STATE_LOST = frozenset({
    KafkaError.UNKNOWN_PRODUCER_ID, KafkaError.OUT_OF_ORDER_SEQUENCE_NUMBER, KafkaError.INVALID_PRODUCER_EPOCH,
    KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_ID_MAPPING, KafkaError._FENCED,
    KafkaError._INCONSISTENT, KafkaError._GAPLESS_GUARANTEE,
})


def keeps_record(exc: Exception) -> bool:
    """Whether produce() refused because the producer itself is finished (fatal): the record is kept
    for the next producer, not failed."""
    error = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
    return error is not None and (error.fatal() or error.code() == KafkaError._FATAL)


def plain_error(err: KafkaError, servers: str, spool: bool = True) -> str | None:
    """A client error in plain words, or None for one not worth a line (a reconnect librdkafka handles)."""
    code = err.code()
    if code == KafkaError._ALL_BROKERS_DOWN:
        where = "memory, then the spool" if spool else "in memory only: no spool"
        return f"cannot reach Kafka at {servers}: no broker answers; records wait ({where})"
    if code == KafkaError._TRANSPORT:
        return None  # one connection dropped; librdkafka reconnects, and all-brokers-down is said above
    if code == KafkaError._RESOLVE:
        return f"cannot resolve the Kafka address {servers}"
    if code in (KafkaError._AUTHENTICATION, KafkaError.SASL_AUTHENTICATION_FAILED):
        return f"Kafka at {servers} refused the credentials: {err.str()}"
    if code == KafkaError._SSL:
        return f"TLS with Kafka at {servers} failed: {err.str()}"
    return f"Kafka client error: {err.str()}"


def plain_delivery_error(err: KafkaError) -> str:
    """Why a record was not delivered, in plain words (librdkafka's own text for the rarer reasons)."""
    code = err.code()
    if code == KafkaError._MSG_TIMED_OUT:
        return "Kafka did not acknowledge it within message.timeout.ms"
    if code in (KafkaError._PURGE_QUEUE, KafkaError._PURGE_INFLIGHT):
        return "the handler stopped waiting for Kafka"
    if code == KafkaError.MSG_SIZE_TOO_LARGE:
        return "the broker refused it as too large (message.max.bytes)"
    if code == KafkaError.TOPIC_AUTHORIZATION_FAILED:
        return "the broker refused it: not authorized for the topic"
    if code == KafkaError._UNKNOWN_TOPIC or code == KafkaError.UNKNOWN_TOPIC_OR_PART:
        return "the topic does not exist (and the broker does not create it)"
    return err.str()
