"""The lint's rules on handlers: what stands in front of a KafkaLogHandler, identities, spools, producer_config.

Each rule reads the live logging state (see :mod:`~logkafka._cli.lint_tree`) and yields :class:`Finding` s.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import tempfile
from collections.abc import Collection, Iterator, Mapping
from typing import Any

from logkafka._cli.lint_tree import Finding, LoggerTree, Target, named_handlers, quoted
from logkafka._formatter import JsonFormatter
from logkafka._handler import KafkaLogHandler, explicit_identity
from logkafka._record import default_identity
from logkafka._spool import destination_dir

#: Handler and formatter settings of the service identity, and the field each one sets.
IDENTITY_SETTINGS = {"service_name": "service", "environment": "environment", "version": "version",
                     "instance_id": "instance_id"}
#: What dictConfig passes to a formatter given by "class" (everything else is dropped).
_CLASS_FORMATTER_KEYS = frozenset({"class", "format", "datefmt", "style", "validate", "defaults", "."})


# -- rule 3: handlers in front of a KafkaLogHandler ---------------------------------------------------
def fronts(tree: LoggerTree) -> Iterator[Finding]:
    """A QueueHandler or MemoryHandler in front of a KafkaLogHandler: its records lose their own context."""
    seen: set[int] = set()
    handlers = [h for lg in tree.loggers.values() for h in lg.handlers]
    handlers += list(named_handlers().values())
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
            if isinstance(front.formatter, JsonFormatter):
                continue  # its prepare() keeps the record as captured at the call: shipped as such
            yield Finding(
                "queue-handler", name,
                f"handler {name!r} is a QueueHandler in front of handler{plural} {quoted(kafka)}: its prepare() "
                "flattens each record (the exception becomes part of the message text, no error fields), and "
                f"{quoted(kafka)} then runs on the listener's thread, where the caller's bound context and "
                "active trace are not set: records arrive without their correlation and trace ids",
                f"give {name!r} a logkafka.JsonFormatter (\"formatter\": a formatter with \"()\": "
                "\"logkafka.JsonFormatter\"): the record then reaches the listener as captured at the call, and "
                f"ships as it would without the queue. Or attach {quoted(kafka)} to the logger directly: a "
                "KafkaLogHandler never blocks the caller (it only queues the record)",
            )
        elif isinstance(front, logging.handlers.MemoryHandler):
            yield Finding(
                "memory-handler", name,
                f"handler {name!r} is a MemoryHandler in front of handler{plural} {quoted(kafka)}: records wait in "
                "its buffer and are passed on by whichever call fills or flushes it, so they carry that call's "
                "bound context and trace ids, not their own, and the buffer is lost if the process dies",
                f"attach {quoted(kafka)} to the logger directly (in its \"handlers\"): a KafkaLogHandler "
                "already batches records on its own thread",
            )


# -- rule 4: identity -------------------------------------------------------------------------------
def _spec(config: Mapping[str, Any], section: str, name: Any) -> Mapping[str, Any]:
    specs = config.get(section)
    spec = specs.get(name) if isinstance(specs, Mapping) and isinstance(name, str) else None
    return spec if isinstance(spec, Mapping) else {}


def identity(config: Mapping[str, Any], targets: Collection[Target]) -> Iterator[Finding]:
    """A formatter given by "class" (its settings ignored), and a handler and formatter naming different
    service identities."""
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
        own = explicit_identity(handler) if isinstance(handler, KafkaLogHandler) else {}
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
        sharing = sorted(n for n, h in named_handlers().items()
                         if h is not handler and getattr(h, "formatter", None) is fmt)
        others = (f"handler{'s' if len(sharing) > 1 else ''} {quoted(sharing)}, sharing the formatter, "
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


def spool(targets: Collection[Target]) -> Iterator[Finding]:
    """A handler whose spool directory the application could not write."""
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
def ext(targets: Collection[Target]) -> Iterator[Finding]:
    """An ``ext://`` or ``cfg://`` text inside producer_config, which dictConfig does not resolve."""
    for target in targets:
        for key, value in target.handler.settings.producer_config.items():
            if isinstance(value, str) and value.startswith(("ext://", "cfg://")):
                yield Finding(
                    "ext-in-producer-config", target.name,
                    f"handler {target.name!r}: producer_config[{key!r}] is the text {value!r}: dictConfig resolves "
                    f"{value[:6]} only in a handler's own settings, not inside producer_config, so librdkafka gets "
                    "this text, not the object it names",
                    f"put the value itself in producer_config: build the configuration in Python (a Python "
                    f"configuration file can import it: {{{key!r}: {value[6:]}}}), or set it in code (only "
                    "settings whose values are functions, such as oauth_cb, are imported by the handler)",
                )
