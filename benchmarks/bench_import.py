"""What importing logkafka costs a process: milliseconds, each in a fresh interpreter.

    python benchmarks/bench_import.py [--runs N]

Three statements, each timed inside a new interpreter (median of N runs, the
runs of the three interleaved): ``import logkafka``; what a ``dictConfig``
naming ``logkafka.KafkaLogHandler`` and ``logkafka.JsonFormatter`` imports; and
that plus making a handler (which loads the Kafka client, to check the
producer settings). ``import logging`` and ``import confluent_kafka`` are
timed the same way, for scale.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys

STATEMENTS = {
    "import logging (for scale)": "import logging",
    "import confluent_kafka (for scale)": "import confluent_kafka",
    "import logkafka": "import logkafka",
    "from logkafka import KafkaLogHandler, JsonFormatter": "from logkafka import KafkaLogHandler, JsonFormatter",
    "  and make a handler": "from logkafka import KafkaLogHandler, JsonFormatter\n"
                            "KafkaLogHandler('localhost:9092', 'logs', service_name='s')",
}

_TIMER = """
import time
t0 = time.perf_counter()
{statement}
print((time.perf_counter() - t0) * 1000)
"""


def once(statement: str) -> float:
    out = subprocess.run([sys.executable, "-c", _TIMER.format(statement=statement)], check=True,
                         capture_output=True, text=True).stdout
    return float(out.split()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    times: dict[str, list[float]] = {label: [] for label in STATEMENTS}
    for statement in STATEMENTS.values():  # warm-up: byte code compiled, files in the page cache
        once(statement)
    for _ in range(args.runs):
        for label, statement in STATEMENTS.items():
            times[label].append(once(statement))
    print(f"Python {sys.version.split()[0]}; median of {args.runs} fresh interpreters each, in ms")
    for label, values in times.items():
        print(f"  {label:55s} {statistics.median(values):7.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
