"""The lint of ``logkafka check``: logging configurations that lose records, or their context, without a word.

Every rule reads the logging configuration as ``dictConfig`` built it (the live
logger tree and handlers) next to the configuration's own text, and returns
:class:`Finding` s: what is lost, where, and the fix. Nothing here connects,
imports the application's modules, or writes a file.

Levels: a logger level that keeps DEBUG records from a handler is taken as a
choice; one that keeps INFO or above from a ``KafkaLogHandler`` is reported.
"""

from __future__ import annotations

import gc
import logging
import logging.handlers
import os
import tempfile
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from logkafka._formatter import JsonFormatter
from logkafka._handler import KafkaLogHandler
from logkafka._record import default_identity

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
#: Handler and formatter settings of the service identity, and the field each one sets.
IDENTITY_SETTINGS = {"service_name": "service", "environment": "environment", "version": "version",
                     "instance_id": "instance_id"}
#: What dictConfig passes to a formatter given by "class" (everything else is dropped).
_CLASS_FORMATTER_KEYS = frozenset({"class", "format", "datefmt", "style", "validate", "defaults", "."})
_SHOWN = 8  # disabled loggers named in full


@dataclass(frozen=True)
class Finding:
    """One problem: its rule's code, the logger/handler/formatter it is about, what is lost, and the fix."""

    code: str
    name: str
    problem: str
    fix: str

    def __str__(self) -> str:
        return f"warning [{self.code}]: {self.problem}\n  fix: {self.fix}"

    def matches(self, spec: str) -> bool:
        """Whether ``--ignore spec`` (``CODE`` or ``CODE:NAME``) covers this finding."""
        code, sep, name = spec.partition(":")
        return code == self.code and (not sep or name == self.name)


@dataclass(frozen=True)
class Target:
    """One KafkaLogHandler of the configuration, with where the application would spool its records."""

    name: str
    handler: KafkaLogHandler
    spool_dir: str | None = None  # None: no spool
    spool_setting: str = "spool_dir"  # what chose it: spool_dir, LOGKAFKA_SPOOL_DIR, the default


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
    tree = _Tree(config, targets)
    found = [*_disabled_loggers(config, enabled_before, libraries)]
    found += _levels(tree)
    found += _fronts(tree)
    found += _identity(config, targets)
    found += _spool(targets)
    found += _ext(targets)
    return found


# -- the live tree --------------------------------------------------------------------------------
def _name(logger: logging.Logger) -> str:
    return "root" if logger is logging.getLogger() else logger.name


def _label(logger: logging.Logger) -> str:
    return "the root logger" if logger is logging.getLogger() else f"logger {logger.name!r}"


def _level(level: int) -> str:
    return logging.getLevelName(level)


def _quoted(names: Collection[str]) -> str:
    shown = [repr(n) for n in names]
    return shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " and " + shown[-1]


