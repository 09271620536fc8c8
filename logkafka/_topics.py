"""Topic metadata: wait until a topic's partitions are visible (tests' brokers, ``logkafka check``)."""

from __future__ import annotations

import time
from typing import Any


def wait_for_partitions(client: Any, topic: str, deadline: float, pause: float = 0.1) -> list[int]:
    """The partitions of ``topic`` once a client's metadata (an admin client, producer or consumer) shows
    them, or ``[]`` at ``deadline`` (``time.monotonic()``); a client error meanwhile is asked again."""
    from confluent_kafka import KafkaException

    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return []
        try:
            t = client.list_topics(topic, timeout=max(0.1, min(5.0, left))).topics.get(topic)
        except KafkaException:
            t = None
        if t is not None and t.error is None and t.partitions:
            return sorted(t.partitions)
        time.sleep(pause)
