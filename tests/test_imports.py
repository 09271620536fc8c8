"""What importing logkafka loads: only what is used (benchmarks/bench_import.py has the milliseconds)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import logkafka

HEAVY = ("confluent_kafka", "importlib.metadata", "asyncio", "logkafka._web", "logkafka._prometheus",
         "logkafka._timed", "logkafka._celery", "logkafka._levels", "logkafka._worker")


def loaded_after(statement: str) -> set[str]:
    """The modules among HEAVY that a fresh interpreter has loaded after running ``statement``."""
    code = f"import sys, json\n{statement}\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    return set(json.loads(out.splitlines()[-1]))


def test_import_logkafka_loads_none_of_them() -> None:
    assert loaded_after("import logkafka") == set()


def test_the_handler_and_formatter_do_not_load_the_kafka_client_the_middleware_or_prometheus() -> None:
    # what a dictConfig naming logkafka.KafkaLogHandler imports, before the handler is made
    assert loaded_after("from logkafka import KafkaLogHandler, JsonFormatter") == set()


def test_making_a_handler_loads_the_kafka_client() -> None:
    loaded = loaded_after("import logkafka\nlogkafka.KafkaLogHandler('localhost:9092', 'logs', enabled=False)")
    assert "confluent_kafka" in loaded and "logkafka._worker" in loaded
    assert not loaded & {"logkafka._web", "logkafka._prometheus", "logkafka._timed", "importlib.metadata"}


@pytest.mark.parametrize("name", logkafka.__all__)
def test_every_public_name_resolves_and_is_listed(name: str) -> None:
    assert getattr(logkafka, name) is not None
    assert name in dir(logkafka)


def test_version_is_the_installed_one() -> None:
    from importlib.metadata import version

    assert logkafka.__version__ == version("logkafka")


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'KafkaHandler'"):
        logkafka.KafkaHandler  # noqa: B018
