"""The lint of ``logkafka check``: logging configurations that lose records, or their context, without a word.

Every rule reads the logging configuration as ``dictConfig`` built it (the live
logger tree and handlers) next to the configuration's own text, and returns
:class:`Finding` s: what is lost, where, and the fix. Nothing here connects,
imports the application's modules, or writes a file.

Levels: a logger level that keeps DEBUG records from a handler is taken as a
choice; one that keeps INFO or above from a ``KafkaLogHandler`` is reported.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterator, Mapping
from typing import Any

from logkafka._cli.lint_handlers import ext, fronts, identity, spool
from logkafka._cli.lint_tree import Finding, LoggerTree, Target, quoted

#: Every rule's code, as ``--ignore`` takes it, and what it is about.
CODES: dict[str, str] = {
    "disable-existing-loggers": "dictConfig disables the loggers that exist before it runs",
    "logger-level": "a logger's level keeps INFO (or higher) records from a KafkaLogHandler",
    "handler-level": "a KafkaLogHandler's own level keeps INFO records out",
    "propagate": '"propagate": false stops records before the KafkaLogHandler above',
    "unattached": "a KafkaLogHandler that no logger feeds",
    "queue-handler": "a QueueHandler / QueueListener in front of a KafkaLogHandler",
    "memory-handler": "a MemoryHandler in front of a KafkaLogHandler",
    "identity": "the handler and its formatter name different service identities",
    "formatter-class": 'a formatter built with "class" whose other settings dictConfig ignores',
    "spool-dir": "a spool directory that cannot be written",
    "ext-in-producer-config": "an ext:// or cfg:// text left inside producer_config",
    "missing-topic": "the application topic does not exist (found by the probe, not with --no-probe)",
}
#: logkafka's stream loggers re-enable themselves when used: never reported as disabled.
SPARED = frozenset({"logkafka.audit", "logkafka.security"})
_SHOWN = 8  # disabled loggers named in full


def enabled_loggers() -> frozenset[str]:
    """The loggers that exist and are enabled now: call it before ``dictConfig`` to see which it disables."""
    return frozenset(name for name, lg in list(logging.Logger.manager.loggerDict.items())
                     if isinstance(lg, logging.Logger) and not lg.disabled)


def lint(config: Mapping[str, Any], targets: Collection[Target], *,
         enabled_before: Collection[str] = (), libraries: Collection[str] = ()) -> list[Finding]:
    """Every finding for ``config``, built by ``dictConfig`` into the live logging state, and its handlers.

    ``enabled_before``: :func:`enabled_loggers` just before ``dictConfig``; ``libraries``: the loggers
    that existed before the configuration was even loaded (made by what logkafka imports), named last.
    """
    tree = LoggerTree(config, targets)
    found = [*_disabled_loggers(config, enabled_before, libraries)]
    found += _levels(tree)
    found += fronts(tree)
    found += identity(config, targets)
    found += spool(targets)
    found += ext(targets)
    return found


# -- naming ------------------------------------------------------------------------------------------
def _name(logger: logging.Logger) -> str:
    return "root" if logger is logging.getLogger() else logger.name


def _label(logger: logging.Logger) -> str:
    return "the root logger" if logger is logging.getLogger() else f"logger {logger.name!r}"


def _level(level: int) -> str:
    return logging.getLevelName(level)


# -- rule 1: disable_existing_loggers ---------------------------------------------------------------
def _disabled_loggers(config: Mapping[str, Any], enabled_before: Collection[str],
                      libraries: Collection[str]) -> Iterator[Finding]:
    if config.get("incremental"):
        return  # an incremental configuration disables nothing
    value = config.get("disable_existing_loggers", True)
    if not value:
        return
    if "disable_existing_loggers" not in config:
        said = 'the configuration does not set "disable_existing_loggers": false'
    elif isinstance(value, str):
        said = (f'the configuration sets "disable_existing_loggers" to the text {value!r}, which counts as '
                "true (write the boolean false)")
    else:
        said = 'the configuration sets "disable_existing_loggers": true'
    loggers = logging.Logger.manager.loggerDict
    now_off = sorted(n for n in enabled_before if n not in SPARED and getattr(loggers.get(n), "disabled", False))
    mine = [n for n in now_off if n not in libraries]
    theirs = [n for n in now_off if n in libraries]
    more = f" and {len(theirs) - _SHOWN} more" if len(theirs) > _SHOWN else ""
    named = [", ".join(mine)] if mine else []
    if theirs:
        named.append(f"{'and, ' if mine else ''}among the loggers of the libraries logkafka loads, "
                     f"{', '.join(theirs[:_SHOWN])}{more}")
    seen = f" In this check's process it disabled {'; '.join(named)}." if named else ""
    yield Finding(
        "disable-existing-loggers", "",
        f"{said}, so dictConfig disables every logger that exists before it runs and that the configuration "
        "does not name: in the application, the loggers its modules create when they are imported "
        "(logging.getLogger(__name__) at module level) log nothing at all, to Kafka or anywhere else, and say "
        f"nothing about it.{seen}",
        'add "disable_existing_loggers": false to the configuration',
    )


# -- rule 2: levels and propagation ---------------------------------------------------------------
def _levels(tree: LoggerTree) -> Iterator[Finding]:
    for target in tree.targets:
        yield from _target_levels(tree, target)
    yield from _named_levels(tree)
    yield from _propagation(tree)


def _root_level_configured(config: Mapping[str, Any]) -> bool:
    root = config.get("root")
    loggers = config.get("loggers")
    blank = loggers.get("") if isinstance(loggers, Mapping) else None
    return any(isinstance(spec, Mapping) and spec.get("level") is not None for spec in (root, blank))


def _target_levels(tree: LoggerTree, target: Target) -> Iterator[Finding]:
    handler = target.handler
    hangs = [lg for lg in tree.loggers.values() if handler in tree.own_kafka(lg)]
    if not hangs:
        yield _unattached(tree, target)
        return
    if handler.level > logging.INFO:
        yield Finding(
            "handler-level", target.name,
            f"handler {target.name!r} has the level {_level(handler.level)}, so INFO records are never sent to "
            "Kafka (they still reach the other handlers)",
            f'remove its "level" (or set it to "INFO") if Kafka should get what the logs show; '
            f"--ignore handler-level:{target.name} if it is meant",
        )
        return
    # INFO records reach the handler from the loggers it hangs on, and from configured loggers below them
    sources = hangs + [lg for lg in tree.configured if any(k is handler for _, k in tree.reached(lg))]
    if any(not lg.disabled and lg.getEffectiveLevel() <= logging.INFO for lg in sources):
        return
    said: set[str] = set()
    for lg in hangs:
        setter = next(a for a in _ancestry(lg) if a.level != logging.NOTSET or a is tree.root)
        if _name(setter) in said:
            continue
        said.add(_name(setter))
        level = _level(lg.getEffectiveLevel())
        if setter is tree.root and not _root_level_configured(tree.config):
            why = f"the root logger is at {level}, Python's default: the configuration gives it no level"
            fix = 'give the root logger a level: "root": {"level": "INFO", ...}'
        else:
            why = f"{_label(setter)} is at {level}"
            fix = (f'set the level of {_label(setter)} to "INFO", or set "INFO" on the loggers whose INFO '
                   "records Kafka should get")
        where = "" if lg is setter else f" (it sets the level of {_label(lg)}, where the handler is)"
        yield Finding(
            "logger-level", _name(setter),
            f"{why}{where} and no logger below it takes INFO: INFO records never reach handler {target.name!r}",
            fix,
        )


def _ancestry(logger: logging.Logger) -> Iterator[logging.Logger]:
    current: logging.Logger | None = logger
    while current is not None:
        yield current
        current = current.parent


def _unattached(tree: LoggerTree, target: Target) -> Finding:
    queues = sorted({tree.name_of(h) for lg in tree.loggers.values() for h in lg.handlers
                     if isinstance(h, logging.handlers.QueueHandler) and not tree.behind(h)})
    hint = ""
    if queues:
        hint = (f"; if a QueueListener of the application's feeds it from QueueHandler {quoted(queues)}, the "
                "records lose their bound context and trace ids on the way (see queue-handler)")
    return Finding(
        "unattached", target.name,
        f"handler {target.name!r} is attached to no logger, so no record reaches it{hint}",
        f'list {target.name!r} in the "handlers" of the root logger (or of the loggers to ship)',
    )


def _named_levels(tree: LoggerTree) -> Iterator[Finding]:
    """A configured logger whose own level is above its parent's and hides INFO or above from Kafka."""
    for lg in tree.configured:
        if lg.disabled or lg.level == logging.NOTSET or lg.parent is None:
            continue
        inherited = lg.parent.getEffectiveLevel()
        hidden: dict[str, tuple[logging.Logger, int]] = {}
        own = tree.own_kafka(lg)
        for hangs, handler in tree.reached(lg):
            if handler in own:  # a handler on the logger itself: its level is the logger's own choice
                continue
            floor = max(inherited, handler.level, logging.INFO)
            if lg.level > floor:
                hidden.setdefault(tree.name_of(handler), (hangs, floor))
        if not hidden:
            continue
        names = list(hidden)
        floor = min(f for _, f in hidden.values())
        levels = [_level(n) for n in (logging.INFO, logging.WARNING, logging.ERROR, logging.CRITICAL)
                  if floor <= n < lg.level]
        on = {_label(h) for h, _ in hidden.values()}
        yield Finding(
            "logger-level", lg.name,
            f"logger {lg.name!r} is at {_level(lg.level)}, so its {' and '.join(levels)} records (and those of the "
            f"loggers under it) never reach handler{'s' if len(names) > 1 else ''} {quoted(names)} on "
            f"{', '.join(sorted(on))}, which would take them",
            f'set its level to "{levels[0]}" (or remove it) if Kafka should get them; '
            f"--ignore logger-level:{lg.name} if it is meant",
        )


def _propagation(tree: LoggerTree) -> Iterator[Finding]:
    """A configured logger with ``"propagate": false`` and no KafkaLogHandler of its own, below one that has."""
    for lg in tree.configured:
        if lg.propagate or lg.disabled or lg.parent is None or tree.own_kafka(lg):
            continue
        above = tree.reached(lg.parent)
        if not above:
            continue
        names = list(dict.fromkeys(tree.name_of(k) for _, k in above))
        on = sorted({_label(h) for h, _ in above})
        yield Finding(
            "propagate", lg.name,
            f'logger {lg.name!r} has "propagate": false and no KafkaLogHandler of its own: its records (and '
            f"those of the loggers under it) stop there and never reach handler"
            f"{'s' if len(names) > 1 else ''} {quoted(names)} on {', '.join(on)}",
            f'add {quoted(names)} to its "handlers", or remove "propagate": false; '
            f"--ignore propagate:{lg.name} if it is meant",
        )
