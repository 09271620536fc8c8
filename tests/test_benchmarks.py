"""Every benchmark runs, at a size that only shows it works: a benchmark that no longer runs is found here, not
when someone needs its figures. (The figures themselves are the README's, from full runs.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
SMALL: dict[str, tuple[str, ...]] = {
    "bench_caller_floor.py": ("--records", "300", "--rounds", "1"),
    "bench_compliance.py": ("--records", "2000"),
    "bench_handler.py": ("--records", "300", "--rounds", "1", "--json"),
    "bench_import.py": ("--runs", "1"),
    "bench_middleware.py": ("--n", "200", "--rounds", "1"),
    "bench_redaction.py": ("--records", "300", "--rounds", "1"),
    "soak.py": ("--minutes", "0.1", "--rate", "200", "--processes", "1"),
}


def test_every_benchmark_is_listed() -> None:
    """A new benchmark gets a small run here too."""
    assert sorted(p.name for p in BENCHMARKS.glob("*.py")) == sorted(SMALL)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_benchmark_runs(name: str, kafka_broker: Any) -> None:
    """The benchmark runs to its end at a small size, against the test broker, and exits 0."""
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_broker.bootstrap_servers}
    proc = subprocess.run([sys.executable, str(BENCHMARKS / name), *SMALL[name]], capture_output=True, text=True,
                          timeout=600, env=env, cwd=BENCHMARKS.parent)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert proc.stdout.strip(), proc.stderr[-2000:]
    if name == "bench_handler.py":  # every Kafka contender's records held by the broker
        figures = json.loads(proc.stdout)
        kafka = [(c, row) for shape in figures["shapes"].values() for c, row in shape.items() if "sent" in row]
        assert len(kafka) == 8, figures  # four Kafka contenders, two record shapes
        for contender, row in kafka:
            assert row["held_by_broker"] == row["sent"] == row["acknowledged"], (contender, row)
