"""Every python block of README.md runs as written, each in a fresh process, against the test broker.

A block runs as a script unless an HTML comment on the line before it says otherwise:

``<!-- readme-test: pytest -->``
    the block is a test file: it runs under pytest, with the plugin active.
``<!-- readme-test: fragment recipe -->``
    the block holds entries of a ``dictConfig`` dictionary: merged into the recipe's
    (the first block of "The recipe"), then configured.
``<!-- readme-test: fragment recipe.handlers -->``
    the same, for entries of the recipe's ``"handlers"``.
``<!-- readme-test: skip REASON -->``
    not run, for the reason given (listed by ``-ra``).

Bash blocks are not run.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from logkafka._settings import DEFAULT_AUDIT_TOPIC, DEFAULT_SECURITY_TOPIC
from logkafka.testing import read_topic

README = Path(__file__).resolve().parent.parent / "README.md"
FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<lang>[\w+-]*)[ \t]*$")
MARKER = re.compile(r"^[ \t]*<!--[ \t]*readme-test:[ \t]*(?P<text>.*?)[ \t]*-->[ \t]*$")
FRAGMENTS = {"recipe": (), "recipe.handlers": ("handlers",)}
TIMEOUT = 120.0


@dataclass(frozen=True)
class Snippet:
    """One fenced block of README.md."""

    line: int  # of the opening fence, from 1
    section: str  # the nearest heading above it
    lang: str
    code: str  # dedented to the fence's indent
    marker: str | None  # what follows "readme-test:" on the line before the fence
    marker_line: int | None = None

    @property
    def kind(self) -> str:
        """``run``, ``pytest``, ``fragment`` or ``skip``; ``ValueError`` for a marker of another kind."""
        if self.marker is None:
            return "run"
        word, _, rest = self.marker.partition(" ")
        if word == "pytest" and not rest:
            return "pytest"
        if word == "fragment" and rest in FRAGMENTS:
            return "fragment"
        if word == "skip" and rest.strip():
            return "skip"
        raise ValueError(f"README.md:{self.marker_line}: unknown readme-test marker {self.marker!r} "
                         f"(pytest, fragment {' | '.join(FRAGMENTS)}, skip REASON)")

    @property
    def argument(self) -> str:
        """The marker's text after its first word: the fragment's place, or the skip's reason."""
        return (self.marker or "").partition(" ")[2].strip()

    @property
    def id(self) -> str:
        slug = re.sub(r"[^a-z0-9]+", "-", self.section.lower()).strip("-")[:40]
        return f"L{self.line}-{slug}"


def parse(text: str) -> tuple[list[Snippet], list[int]]:
    """Every fenced block of ``text``, and the lines of markers not placed right before a python block."""
    lines = text.splitlines()
    snippets: list[Snippet] = []
    markers: list[int] = []
    attached: set[int] = set()
    section = ""
    i = 0
    while i < len(lines):
        line = lines[i]
        if MARKER.match(line):
            markers.append(i + 1)
        elif line.startswith("#"):
            section = line.lstrip("#").strip()
        fence = FENCE.match(line)
        if fence is None:
            i += 1
            continue
        indent, lang = fence["indent"], fence["lang"]
        end = i + 1
        while end < len(lines) and lines[end].rstrip() != f"{indent}```":
            end += 1
        if end == len(lines):
            raise ValueError(f"README.md:{i + 1}: a ``` block that is never closed")
        body = "\n".join(lines[i + 1:end])
        before = i - 1
        while before >= 0 and not lines[before].strip():
            before -= 1
        marked = MARKER.match(lines[before]) if before >= 0 else None
        if marked is not None and lang == "python":
            attached.add(before + 1)
        snippets.append(Snippet(
            line=i + 1, section=section, lang=lang, code=textwrap.dedent(body) + "\n",
            marker=marked["text"] if marked is not None else None,
            marker_line=before + 1 if marked is not None else None))
        i = end + 1
    return snippets, [m for m in markers if m not in attached]


SNIPPETS, STRAY_MARKERS = parse(README.read_text(encoding="utf-8"))
PYTHON = [s for s in SNIPPETS if s.lang == "python"]
RECIPE = next((s for s in PYTHON if s.section == "The recipe"), None)


def recipe_config() -> dict[str, Any]:
    """The dictConfig of the first block of "The recipe", as a dictionary."""
    assert RECIPE is not None, "README.md has no python block under \"## The recipe\""
    calls = [node for node in ast.walk(ast.parse(RECIPE.code)) if isinstance(node, ast.Call)
             and isinstance(node.func, ast.Attribute) and node.func.attr == "dictConfig"]
    config = ast.literal_eval(calls[0].args[0])
    assert isinstance(config, dict)
    return config


def fragment_script(snippet: Snippet) -> str:
    """A script that merges the fragment into the recipe's configuration, configures it and checks its handlers."""
    place = FRAGMENTS[snippet.argument]
    return textwrap.dedent('''\
        import logging
        import logging.config

        def merge(into, entries):
            for key, value in entries.items():
                if isinstance(value, dict) and isinstance(into.get(key), dict):
                    merge(into[key], value)
                else:
                    into[key] = value

        config = {config!r}
        target = config
        for key in {place!r}:
            target = target.setdefault(key, {{}})
        fragment = {{
        {code}
        }}
        merge(target, fragment)
        logging.config.dictConfig(config)
        names = fragment.get("handlers", {{}}) if not {place!r} else fragment
        built = logging._handlers
        missing = [name for name in names if name not in built]
        assert not missing, f"handlers not built: {{missing}}"
        for name in names:
            logging.getLogger().removeHandler(built[name])
            built[name].close()
        print("configured:", sorted(names))
    ''').format(config=recipe_config(), place=place, code=snippet.code)


