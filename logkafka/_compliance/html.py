"""The report as one self-contained HTML page: no script, no external style, font or image; charts are
SVG written here (bars need no library); prints on A4."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Any

_CSS = """
:root { --ink: #1b1f24; --muted: #5b6570; --line: #d7dce1; --ok: #2e7d32; --bad: #c62828; --warn: #b26a00;
        --accent: #2f5bb7; --bg: #ffffff; --panel: #f5f7f9; }
* { box-sizing: border-box; }
body { margin: 0; padding: 28px 36px; color: var(--ink); background: var(--bg);
       font: 13px/1.45 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 16px; margin: 26px 0 8px; border-bottom: 1px solid var(--line);
     padding-bottom: 4px; } h3 { font-size: 13px; margin: 14px 0 6px; color: var(--muted); }
.sub { color: var(--muted); margin: 0 0 18px; }
.cards { display: grid; grid-template-columns: repeat(4, 1fr); gap: 10px; }
.card { background: var(--panel); border: 1px solid var(--line); border-radius: 6px; padding: 10px 12px; }
.card b { display: block; font-size: 20px; } .card span { color: var(--muted); font-size: 12px; }
.pass { color: var(--ok); } .fail { color: var(--bad); }
.verdict { border-radius: 6px; padding: 10px 14px; margin: 14px 0; font-weight: 600; border: 1px solid; }
.verdict.pass { background: #edf7ee; border-color: #a5d6a7; }
.verdict.fail { background: #fdecea; border-color: #ef9a9a; }
.charts { display: grid; grid-template-columns: 1fr 1fr; gap: 16px; }
figure { margin: 0; background: var(--panel); border: 1px solid var(--line); border-radius: 6px; padding: 10px; }
figcaption { font-weight: 600; margin-bottom: 6px; } svg { width: 100%; height: auto; display: block; }
table { border-collapse: collapse; width: 100%; margin: 4px 0 10px; font-variant-numeric: tabular-nums; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: var(--panel); font-weight: 600; } td.n, th.n { text-align: right; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12px; word-break: break-all; }
.legend span { display: inline-block; margin-right: 12px; color: var(--muted); font-size: 12px; }
.legend i { display: inline-block; width: 10px; height: 10px; margin-right: 4px; border-radius: 2px; }
.note { color: var(--muted); font-size: 12px; }
@page { size: A4; margin: 14mm; }
@media print { body { padding: 0; font-size: 11px; } .charts { grid-template-columns: 1fr 1fr; }
  figure, table, .cards, .verdict { break-inside: avoid; } h2 { break-after: avoid; } }
"""
_OK, _BAD, _DENY = "#2e7d32", "#c62828", "#b26a00"


def _n(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else escape(str(value))


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]], numeric: Sequence[int] = (),
           empty: str = "none") -> str:
    if not rows:
        return f'<p class="note">{escape(empty)}</p>'
    head = "".join(f'<th class="n">{escape(h)}</th>' if i in numeric else f"<th>{escape(h)}</th>"
                   for i, h in enumerate(headers))
    body = "".join("<tr>" + "".join(f'<td class="n">{_n(c)}</td>' if i in numeric else f"<td>{_cell(c)}</td>"
                                    for i, c in enumerate(row)) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _cell(value: Any) -> str:
    return "" if value is None else f"<code>{escape(str(value))}</code>" if isinstance(value, str) and len(
        value) > 40 else escape(str(value))


def _nice(n: int) -> int:
    """The smallest of 4, 8, 20, 40, 80, 200... at least ``n``: four equal whole-number steps up to it."""
    size = 4
    while size < n:
        for factor in (2, 2.5, 2):
            size = int(size * factor)
            if size >= n:
                break
    return size


def bars_by_day(days: Sequence[str], series: Sequence[tuple[str, str, Sequence[int]]], title: str) -> str:
    """A stacked bar chart, one bar a day; ``series``: (name, colour, values)."""
    width, height, left, bottom = 640, 220, 44, 36
    top = _nice(max([sum(v[i] for _, _, v in series) for i in range(len(days))] + [1]))
    step = (width - left - 8) / max(1, len(days))
    bar = max(2.0, step * 0.7)
    out = [f'<svg viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">']
    for k in range(5):
        y = 8 + (height - bottom - 8) * k / 4
        value = round(top * (4 - k) / 4)
        out.append(f'<line x1="{left}" x2="{width - 4}" y1="{y:.1f}" y2="{y:.1f}" stroke="#d7dce1"/>'
                   f'<text x="{left - 6}" y="{y + 4:.1f}" font-size="10" text-anchor="end" fill="#5b6570">'
                   f"{value:,}</text>")
    for i, day in enumerate(days):
        x = left + i * step + (step - bar) / 2
        y = height - bottom
        for name, colour, values in series:
            h = (height - bottom - 8) * values[i] / top
            if h > 0:
                y -= h
                out.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" fill="{colour}">'
                           f"<title>{escape(day)}: {values[i]:,} {escape(name)}</title></rect>")
        if len(days) <= 16 or i % max(1, len(days) // 8) == 0:
            out.append(f'<text x="{x + bar / 2:.1f}" y="{height - bottom + 14}" font-size="10" text-anchor="middle" '
                       f'fill="#5b6570">{escape(day[5:])}</text>')
    out.append("</svg>")
    legend = "".join(f'<span><i style="background:{c}"></i>{escape(n)}</span>' for n, c, _ in series)
    return f'<figure><figcaption>{escape(title)}</figcaption>{"".join(out)}<div class="legend">{legend}</div></figure>'


def bars(items: Sequence[tuple[str, int]], title: str, colour: str = "#2f5bb7") -> str:
    """A horizontal bar chart of (label, count), largest first."""
    width, row = 640, 22
    height = max(1, len(items)) * row + 8
    top = max([n for _, n in items] + [1])
    out = [f'<svg viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">']
    for i, (label, n) in enumerate(items):
        y = 4 + i * row
        w = (width - 260) * n / top
        out.append(f'<text x="0" y="{y + 14}" font-size="11" fill="#1b1f24">{escape(label[:34])}</text>'
                   f'<rect x="200" y="{y + 3}" width="{max(1.0, w):.1f}" height="{row - 8}" fill="{colour}">'
                   f"<title>{escape(label)}: {n:,}</title></rect>"
                   f'<text x="{206 + w:.1f}" y="{y + 14}" font-size="11" fill="#5b6570">{n:,}</text>')
    if not items:
        out.append('<text x="0" y="16" font-size="11" fill="#5b6570">none</text>')
    out.append("</svg>")
    return f"<figure><figcaption>{escape(title)}</figcaption>{''.join(out)}</figure>"


def render(report: dict[str, Any]) -> str:
    """The whole page."""
    r = report
    title = f"Audit report {r['date_range']['from'][:10]} to {r['date_range']['to'][:10]}"
    return "\n".join([
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f"<style>{_CSS}</style></head><body>",
        _summary(r), _charts(r), _tables(r), _checks(r), "</body></html>",
    ])


def _summary(r: dict[str, Any]) -> str:
    sec, chain = r["security"], r["chain"]
    failed = [why for why, bad in ((f"{r['redaction_check']['unredacted_secrets']:,} unredacted secrets",
                                    r["redaction_check"]["unredacted_secrets"]),
                                   (f"{r['schema_check']['invalid']:,} records fail the schema",
                                    r["schema_check"]["invalid"]),
                                   ("the chain is not intact", not chain["intact"])) if bad]
    verdict = ("pass", "All checks passed: no secret found, every record matches its schema, the chain is intact."
               ) if r["passed"] else ("fail", "Checks failed: " + "; ".join(failed))
    cards = [("audited operations", f"{r['total_events']:,}"), ("failure rate", f"{r['error_rate'] * 100:.2f}%"),
             ("tenants", f"{r['tenants']:,}"),
             ("security denies", f"{sec['deny']:,} of {sec['allow'] + sec['deny']:,}")]
    return "".join([
        "<h1>Audit and security report</h1>",
        f'<p class="sub">{escape(r["date_range"]["from"])} to {escape(r["date_range"]["to"])} · topics '
        f'{escape(", ".join(r["topics"]))} · {r["records_read"]:,} records read · generated '
        f'{escape(r["generated_at"])}</p>',
        f'<div class="verdict {verdict[0]}">{escape(verdict[1])}</div>',
        '<div class="cards">' + "".join(f'<div class="card"><b>{escape(v)}</b><span>{escape(k)}</span></div>'
                                        for k, v in cards) + "</div>",
    ])


def _charts(r: dict[str, Any]) -> str:
    days = [d["day"] for d in r["per_day"]]
    outcomes = [("success", _OK, [d["success"] for d in r["per_day"]]),
                ("failure", _BAD, [d["failure"] for d in r["per_day"]])]
    denies = [("deny", _DENY, [d["deny"] for d in r["security"]["denies_per_day"]])]
    return "".join([
        '<h2>Activity</h2><div class="charts">',
        bars_by_day(days, outcomes, "Audit records per day by outcome"),
        bars([(o["action"], o["count"]) for o in r["operations"][:12]], "Top actions"),
        bars_by_day(days, denies, "Security denies per day"),
        bars([(a["actor"], a["count"]) for a in r["top_actors"][:12]], "Top actors", "#6a4fb3"),
        "</div>",
    ])


def _tables(r: dict[str, Any]) -> str:
    return "".join([
        "<h2>Operations</h2>",
        _table(["action", "count", "failures"], [(o["action"], o["count"], o["failures"]) for o in r["operations"]],
               (1, 2)),
        "<h2>Tenants, actors, resources</h2>",
        _table(["tenant", "audit records"], [(t["tenant_id"], t["count"]) for t in r["by_tenant"]], (1,)),
        _table(["actor", "records"], [(a["actor"], a["count"]) for a in r["top_actors"]], (1,)),
        _table(["resource", "records"], [(x["resource"], x["count"]) for x in r["top_resources"]], (1,)),
        "" if r["top_exact"] else '<p class="note">More distinct values than counted exactly: the top lists are '
        "approximate (heavy hitters).</p>",
        "<h2>Security</h2>",
        _table(["event type", "allow", "deny"],
               [(e["event_type"], e["allow"], e["deny"]) for e in r["security"]["by_event_type"]], (1, 2)),
    ])


def _checks(r: dict[str, Any]) -> str:
    chain = r["chain"]
    keyed = "" if chain["keyed"] or not chain["unverified"] else " (no key given: keyed chains were not checked)"
    return "".join([
        "<h2>Checks</h2>",
        "<h3>Redaction: records holding what redaction would have removed (the values are not shown)</h3>",
        _table(["topic", "partition", "offset", "event id", "field", "rule"],
               [(w["topic"], w["partition"], w["offset"], w["event_id"], w["field"], w["rule"])
                for w in r["redaction_check"]["where"]], (1, 2), "none found"),
        "<h3>Schema: records that do not match the shipped JSON Schemas</h3>",
        _table(["topic", "partition", "offset", "event id", "error"],
               [(w["topic"], w["partition"], w["offset"], w["event_id"], w["error"])
                for w in r["schema_check"]["where"]], (1, 2), "none"),
        f'<h3>Duplicates: {r["duplicates"]["repeated_event_ids"]:,} repeated event ids (at-least-once delivery)</h3>',
        "<h3>Hash chain</h3>",
        f'<p class="{"pass" if chain["intact"] else "fail"}">{"Intact" if chain["intact"] else "Not intact"}: '
        f'{chain["chained"]:,} of {chain["records"]:,} records chained, {len(chain["writers"]):,} writers{keyed}</p>',
        _table(["writer", "stream", "records", "gaps", "missing", "mismatches", "conflicts", "reordered", "follows"],
               [(w["writer"], w["stream"], w["records"], w["gaps"], w["missing"], w["mismatches"], w["conflicts"],
                 w["reordered"], w["follows"] or ("(unknown)" if w["restart"] else "")) for w in chain["writers"]],
               (2, 3, 4, 5, 6, 7)),
        _table(["problem", "topic", "partition", "offset", "event id", "detail"],
               [(p["kind"], p.get("topic"), p.get("partition"), p.get("offset"), p.get("event_id"), p["detail"])
                for p in chain["problems"]], (2, 3), "no problem found"),
    ])
