"""How fast ``logkafka report`` and ``logkafka verify`` read, and how much memory they hold.

    python benchmarks/bench_compliance.py [--records N] [--quick]

Writes N audit and security records (9 in 10 audit) to a local broker as handlers write them (each
chained: the same header, the same hash), then runs ``logkafka report --format json`` and ``logkafka
verify`` on them as the user would (a subprocess each, the whole period read from Kafka), and prints
records per second and the peak memory (max RSS) of each. Default: a million records.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid

from confluent_kafka import Producer

from logkafka._chain import Chain
from logkafka._message import Message
from logkafka.testing import LocalBroker

ACTIONS = ("order.create", "order.refund", "user.login", "invoice.send", "role.grant")


def produce(servers: str, namespace: str, n: int) -> float:
    """Write ``n`` chained records (90% audit); seconds taken."""
    audit, security = f"{namespace}.logging.audit.v1", f"{namespace}.logging.security.v1"
    producer = Producer({"bootstrap.servers": servers, "linger.ms": 50, "queue.buffering.max.messages": 500_000,
                         "compression.type": "lz4"})
    chains = {"audit": Chain("audit", None, None), "security": Chain("security", None, None)}
    start = time.perf_counter()
    base = int(time.time() * 1000) - n  # one record a millisecond, up to now
    for i in range(n):
        stream = "security" if i % 10 == 0 else "audit"
        tenant = f"tenant-{i % 50}"
        fields = ({"event_type": "authorization", "user_id": f"u-{i % 997}", "resource": "admin",
                   "decision": ("allow", "deny")[i % 7 == 0]} if stream == "security" else
                  {"action": ACTIONS[i % 5], "actor": f"u-{i % 997}", "resource": f"order:{i}",
                   "outcome": ("success", "failure")[i % 13 == 0]})
        record = {"timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime((base + i) / 1000)),
                  "level": "INFO", "logger": f"logkafka.{stream}", "message": f"{stream}: record {i}",
                  "service": "bench", "environment": "bench", "version": "1", "host": "h", "instance_id": "h",
                  "process": 1, "thread": "MainThread", "module": "m", "function": "f", "line": 1,
                  "event_id": str(uuid.UUID(int=i)), "stream": stream, **fields, "tenant_id": tenant}
        message, _ = chains[stream].link(Message(audit if stream == "audit" else security, tenant.encode(),
                                                 json.dumps(record).encode(), base + i, None))
        while True:
            try:
                producer.produce(message.topic, message.value, key=message.key, timestamp=message.timestamp_ms,
                                 headers=message.headers)
                break
            except BufferError:
                producer.poll(0.1)
        if i % 10_000 == 0:
            producer.poll(0)
    producer.flush(300)
    return time.perf_counter() - start


def timed(command: list[str]) -> tuple[float, int, subprocess.CompletedProcess[str]]:
    """Seconds and peak RSS (KiB) of one command (GNU time's %M: the command's own process)."""
    start = time.perf_counter()
    done = subprocess.run(["/usr/bin/time", "-f", "maxrss %M", *command], capture_output=True, text=True,
                          timeout=3600)
    seconds = time.perf_counter() - start
    peak = int(done.stderr.strip().splitlines()[-1].split()[-1])
    return seconds, peak, done


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="20,000 records: a check that it runs")
    opts = parser.parse_args()
    n = 20_000 if opts.quick else opts.records
    namespace = f"bench{uuid.uuid4().hex[:6]}"
    with LocalBroker() as broker:
        for stream in ("audit", "security"):
            broker.create_topic(f"{namespace}.logging.{stream}.v1", 3)
        wrote = produce(broker.bootstrap_servers, namespace, n)
        print(f"{n:,} chained records written in {wrote:.1f} s")
        common = ["-b", broker.bootstrap_servers, "--namespace", namespace, "--since", "2000-01-01"]
        for name, args in (("verify", ["verify", "--json"]), ("report", ["report"])):
            seconds, peak, done = timed([sys.executable, "-m", "logkafka", *args, *common])
            result = json.loads(done.stdout)
            read = result["records"] if name == "verify" else result["records_read"]
            ok = result["intact"] if name == "verify" else result["passed"]
            print(f"  logkafka {name:<7} {read:>10,} records in {seconds:6.1f} s: {read / seconds:>9,.0f} records/s, "
                  f"peak RSS {peak / 1024:,.0f} MiB, checks {'passed' if ok else 'FAILED'} (exit {done.returncode})")
            if read != n or done.returncode != 0:
                print(done.stderr[-2000:], file=sys.stderr)
                return 1
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