class _Tree:
    """The loggers and handlers dictConfig made, and which KafkaLogHandler each handler leads to."""

    def __init__(self, config: Mapping[str, Any], targets: Collection[Target]) -> None:
        self.config = config
        self.root = logging.getLogger()
        self.loggers: dict[str, logging.Logger] = {"root": self.root}
        self.loggers.update((n, lg) for n, lg in sorted(logging.Logger.manager.loggerDict.items())
                            if isinstance(lg, logging.Logger))
        self.kafka: dict[int, str] = {id(t.handler): t.name for t in targets}
        self.targets = list(targets)
        section = config.get("loggers")
        self.configured = [self.loggers[n] for n in (section if isinstance(section, Mapping) else ())
                           if isinstance(n, str) and n and n in self.loggers]
        # a QueueListener made in code (Python < 3.12, or the config file's own) is found by its queue
        self.listeners: dict[int, list[logging.Handler]] = {}
        for obj in gc.get_objects():
            if isinstance(obj, logging.handlers.QueueListener):
                self.listeners.setdefault(id(obj.queue), []).extend(obj.handlers)
        self.handler_names = {id(h): str(n) for n, h in list(getattr(logging, "_handlers", {}).items())}

    def name_of(self, handler: logging.Handler) -> str:
        return self.kafka.get(id(handler)) or self.handler_names.get(id(handler)) or handler.get_name() or "?"

    def behind(self, handler: logging.Handler) -> list[logging.Handler]:
        """The handlers ``handler`` passes its records to (a QueueHandler's listener, a MemoryHandler's target)."""
        if isinstance(handler, logging.handlers.QueueHandler):
            listener = getattr(handler, "listener", None)  # Python 3.12's dictConfig sets it
            out = list(getattr(listener, "handlers", ()) or ())
            return out + [h for h in self.listeners.get(id(handler.queue), []) if h not in out]
        if isinstance(handler, logging.handlers.MemoryHandler) and handler.target is not None:
            return [handler.target]
        return []

    def leads_to(self, handler: logging.Handler, seen: set[int] | None = None) -> list[KafkaLogHandler]:
        """The configuration's KafkaLogHandlers a record given to ``handler`` reaches."""
        seen = set() if seen is None else seen
        if id(handler) in seen:
            return []
        seen.add(id(handler))
        if isinstance(handler, KafkaLogHandler):
            return [handler] if id(handler) in self.kafka else []
        return [k for h in self.behind(handler) for k in self.leads_to(h, seen)]

    def own_kafka(self, logger: logging.Logger) -> list[KafkaLogHandler]:
        """The KafkaLogHandlers the handlers of ``logger`` itself lead to."""
        return [k for h in logger.handlers for k in self.leads_to(h)]

    def path(self, logger: logging.Logger) -> Iterator[logging.Logger]:
        """``logger`` and the ancestors its records propagate to, as ``Logger.callHandlers`` walks them."""
        current: logging.Logger | None = logger
        while current is not None:
            yield current
            if not current.propagate:
                return
            current = current.parent

    def reached(self, logger: logging.Logger) -> list[tuple[logging.Logger, KafkaLogHandler]]:
        """(the logger it hangs on, handler) for each KafkaLogHandler a record of ``logger`` reaches."""
        return [(lg, k) for lg in self.path(logger) for k in self.own_kafka(lg)]


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
def _levels(tree: _Tree) -> Iterator[Finding]:
    for target in tree.targets:
        yield from _target_levels(tree, target)
    yield from _named_levels(tree)
    yield from _propagation(tree)


def _root_level_configured(config: Mapping[str, Any]) -> bool:
    root = config.get("root")
    loggers = config.get("loggers")
    blank = loggers.get("") if isinstance(loggers, Mapping) else None
    return any(isinstance(spec, Mapping) and spec.get("level") is not None for spec in (root, blank))


def _target_levels(tree: _Tree, target: Target) -> Iterator[Finding]:
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


def _unattached(tree: _Tree, target: Target) -> Finding:
    queues = sorted({tree.name_of(h) for lg in tree.loggers.values() for h in lg.handlers
                     if isinstance(h, logging.handlers.QueueHandler) and not tree.behind(h)})
    hint = ""
    if queues:
        hint = (f"; if a QueueListener of the application's feeds it from QueueHandler {_quoted(queues)}, the "
                "records lose their bound context and trace ids on the way (see queue-handler)")
    return Finding(
        "unattached", target.name,
        f"handler {target.name!r} is attached to no logger, so no record reaches it{hint}",
        f'list {target.name!r} in the "handlers" of the root logger (or of the loggers to ship)',
    )


def _named_levels(tree: _Tree) -> Iterator[Finding]:
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
            f"loggers under it) never reach handler{'s' if len(names) > 1 else ''} {_quoted(names)} on "
            f"{', '.join(sorted(on))}, which would take them",
            f'set its level to "{levels[0]}" (or remove it) if Kafka should get them; '
            f"--ignore logger-level:{lg.name} if it is meant",
        )


def _propagation(tree: _Tree) -> Iterator[Finding]:
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
            f"{'s' if len(names) > 1 else ''} {_quoted(names)} on {', '.join(on)}",
            f'add {_quoted(names)} to its "handlers", or remove "propagate": false; '
            f"--ignore propagate:{lg.name} if it is meant",
        )


