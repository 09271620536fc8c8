"""The logging configuration ``logkafka check`` checks: loading it, preparing it, finding its KafkaLogHandlers.

Servers follow the handler's own rule: a ``bootstrap_servers`` (or
``producer_config["bootstrap.servers"]``) in the file wins; otherwise
``--bootstrap-servers``, else ``KAFKA_BOOTSTRAP_SERVERS``, else ``localhost:9092``.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import runpy
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import IO, Any

from logkafka._cli.common import EXIT_USAGE, CliError
from logkafka._cli.lint_tree import named_handlers
from logkafka._handler import KafkaLogHandler
from logkafka._settings import check_spool_dir


def load_logging_config(spec: str) -> dict[str, Any]:
    """The dictConfig named by ``spec``: a JSON / YAML / Python file, or ``module.path[:ATTR]``.

    Raises :class:`CliError` with the cause when it cannot be read.
    """
    path, _, attr = spec.partition(":") if not os.path.exists(spec) else (spec, "", "")
    attr = attr or "LOGGING"
    lower = path.lower()
    if lower.endswith(".json"):
        data = _parse_file(path, lambda f: json.load(f), "JSON")
    elif lower.endswith((".yaml", ".yml")):
        try:
            yaml: Any = importlib.import_module("yaml")
        except ImportError:
            raise CliError(f"{path}: reading YAML needs PyYAML: pip install pyyaml", EXIT_USAGE) from None
        data = _parse_file(path, yaml.safe_load, "YAML")
    elif lower.endswith(".py") or os.sep in path:
        if not os.path.isfile(path):
            raise CliError(f"{path}: no such file", EXIT_USAGE)
        try:
            namespace = runpy.run_path(path, run_name="__logkafka_check__")
        except BaseException as exc:  # the file's own code failed (SystemExit included)
            raise CliError(f"{path}: running the file failed: {type(exc).__name__}: {exc}", EXIT_USAGE) from None
        if attr not in namespace:
            raise CliError(f"{path}: defines no {attr} (the logging dictConfig)", EXIT_USAGE)
        data = namespace[attr]
    else:
        if os.getcwd() not in sys.path:
            sys.path.insert(0, os.getcwd())
        try:
            module = importlib.import_module(path)
        except ModuleNotFoundError as exc:
            if exc.name and path.startswith(exc.name):
                raise CliError(f"{spec}: no such file or module", EXIT_USAGE) from None
            raise CliError(f"{spec}: importing the module failed: {exc}", EXIT_USAGE) from None
        except BaseException as exc:
            raise CliError(f"{spec}: importing the module failed: {type(exc).__name__}: {exc}", EXIT_USAGE) from None
        if not hasattr(module, attr):
            raise CliError(f"{spec}: module {path} has no {attr} (the logging dictConfig)", EXIT_USAGE)
        data = getattr(module, attr)
    if not isinstance(data, dict):
        raise CliError(f"{spec}: the logging configuration must be a mapping (a dictConfig), "
                       f"got {type(data).__name__}", EXIT_USAGE)
    return data


def _parse_file(path: str, parse: Callable[[IO[str]], Any], kind: str) -> Any:
    """``parse`` of the file at ``path``; a file that cannot be read or parsed is a :class:`CliError`."""
    try:
        with open(path, encoding="utf-8") as f:
            return parse(f)
    except OSError as exc:
        raise CliError(f"{path}: cannot read: {exc.strerror or exc}", EXIT_USAGE) from None
    except Exception as exc:  # json.JSONDecodeError, yaml.YAMLError
        detail = " ".join(str(exc).split())
        raise CliError(f"{path}: not valid {kind}: {detail}", EXIT_USAGE) from None


@dataclass
class Found:
    """One KafkaLogHandler of the configuration."""

    name: str
    handler: Any
    loggers: list[str] = field(default_factory=list)
    servers_source: str = "default"


def find_handlers(config: Mapping[str, Any], servers_option: str | None = None) -> list[Found]:
    """Every KafkaLogHandler dictConfig made, with the loggers it is attached to; ``servers_option``: the
    ``--bootstrap-servers`` given, which serves the handlers whose configuration names no cluster."""
    found: dict[int, Found] = {}
    for name, handler in named_handlers().items():
        if isinstance(handler, KafkaLogHandler):
            found[id(handler)] = Found(name, handler)
    loggers: list[tuple[str, logging.Logger]] = [("root", logging.getLogger())]
    loggers += [(n, lg) for n, lg in sorted(logging.Logger.manager.loggerDict.items())
                if isinstance(lg, logging.Logger)]
    for lname, lg in loggers:
        for handler in lg.handlers:
            if isinstance(handler, KafkaLogHandler):
                entry = found.setdefault(id(handler), Found(handler.get_name() or "?", handler))
                entry.loggers.append(lname)
    handler_configs = config.get("handlers") or {}
    for entry in found.values():
        spec = handler_configs.get(entry.name) if isinstance(handler_configs, Mapping) else None
        producer = spec.get("producer_config") if isinstance(spec, Mapping) else None
        if isinstance(spec, Mapping) and (spec.get("bootstrap_servers")
                                          or (isinstance(producer, Mapping) and producer.get("bootstrap.servers"))):
            entry.servers_source = "the configuration"
        elif servers_option:
            entry.servers_source = "--bootstrap-servers"
        elif os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
            entry.servers_source = "KAFKA_BOOTSTRAP_SERVERS"
    return sorted(found.values(), key=lambda e: e.name)


@dataclass(frozen=True)
class Prepared:
    """A logging configuration made ready for the check, with where its handlers spool.

    A probe that is not acknowledged is spooled by ``handler.close()``; in the application's spool it
    would later be replayed into the topic. So the check's handlers spool to a directory of the
    check's own, removed afterwards (and they leave the application's spool alone: replaying it is
    the application's business, or ``logkafka replay``'s). A handler whose spool is off stays off.
    """

    config: dict[str, Any]  # as loaded: what the lint reads
    built: dict[str, Any]  # what dictConfig builds: the check's spool in place of each handler's own
    spool: str  # the check's own spool directory
    own_spools: dict[str, str | None]  # a handler's own spool_dir, by name; "": where one naming none spools
    chosen_by: str  # what chose that default spool: LOGKAFKA_SPOOL_DIR or the default

    def application_spool(self, name: str) -> str | None:
        """Where the application (not this check) spools the records of handler ``name``."""
        return self.own_spools.get(name, self.own_spools[""])


def prepare(config: dict[str, Any], spool: str) -> Prepared:
    """``config`` with every KafkaLogHandler spooling to ``spool`` (see :class:`Prepared`).

    ``LOGKAFKA_SPOOL_DIR`` is pointed there too, for handlers that name no ``spool_dir``.
    """
    chosen_by = "LOGKAFKA_SPOOL_DIR" if os.environ.get("LOGKAFKA_SPOOL_DIR") is not None else "the default"
    own: dict[str, str | None] = {}
    built = config
    handlers = config.get("handlers")
    if isinstance(handlers, Mapping):
        copied: dict[Any, Any] = {}
        for name, spec in handlers.items():
            if isinstance(spec, Mapping) and spec.get("spool_dir") not in (None, False, ""):
                try:
                    own[str(name)] = check_spool_dir(spec["spool_dir"])
                except ValueError:  # dictConfig reports it, naming the handler
                    copied[name] = spec
                    continue
                spec = {**spec, "spool_dir": spool}
            copied[name] = spec
        built = {**config, "handlers": copied}
    own[""] = check_spool_dir(None)  # where a handler naming none spools: LOGKAFKA_SPOOL_DIR, else the default
    if own[""] is not None:
        os.environ["LOGKAFKA_SPOOL_DIR"] = spool
    return Prepared(config, built, spool, own, chosen_by)
