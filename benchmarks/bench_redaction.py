"""What redaction costs per record: JsonFormatter rendering with redaction on and off.

    python benchmarks/bench_redaction.py [--records N] [--rounds R]

The records are captured once (as KafkaLogHandler.emit does on the caller's
thread); each round renders all of them with both formatters, back to back,
on the path the handler's thread takes (``encode_captured``). Shared machines
are noisy: the figures are medians over the rounds, and the cost is the
median of per-round differences. No broker needed.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
from typing import Any

import logkafka
from logkafka._record import capture_slim

SHAPES: dict[str, tuple[str, tuple[Any, ...], dict[str, Any]]] = {
    "plain": ("user %s logged in", ("alice",), {}),
    "typical": ("order %d placed", (1042,), {"code": "ORD_PLACED", "order_id": 1042, "amount": 99.5,
                                            "currency": "EUR", "items": ["sku-1", "sku-2"], "retry": False}),
    "with secrets": ("login for %s with password=%s", ("carol@example.com", "hunter2"),
                     {"api_key": "k-123", "headers": {"Authorization": "Bearer abc.def.ghi"}}),
}


def captured(n: int, msg: str, args: tuple[Any, ...], extra: dict[str, Any]) -> list[dict[str, Any]]:
    lg = logging.getLogger("bench.redaction")
    with logkafka.bound(correlation_id="req-7f3a", tenant_id="acme"):
        return [capture_slim(lg.makeRecord(lg.name, logging.INFO, __file__, 1, msg, args, None, extra=dict(extra)))
                for _ in range(n)]


def per_record(formatter: logkafka.JsonFormatter, records: list[dict[str, Any]]) -> float:
    encode = formatter.encode_captured
    start = time.perf_counter()
    for rd in records:
        encode(rd)
    return (time.perf_counter() - start) / len(records) * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=7)
    opts = parser.parse_args()
    on, off = logkafka.JsonFormatter(), logkafka.JsonFormatter(redact=False)
    print(f"{opts.records} records per measurement, {opts.rounds} interleaved rounds; medians (µs per record)\n")
    print(f"  {'record':<14}{'redact off':>12}{'redact on':>12}{'cost':>10}{'ratio':>9}")
    for name, (msg, args, extra) in SHAPES.items():
        records = captured(opts.records, msg, args, extra)
        per_record(on, records[:1000])
        per_record(off, records[:1000])
        rounds = [(per_record(off, records), per_record(on, records)) for _ in range(opts.rounds)]
        t_off = statistics.median(r[0] for r in rounds)
        t_on = statistics.median(r[1] for r in rounds)
        cost = statistics.median(r[1] - r[0] for r in rounds)
        ratio = statistics.median(r[1] / r[0] for r in rounds)
        print(f"  {name:<14}{t_off:>12.2f}{t_on:>12.2f}{cost:>10.2f}{ratio:>8.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