# -- rule 3: handlers in front of a KafkaLogHandler ---------------------------------------------------
def _fronts(tree: _Tree) -> Iterator[Finding]:
    seen: set[int] = set()
    handlers = [h for lg in tree.loggers.values() for h in lg.handlers]
    handlers += [h for h in list(getattr(logging, "_handlers", {}).values()) if isinstance(h, logging.Handler)]
    for front in handlers:
        if id(front) in seen or isinstance(front, KafkaLogHandler):
            continue
        seen.add(id(front))
        kafka = list(dict.fromkeys(tree.name_of(k) for k in tree.leads_to(front)))
        if not kafka:
            continue
        name = tree.name_of(front)
        plural = "s" if len(kafka) > 1 else ""
        if isinstance(front, logging.handlers.QueueHandler):
            yield Finding(
                "queue-handler", name,
                f"handler {name!r} is a QueueHandler in front of handler{plural} {_quoted(kafka)}: its prepare() "
                "flattens each record (the exception becomes part of the message text, no error fields), and "
                f"{_quoted(kafka)} then runs on the listener's thread, where the caller's bound context and "
                "active trace are not set: records arrive without their correlation and trace ids",
                f"attach {_quoted(kafka)} to the logger directly (in its \"handlers\"), not behind the queue: "
                "a KafkaLogHandler already never blocks the caller (it only queues the record)",
            )
        elif isinstance(front, logging.handlers.MemoryHandler):
            yield Finding(
                "memory-handler", name,
                f"handler {name!r} is a MemoryHandler in front of handler{plural} {_quoted(kafka)}: records wait in "
                "its buffer and are passed on by whichever call fills or flushes it, so they carry that call's "
                "bound context and trace ids, not their own, and the buffer is lost if the process dies",
                f"attach {_quoted(kafka)} to the logger directly (in its \"handlers\"): a KafkaLogHandler "
                "already batches records on its own thread",
            )


# -- rule 4: identity -------------------------------------------------------------------------------
def _spec(config: Mapping[str, Any], section: str, name: Any) -> Mapping[str, Any]:
    specs = config.get(section)
    spec = specs.get(name) if isinstance(specs, Mapping) and isinstance(name, str) else None
    return spec if isinstance(spec, Mapping) else {}


def _identity(config: Mapping[str, Any], targets: Collection[Target]) -> Iterator[Finding]:
    defaults = default_identity()
    reported: set[str] = set()
    for target in targets:
        handler = target.handler
        spec = _spec(config, "handlers", target.name)
        fmt_name = spec.get("formatter")
        fmt_spec = _spec(config, "formatters", fmt_name)
        fmt_label = f"formatter {fmt_name!r}" if isinstance(fmt_name, str) else "its formatter"
        if (isinstance(fmt_name, str) and fmt_name not in reported and "()" not in fmt_spec
                and set(fmt_spec) - _CLASS_FORMATTER_KEYS):
            reported.add(fmt_name)
            ignored = sorted(str(k) for k in set(fmt_spec) - _CLASS_FORMATTER_KEYS)
            cls = fmt_spec.get("class")
            given = ('is given by "class"' if cls is not None
                     else 'names no "()" factory (dictConfig then makes a plain logging.Formatter)')
            yield Finding(
                "formatter-class", fmt_name,
                f"formatter {fmt_name!r} {given}, and dictConfig passes such a formatter only format, "
                f"datefmt, style, validate and defaults: its {', '.join(ignored)} "
                f"{'is' if len(ignored) == 1 else 'are'} silently ignored",
                f'write "()": {cls!r} instead of "class": {cls!r}' if cls is not None
                else 'give it "()": "logkafka.JsonFormatter" (the factory gets every other key)',
            )
        fmt = handler.formatter
        if not isinstance(fmt, JsonFormatter):
            continue
        own = dict(getattr(handler, "_explicit_identity", None) or {})
        own.update({field: handler.settings.identity[field] for setting, field in IDENTITY_SETTINGS.items()
                    if spec.get(setting) is not None})
        theirs = {field: fmt.identity[field] for setting, field in IDENTITY_SETTINGS.items()
                  if fmt_spec.get(setting) is not None or fmt.identity[field] != defaults[field]}
        differ = [(setting, own[field], theirs[field]) for setting, field in IDENTITY_SETTINGS.items()
                  if field in own and field in theirs and own[field] != theirs[field]]
        if not differ:
            continue
        said = "; ".join(f"{s} {mine!r} on the handler, {other!r} on the formatter" for s, mine, other in differ)
        settings = ", ".join(s for s, _, _ in differ)
        sharing = sorted(str(n) for n, h in list(getattr(logging, "_handlers", {}).items())
                         if h is not handler and getattr(h, "formatter", None) is fmt)
        others = (f"handler{'s' if len(sharing) > 1 else ''} {_quoted(sharing)}, sharing the formatter, "
                  f"write{'' if len(sharing) > 1 else 's'}" if sharing
                  else "any other handler given the same formatter (a file, stdout) writes")
        yield Finding(
            "identity", target.name,
            f"handler {target.name!r} and {fmt_label} name different identities ({said}): the records in Kafka "
            f"and the Kafka client.id use the handler's, while {others} the formatter's for the same records",
            f"set {settings} in one place: on the formatter (the handler takes it from there), "
            "and remove it from the handler",
        )


