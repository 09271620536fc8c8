"""Break each core promise on purpose, one at a time, and show the suite fails: a mutation check.

    python tests/mutate.py [--only NAME] [--keep]

Each mutation edits one line of a copy of the package (the working tree is never touched), then runs the
tests that guard that promise against the copy, with the embedded broker. A mutation the tests do not catch
("survived") makes the exit status 1. Prints one line per mutation and how long it took.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Mutation:
    name: str
    what: str  # the promise broken, in words
    path: str  # under logkafka/
    old: str  # exactly one occurrence in the file
    new: str
    tests: tuple[str, ...]  # pytest node ids or paths that guard it


MUTATIONS = (
    Mutation(
        "delivery-accounting", "a failed delivery report counted as acknowledged (nothing spooled, nothing said)",
        "_delivery.py", "        self.failures.append((err, msg, headers))", "        next(self._acks)",
        ("tests/test_faults.py::TestDeliveryFailures", "tests/test_reliability.py::TestAfterAnOutage")),
    Mutation(
        "spool-write", "a record handed to the spool is not written (and not counted as lost)",
        "_spill.py", "        if not spool.append(*message):", "        if False:",
        ("tests/test_spool.py", "tests/test_faults.py::TestDeliveryFailures")),
    Mutation(
        "replay", "the replay reads the spool but sends nothing to Kafka",
        "_replay.py",
        "                    produce(rec.topic, rec.value, rec.key, -1, reporter(headers) if headers else None, None,",
        "                    (lambda *a: None)(rec.topic, rec.value, rec.key, -1, None, None,",
        ("tests/test_reliability.py::TestAfterAnOutage", "tests/test_faults.py::TestDeliveryFailures")),
    Mutation(
        "order-after-an-outage", "a record whose delivery failed goes back to the spool's end, after newer ones",
        "_spill.py", "            if stem is None or not self.spool.usable():", "            if True:",
        ("tests/test_faults.py::TestDeliveryFailures::test_expired_records_are_spooled_and_arrive_in_order",
         "tests/test_faults.py::TestOutages::test_network_cut_mid_stream")),
    Mutation(
        "redaction-of-a-key", "a value under a secret key (password, api_key, ...) ships as it is",
        "_redact/engine.py", "            new_value = REDACTED if secret else self._walk(v, depth, path)",
        "            new_value = v if secret else self._walk(v, depth, path)",
        ("tests/test_redaction.py", "tests/test_redact.py")),
    Mutation(
        "context-capture", "the bound context is not captured at the call (records ship without it)",
        "_record.py", "    d[CTX] = ctx if theirs is None else {**jsonable(theirs), **ctx}",
        "    d[CTX] = {}",
        ("tests/test_context.py", "tests/test_formatter.py")),
)


def copy_tree(into: Path) -> None:
    """The package, its tests and what they read, copied (caches left out)."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache")
    for name in ("logkafka", "tests", "examples", "benchmarks"):
        shutil.copytree(ROOT / name, into / name, ignore=ignore)
    for name in ("README.md", "pyproject.toml"):
        shutil.copy2(ROOT / name, into / name)


def run(m: Mutation, keep: bool) -> tuple[bool, float, str]:
    """(caught, seconds, pytest's summary line) for one mutation."""
    work = Path(tempfile.mkdtemp(prefix=f"mutate-{m.name}-"))
    try:
        copy_tree(work)
        target = work / "logkafka" / m.path
        text = target.read_text()
        if text.count(m.old) != 1:
            raise SystemExit(f"{m.name}: expected one {m.old!r} in logkafka/{m.path}, found {text.count(m.old)}")
        target.write_text(text.replace(m.old, m.new))
        env = {**os.environ, "PYTHONPATH": str(work)}  # subprocesses of the tests import the copy too
        where = subprocess.run([sys.executable, "-c", "import logkafka; print(logkafka.__file__)"], cwd=work,
                               env=env, capture_output=True, text=True, check=True).stdout.strip()
        if not where.startswith(str(work)):
            raise SystemExit(f"{m.name}: the copy is not what imports ({where}): an installed logkafka shadows it")
        started = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *m.tests],
                              cwd=work, env=env, capture_output=True, text=True, timeout=1800)
        summary = [line for line in proc.stdout.splitlines() if " passed" in line or " failed" in line]
        return proc.returncode != 0, time.monotonic() - started, summary[-1] if summary else proc.stdout[-200:]
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", help="run only the mutation of this name")
    parser.add_argument("--keep", action="store_true", help="keep the mutated copies (their paths are printed)")
    args = parser.parse_args()
    chosen = [m for m in MUTATIONS if args.only in (None, m.name)]
    if not chosen:
        parser.error(f"--only: no mutation named {args.only!r} ({', '.join(m.name for m in MUTATIONS)})")
    survived = 0
    for m in chosen:
        caught, seconds, summary = run(m, args.keep)
        survived += not caught
        print(f"{'caught  ' if caught else 'SURVIVED'} {m.name:22} {seconds:6.0f} s  {m.what}  [{summary}]",
              flush=True)
    print(f"{len(chosen) - survived} of {len(chosen)} mutations caught")
    return 1 if survived else 0


if __name__ == "__main__":
    raise SystemExit(main())