def run(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT)
    out = f"exit {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
    assert proc.returncode == 0, out
    for failure in ("Traceback (most recent call last)", "--- Logging error ---"):
        assert failure not in proc.stderr, out
    return proc


@pytest.fixture
def snippet_env(kafka_broker: Any) -> dict[str, str]:
    """The environment of a snippet: the test broker, and the test's own spool directory (set by conftest)."""
    env = dict(os.environ)
    env["KAFKA_BOOTSTRAP_SERVERS"] = kafka_broker.bootstrap_servers
    env.pop("PYTEST_CURRENT_TEST", None)
    return env


class TestReadmeSnippets:
    @pytest.mark.parametrize("snippet", PYTHON, ids=[s.id for s in PYTHON])
    def test_snippet_runs_as_written(self, snippet: Snippet, tmp_path: Path, snippet_env: dict[str, str],
                                     kafka_broker: Any) -> None:
        """The block runs in a fresh process (cwd a temporary directory) and exits 0 with no traceback."""
        kind = snippet.kind
        if kind == "skip":
            pytest.skip(f"README.md:{snippet.line} ({snippet.section}): {snippet.argument}")
        if kind == "pytest":
            path = tmp_path / f"test_readme_{snippet.line}.py"
            path.write_text(snippet.code)
            # As a user runs it: the plugin's own broker, started and stopped by the plugin.
            snippet_env.pop("KAFKA_BOOTSTRAP_SERVERS")
            proc = run([sys.executable, "-m", "pytest", "-q", "-s", "-W", "error", "-p", "no:cacheprovider",
                        path.name], tmp_path, snippet_env)
            assert re.search(r"^\d+ passed in ", proc.stdout, re.MULTILINE), proc.stdout
            assert " failed" not in proc.stdout and " error" not in proc.stdout, proc.stdout
            for noise in ("brokers are down", "rdkafka", "logkafka:"):
                assert noise not in proc.stdout + proc.stderr, proc.stdout + proc.stderr
            return
        path = tmp_path / f"readme_{snippet.line}.py"
        path.write_text(fragment_script(snippet) if kind == "fragment" else snippet.code)
        run([sys.executable, path.name], tmp_path, snippet_env)
        if snippet is RECIPE:
            check_recipe_output(tmp_path, kafka_broker.bootstrap_servers)


def check_recipe_output(cwd: Path, servers: str) -> None:
    """Each line the recipe wrote to app.log is in Kafka, the same bytes, in its stream's topic;
    an application, an audit and a security record among them."""
    lines = (cwd / "app.log").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert {r.get("stream", "application") for r in records} == {"application", "audit", "security"}, lines
    topics = {"application": recipe_config()["handlers"]["kafka"]["topic"], "audit": DEFAULT_AUDIT_TOPIC,
              "security": DEFAULT_SECURITY_TOPIC}
    for stream, topic in topics.items():
        wanted = {r["event_id"]: line for r, line in zip(records, lines, strict=True)
                  if r.get("stream", "application") == stream}
        shipped = {m.data.get("event_id"): m.value.decode() for m in read_topic(servers, topic, timeout=20)}
        assert {event_id: shipped.get(event_id) for event_id in wanted} == wanted, stream


class TestReadmeMarkers:
    def test_the_readme_has_its_snippets(self) -> None:
        """The parser finds the README's python blocks: the recipe, the plugin example, and a dozen more."""
        assert len(PYTHON) >= 12
        assert RECIPE is PYTHON[0]
        assert [s.kind for s in PYTHON].count("pytest") == 1
        assert any(s.lang == "bash" for s in SNIPPETS)  # found, and not run

    def test_every_marker_is_known_and_placed_before_a_python_block(self) -> None:
        """A marker with a typo, or one not right before a python block, fails rather than being ignored."""
        assert STRAY_MARKERS == []
        for snippet in PYTHON:
            snippet.kind  # noqa: B018 - raises ValueError for an unknown marker

    def test_fragments_and_skips_are_few_and_listed(self) -> None:
        """At most three blocks are fragments or skipped, each skip with its reason."""
        special = [(s.line, s.kind, s.argument) for s in PYTHON if s.kind in ("fragment", "skip")]
        assert len(special) <= 3, special
        assert all(argument for _, _, argument in special)

    def test_parser_reads_markers_indented_blocks_and_rejects_unknown_markers(self) -> None:
        """The parser's own rules, on a small document."""
        text = textwrap.dedent('''\
            ## A
            <!-- readme-test: skip starts a server -->

            ```python
            serve()
            ```
            - item:

              ```python
              {"a": 1}
              ```
            <!-- readme-test: fragmnet recipe -->
            ```python
            x = 1
            ```
            <!-- readme-test: pytest -->
            ```bash
            echo
            ```
        ''')
        snippets, stray = parse(text)
        assert [(s.line, s.lang, s.kind if s.lang == "python" and s.line != 13 else None) for s in snippets] == [
            (4, "python", "skip"), (9, "python", "run"), (13, "python", None), (17, "bash", None)]
        assert snippets[0].argument == "starts a server"
        assert snippets[1].code == '{"a": 1}\n'
        assert stray == [16]
        with pytest.raises(ValueError, match="unknown readme-test marker 'fragmnet recipe'"):
            snippets[2].kind  # noqa: B018