# -- rule 5: spool ----------------------------------------------------------------------------------
def spool_dir_problem(path: str) -> str | None:
    """Why records could not be spooled under ``path``, or None; found without creating or leaving anything.

    An existing directory is tried with a temporary file removed at once; a missing one
    by its nearest existing parent, where it would be created.
    """
    path = os.path.abspath(path)
    nearest = path
    while not os.path.lexists(nearest):
        parent = os.path.dirname(nearest)
        if parent == nearest:
            break
        nearest = parent
    if not os.path.isdir(nearest):
        what = "a broken symbolic link" if os.path.islink(nearest) else "a file"
        if nearest == path:
            return f"{path} is {what}, not a directory"
        return f"{nearest} is {what}, so {path} cannot be created under it"
    try:
        fd, probe = tempfile.mkstemp(prefix=".logkafka-check-", dir=nearest)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        if nearest == path:
            return f"{path} cannot be written ({reason})"
        return f"{path} cannot be created: {nearest} cannot be written ({reason})"
    os.close(fd)
    os.unlink(probe)
    return None


def _spool(targets: Collection[Target]) -> Iterator[Finding]:
    from logkafka._spool import destination_dir

    for target in targets:
        if target.spool_dir is None or not target.handler.settings.enabled:
            continue
        st = target.handler.settings
        problem = spool_dir_problem(target.spool_dir)
        if problem is None:
            own = destination_dir(target.spool_dir, st.topic, st.bootstrap_servers)
            problem = spool_dir_problem(own) if os.path.isdir(own) else None
        if problem is None:
            continue
        user = _user()
        setting = "spool_dir (or LOGKAFKA_SPOOL_DIR)" if target.spool_setting == "the default" else target.spool_setting
        yield Finding(
            "spool-dir", target.name,
            f"handler {target.name!r} spools to {target.spool_dir} ({target.spool_setting}), but {problem}"
            f"{f' for {user}' if user else ''}: records that cannot be delivered at once (broker down, "
            "queue full, exit) are lost instead of waiting on disk",
            f"point {setting} at a directory the application's user can write (or create it), "
            "or set spool_dir to false for no spool",
        )


def _user() -> str:
    try:
        import pwd

        return f"user {pwd.getpwuid(os.geteuid()).pw_name!r}"
    except (ImportError, KeyError, AttributeError):
        return ""


# -- rule 6: ext:// in producer_config ---------------------------------------------------------------
def _ext(targets: Collection[Target]) -> Iterator[Finding]:
    for target in targets:
        for key, value in target.handler.settings.producer_config.items():
            if isinstance(value, str) and value.startswith(("ext://", "cfg://")):
                yield Finding(
                    "ext-in-producer-config", target.name,
                    f"handler {target.name!r}: producer_config[{key!r}] is the text {value!r}: dictConfig resolves "
                    f"{value[:6]} only in a handler's own settings, not inside producer_config, so librdkafka gets "
                    "this text, not the object it names",
                    f"put the value itself in producer_config: build the configuration in Python (a Python "
                    f"configuration file can import it: {{{key!r}: {value[6:]}}}), or set it in code",
                )
