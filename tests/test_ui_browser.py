"""``logkafka ui``'s page in a real browser (Debian's chromium driven by Playwright) against a real broker.

An incident is logged to the three streams of a namespace of this module's own before the viewer starts (with
the records a viewer must survive: markup in every place, a value that is not JSON, every field preset); the
tests open the page as a user would and compare what it shows with what was logged. Records logged while the
page is open go to a second viewer, so that the incident's filters keep their exact answers. The broker-down
test has a broker of its own. Without chromium the tests skip locally, and fail when ``CI`` is set.

``LOGKAFKA_SCREENSHOTS=docs`` writes the README's screenshots (docs/ui*.png) as the tests take them.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _ui_support import (
    ARCHIVE_STEPS,
    CHROMIUM_ARGS,
    NOT_JSON,
    XSS_CODE,
    XSS_HEADER,
    XSS_KEY,
    XSS_MESSAGE,
    XSS_TENANT,
    Incident,
    Services,
    UiProcess,
    create_stream_topics,
    find_chromium,
    log_incident,
    topics_of,
    ui_process,
    unique,
)
from playwright.sync_api import expect, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
STATIC = ROOT / "logkafka" / "_ui" / "static"
VIEWPORT = {"width": 1400, "height": 860}
# "within a second", checked generously: a loaded CI machine (the suite runs 4 workers on 2 cores) may be slow
LIVE_MS = 10_000


# -- the browser, the viewers, a tab ---------------------------------------------------------------

@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One chromium for the module (each test has a context of its own)."""
    chromium = find_chromium()
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


class Seeded:
    """The viewer of the incident: the process, what was logged, the namespace."""

    def __init__(self, ui: UiProcess, incident: Incident, namespace: str) -> None:
        self.ui, self.incident, self.namespace = ui, incident, namespace
        self.url = ui.base


@pytest.fixture(scope="module")
def seeded(kafka_broker: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    """The incident, logged before ``logkafka ui`` starts (what it shows on open is history); nothing is logged
    to its topics afterwards."""
    namespace = unique("uiseed")
    create_stream_topics(kafka_broker.bootstrap_servers, namespace)
    incident = log_incident(kafka_broker.bootstrap_servers, namespace, tmp_path_factory.mktemp("spool"))
    with ui_process(kafka_broker.bootstrap_servers, "--namespace", namespace) as ui:
        ui.wait_for_records(len(incident.records))
        yield Seeded(ui, incident, namespace)


class Live:
    """A viewer of topics the tests log to while the page is open."""

    def __init__(self, ui: UiProcess, services: Services) -> None:
        self.ui, self.services = ui, services
        self.url = ui.base


@pytest.fixture(scope="module")
def live(kafka_broker: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    namespace = unique("uilive")
    servers = kafka_broker.bootstrap_servers
    create_stream_topics(servers, namespace)
    services = Services(servers, namespace, tmp_path_factory.mktemp("spool"))
    try:
        with ui_process(servers, "--namespace", namespace) as ui:
            yield Live(ui, services)
    finally:
        services.close()


class Tab:
    """A page in a context of its own (UTC, clipboard allowed) that remembers what went wrong in it: uncaught
    errors, Content-Security-Policy violations, dialogs (an XSS payload's alert())."""

    def __init__(self, browser: Any) -> None:
        self.context = browser.new_context(viewport=VIEWPORT, timezone_id="UTC", color_scheme="light",
                                           permissions=["clipboard-read", "clipboard-write"])
        self.page = self.context.new_page()
        self.problems: list[str] = []
        self.dialogs: list[str] = []
        self.page.on("pageerror", lambda exc: self.problems.append(f"uncaught error: {exc}"))
        self.page.on("console", self._console)
        self.page.on("dialog", self._dialog)

    def _console(self, message: Any) -> None:
        if "Content Security Policy" in message.text or "Content-Security-Policy" in message.text:
            self.problems.append(f"CSP: {message.text}")

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def open(self, url: str) -> Any:
        self.page.goto(url)
        expect(self.page.locator("#mode")).not_to_have_text("Starting…")
        return self.page

    def rows(self) -> Any:
        return self.page.locator("#sizer .row")

    def row(self, message: str) -> Any:
        """The row whose message is exactly ``message``."""
        return self.page.locator("#sizer .row").filter(has=self.page.locator(".msg", has_text=re.compile(
            "^" + re.escape(message) + "$")))

    def expect_messages(self, messages: list[str], timeout: float = 10_000) -> None:
        """The rows show exactly these messages, in this order."""
        expect(self.page.locator("#sizer .row .msg")).to_have_text(messages, timeout=timeout)

    def screenshot(self, name: str) -> None:
        """docs/<name>.png, when LOGKAFKA_SCREENSHOTS names the directory."""
        target = os.environ.get("LOGKAFKA_SCREENSHOTS")
        if target:
            folder = Path(target) if Path(target).is_absolute() else ROOT / target
            folder.mkdir(parents=True, exist_ok=True)
            self.page.mouse.move(0, 0)
            self.page.screenshot(path=str(folder / f"{name}.png"))

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def tab(browser: Any) -> Iterator[Tab]:
    opened = Tab(browser)
    yield opened
    opened.close()
    assert not opened.problems, opened.problems
    assert not opened.dialogs, f"a dialog opened: {opened.dialogs}"


def wait_for(condition: Any, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return bool(condition())


# -- history, filters, the request view ------------------------------------------------------------

def test_on_open_the_records_of_the_three_streams_show_merged_in_time_order(seeded: Seeded, tab: Tab) -> None:
    """Records logged before the page (and the viewer) started are there, one list across the three streams,
    oldest first, newest at the bottom; the view says it is live."""
    page = tab.open(seeded.url)
    tab.expect_messages(seeded.incident.messages())
    expect(page.locator("#mode")).to_have_text("Live")
    streams = page.locator("#sizer .row .c-stream").all_text_contents()
    assert {"application", "audit", "security"} <= set(streams)
    expect(page.locator("#footer")).to_contain_text(f"{len(seeded.incident.records)} records")
    expect(page.locator("#kafka-state")).to_have_text("Kafka: ok, 3 topics")
    tab.screenshot("ui")


FILTERS = [
    ("level", "WARNING"),
    ("stream", "audit,security"),
    ("service", "payments"),
    ("logger", "checkout"),
    ("code", "PAY_TIMEOUT,ORDER_FAILED"),
    ("correlation_id", "req-1002"),
    ("tenant_id", "acme"),
    ("q", "timed out"),
]


@pytest.mark.parametrize(("name", "value"), FILTERS, ids=[name for name, _ in FILTERS])
def test_each_url_filter_shows_exactly_its_records(seeded: Seeded, tab: Tab, name: str, value: str) -> None:
    """``?<field>=<value>`` shows exactly the records of the three streams that match, in time order, and the
    form shows the filter."""
    from urllib.parse import urlencode

    expected = seeded.incident.messages(name, value)
    assert expected and len(expected) < len(seeded.incident.records)
    page = tab.open(f"{seeded.url}?{urlencode({name: value})}")
    tab.expect_messages(expected)
    if name == "stream":
        pressed = page.locator(".toggle[aria-pressed=true]").all_text_contents()
        assert sorted(pressed) == sorted(value.split(","))
    else:
        expect(page.locator(f"#f-{name}")).to_have_value(value)


def test_filters_combine_and_trace_id_filters_too(seeded: Seeded, tab: Tab) -> None:
    tab.open(f"{seeded.url}?level=ERROR&service=payments&correlation_id=req-1002&tenant_id=globex"
             "&stream=application&q=timed")
    tab.expect_messages(["payment timed out after 3000 ms"])
    tab.open(f"{seeded.url}?trace_id={seeded.incident.trace_id}")
    tab.expect_messages([r.message for r in seeded.incident.records if r.traced])


def test_a_bad_filter_is_named_and_breaks_nothing(seeded: Seeded, tab: Tab) -> None:
    page = tab.open(f"{seeded.url}?level=LOUD")
    expect(page.locator("#error-banner")).to_contain_text("level: unknown level 'LOUD'")
    expect(page.locator("#f-level")).to_have_value("LOUD")
    page.select_option("#f-level", "CRITICAL")
    expect(page.locator("#error-banner")).to_be_hidden()
    tab.expect_messages(seeded.incident.messages("level", "CRITICAL"))


def test_filters_set_in_the_page_go_to_the_url(seeded: Seeded, tab: Tab) -> None:
    """Typing, choosing and toggling filters changes the address (a link to paste in a ticket) and the rows."""
    page = tab.open(seeded.url)
    tab.expect_messages(seeded.incident.messages())
    page.fill("#f-service", "payments")
    page.press("#f-service", "Enter")
    expect(page).to_have_url(re.compile(r"\?service=payments$"))
    tab.expect_messages(seeded.incident.messages("service", "payments"))
    page.select_option("#f-level", "WARNING")
    expect(page).to_have_url(re.compile(r"\?level=WARNING&service=payments$"))
    tab.expect_messages([r.message for r in seeded.incident.records
                         if r.matches("service", "payments") and r.matches("level", "WARNING")])
    page.click("#clear")
    expect(page).to_have_url(seeded.url)
    page.click(".toggle[data-stream=application]")
    expect(page).to_have_url(re.compile(r"\?stream=audit,security$"))
    tab.expect_messages(seeded.incident.messages("stream", "audit,security"))
    page.keyboard.press("/")
    expect(page.locator("#f-q")).to_be_focused()
    page.keyboard.type("ord-5522")
    expect(page).to_have_url(re.compile(r"q=ord-5522"))
    tab.expect_messages(["audit: system order.cancel order:ord-5522: failure"])


def test_one_click_on_a_correlation_id_shows_the_request_across_the_streams(seeded: Seeded, tab: Tab) -> None:
    """From a filtered list, a click on a correlation id shows every record of that request from the three
    streams in time order (the other filters ignored), each with its offset from the first; Back returns."""
    page = tab.open(f"{seeded.url}?level=ERROR")
    tab.row("payment timed out after 3000 ms").locator(".c-correlation_id button").click()
    expect(page).to_have_url(re.compile(r"view=request&correlation_id=req-1002&around=\d+"))
    expected = seeded.incident.messages("correlation_id", "req-1002")
    tab.expect_messages(expected)
    assert {"application", "audit", "security"} == set(page.locator("#sizer .row .c-stream").all_text_contents())
    offsets = page.locator("#sizer .row .c-offset").all_text_contents()
    assert offsets[0] == "+0 ms"
    values = [int(re.sub(r"[^\d]", "", o)) for o in offsets]
    assert values == sorted(values) and values[-1] > 0
    expect(page.locator("#context-bar")).to_contain_text(f"{len(expected)} records across")
    tab.row("order ord-5522 failed: payment timed out").click()
    expect(page.locator("#detail")).to_be_visible()
    tab.screenshot("ui-request")
    page.keyboard.press("Escape")
    expect(page.locator("#detail")).to_be_hidden()
    page.click("#back")
    expect(page).to_have_url(f"{seeded.url}?level=ERROR")
    tab.expect_messages(seeded.incident.messages("level", "ERROR"))


def test_the_request_view_by_address_and_by_trace_id(seeded: Seeded, tab: Tab) -> None:
    page = tab.open(f"{seeded.url}?view=request&correlation_id=req-1003&level=CRITICAL")
    tab.expect_messages(seeded.incident.messages("correlation_id", "req-1003"))
    expect(page.locator("#f-service")).to_be_disabled()  # the request view ignores the filters
    page.click("#tab-request .tab-close")
    tab.expect_messages(seeded.incident.messages())
    tab.row("payment timed out after 3000 ms").click()
    page.click("#detail-trace")
    expect(page).to_have_url(re.compile(f"view=request&trace_id={seeded.incident.trace_id}"))
    tab.expect_messages([r.message for r in seeded.incident.records if r.traced])


# -- one record ------------------------------------------------------------------------------------

def test_a_record_opens_whole_with_copy_buttons_and_a_permalink(seeded: Seeded, tab: Tab) -> None:
    page = tab.open(seeded.url)
    tab.row("payment timed out after 3000 ms").click()
    detail = page.locator("#detail")
    expect(detail).to_be_visible()
    expect(page.locator("#mode")).to_have_text("Paused")  # opening a record pauses the live view
    shown = page.locator("#detail-json").text_content() or ""
    record = json.loads(shown)
    assert record["message"] == "payment timed out after 3000 ms" and record["code"] == "PAY_TIMEOUT"
    assert record["trace_id"] == seeded.incident.trace_id and record["error"]["type"] == "TimeoutError"
    assert shown == json.dumps(record, indent=2, ensure_ascii=False)  # pretty-printed
    expect(detail).to_contain_text(topics_of(seeded.namespace)["application"])
    expect(detail.locator('dt:text-is("service") + dd .value')).to_have_text("payments")
    expect(detail.locator('dt:text-is("key") + dd .value')).to_have_text("payments")  # the handler's key
    page.click("#copy-json")
    expect(page.locator("#copy-json")).to_have_text("Copied ✓")
    assert json.loads(page.evaluate("navigator.clipboard.readText()")) == record
    page.click("#raw-toggle")
    raw = page.locator("#detail-json").text_content() or ""
    assert "\n" not in raw and json.loads(raw) == record
    page.click("#copy-link")
    expect(page.locator("#copy-link")).to_have_text("Copied ✓")
    link = page.evaluate("navigator.clipboard.readText()")
    assert link.startswith(seeded.url) and "record=" in link and "token" not in link
    page.keyboard.press("Escape")
    expect(detail).to_be_hidden()
    expect(page.locator("#mode")).to_have_text("Live")
    other = page.context.new_page()
    try:
        other.goto(link)
        expect(other.locator("#detail .message-full")).to_have_text("payment timed out after 3000 ms")
    finally:
        other.close()
    # its context: the same service a minute either side, read back from Kafka, the record still open
    tab.row("payment timed out after 3000 ms").click()
    page.click("#detail-context")
    expect(page.locator("#mode")).to_have_text("History")
    expect(page).to_have_url(re.compile(r"\?service=payments&from=.*&to=.*&record="))
    tab.expect_messages(seeded.incident.messages("service", "payments"))
    expect(page.locator("#detail .message-full")).to_have_text("payment timed out after 3000 ms")
    expect(page.locator("#sizer .row.selected .msg")).to_have_text("payment timed out after 3000 ms")


def test_markup_in_a_record_is_shown_as_text_and_runs_nothing(seeded: Seeded, tab: Tab) -> None:
    """Markup in the message, in fields, in the Kafka key and in a header is shown as the text it is: no
    element is made of it, nothing runs, no dialog opens; the page has only its own script."""
    page = tab.open(seeded.url)
    row = tab.row(XSS_MESSAGE)
    expect(row).to_have_count(1)
    expect(row.locator(".c-code")).to_have_text(XSS_CODE)
    expect(row.locator(".c-tenant_id")).to_have_text(XSS_TENANT)
    row.click()
    expect(page.locator("#detail .message-full")).to_have_text(XSS_MESSAGE)
    tab.row("markup in the key and a header").click()
    detail = page.locator("#detail")
    expect(detail.locator("dd", has_text=XSS_KEY)).to_have_count(1)
    expect(detail.locator("dd", has_text=XSS_HEADER)).to_have_count(1)
    page.goto(f"{seeded.url}?view=request&correlation_id=" + "%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E")
    expect(page.locator("#context-bar")).to_contain_text("<img src=x onerror=alert(1)>")
    page.goto(f"{seeded.url}?q=%3Cscript%3Ealert(2)%3C%2Fscript%3E")
    expect(page.locator("#f-q")).to_have_value("<script>alert(2)</script>")
    assert page.evaluate("typeof window.__xss") == "undefined"
    assert page.evaluate("document.querySelectorAll('#sizer img, #sizer svg, #sizer script, #detail img, "
                         "#detail svg, #detail script, #context-bar img').length") == 0
    assert page.evaluate("[...document.scripts].map(s => new URL(s.src).pathname)") == ["/static/app.js"]
    time.sleep(0.3)  # an onerror handler would run at once: give it the chance to (and fail the test)
    assert page.evaluate("typeof window.__xss") == "undefined" and not tab.dialogs


def test_a_value_that_is_not_json_shows_raw_and_flagged(seeded: Seeded, tab: Tab) -> None:
    page = tab.open(seeded.url)
    row = tab.row(NOT_JSON)
    expect(row.locator(".flag")).to_have_text("not JSON")
    expect(row.locator(".c-level")).to_have_text("—")
    other = tab.row('{"order":7,"total":9.5}')
    expect(other.locator(".flag")).to_have_text("not a log record")
    row.click()
    expect(page.locator("#detail-json")).to_have_text(NOT_JSON)
    expect(page.locator("#detail")).to_contain_text("Value (not JSON)")
    expect(page.locator("#detail .flag")).to_have_text("not JSON")


def test_every_field_preset_and_the_envelope_give_the_row(seeded: Seeded, tab: Tab) -> None:
    page = tab.open(f"{seeded.url}?code=PRESET")
    expected = seeded.incident.messages("code", "PRESET")
    tab.expect_messages(expected)
    services = page.locator("#sizer .row .c-service").all_text_contents()
    assert services == ["preset-ecs-flat", "preset-datadog-flat", "preset-otel-flat", "preset-default-envelope"]
    for cells in ("c-level", "c-logger", "c-tenant_id", "c-correlation_id"):
        assert len(set(page.locator(f"#sizer .row .{cells}").all_text_contents())) == 1, cells
    expect(page.locator("#sizer .row .c-level").first).to_have_text("ERROR")
    expect(page.locator("#sizer .row .c-tenant_id").first).to_have_text("initech")
    expect(page.locator("#sizer .row .c-correlation_id").first).to_have_text("req-preset")


def test_audit_and_security_views(seeded: Seeded, tab: Tab) -> None:
    """The audit view: actor, action, resource, outcome (failures stand out), tenant, diff; the security view:
    event, user, resource, decision (denies stand out)."""
    page = tab.open(f"{seeded.url}?view=audit")
    audits = [r for r in seeded.incident.records if r.stream == "audit"]
    expect(page.locator("#sizer .row .c-actor")).to_have_text([r.audit["actor"] for r in audits])
    expect(page.locator("#sizer .row .c-action")).to_have_text([r.audit["action"] for r in audits])
    expect(page.locator("#sizer .row .c-outcome")).to_have_text([r.audit["outcome"] for r in audits])
    failed = page.locator("#sizer .row.failure")
    expect(failed).to_have_count(1)
    expect(failed.locator(".c-resource")).to_have_text("order:ord-5522")
    expect(failed.locator(".c-diff")).to_have_text("status: pending → cancelled")
    expect(failed.locator(".c-tenant_id")).to_have_text("globex")
    failed.click()
    audit_fields = page.locator("#detail h3:text-is('audit') + dl")
    expect(audit_fields.locator('dt:text-is("outcome") + dd .value')).to_have_text("failure")
    expect(audit_fields.locator('dt:text-is("diff") + dd .value')).to_have_text("status: pending → cancelled")
    tab.screenshot("ui-audit")
    page.keyboard.press("Escape")
    page.click(".tab[data-view=security]")
    expect(page).to_have_url(f"{seeded.url}?view=security")
    securities = [r for r in seeded.incident.records if r.stream == "security"]
    expect(page.locator("#sizer .row .c-decision")).to_have_text([r.security["decision"] for r in securities])
    denied = page.locator("#sizer .row.deny")
    expect(denied).to_have_count(sum(r.security["decision"] == "deny" for r in securities))
    expect(denied.first.locator(".c-user_id")).to_have_text("u-42")
    tab.screenshot("ui-security")


def test_back_in_time_a_range_read_a_page_at_a_time(seeded: Seeded, tab: Tab) -> None:
    """A from-to range reads the topics from that time (not the live tail), a page at a time; leaving it
    returns to live."""
    start = seeded.incident.archive_from_ms

    def iso(ms: int) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms / 1000))

    archive = [f"nightly archive step {i}" for i in range(ARCHIVE_STEPS)]
    page = tab.open(f"{seeded.url}?from={iso(start - 60_000)}&to={iso(start + 3600_000)}&limit=5")
    expect(page.locator("#mode")).to_have_text("History")
    tab.expect_messages(archive[:5])
    page.click("#load-more")
    tab.expect_messages(archive[:10])
    page.click("#load-more")
    tab.expect_messages(archive)
    expect(page.locator("#range-end")).to_be_visible()
    page.click("#back-to-live")
    expect(page.locator("#mode")).to_have_text("Live")
    tab.expect_messages(seeded.incident.messages())
    # the same from the inputs (in the zone the page shows: UTC here)
    page.fill("#from", time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime((start + 270_000) / 1000)))  # 4.5 min
    page.fill("#to", time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime((start + 450_000) / 1000)))  # 7.5 min
    page.click("#read-range")
    expect(page).to_have_url(re.compile(r"from=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ&to="))
    tab.expect_messages(archive[5:8])


def test_the_charts_and_the_export_link(seeded: Seeded, tab: Tab) -> None:
    page = tab.open(f"{seeded.url}?service=payments")
    expect(page.locator("#chart-errors rect.bar").first).to_be_attached(timeout=LIVE_MS)
    expect(page.locator("#chart-errors-caption")).to_contain_text("in all")
    link = page.locator("#export")
    expect(link).to_be_visible()
    href = link.get_attribute("href") or ""
    assert href == "/api/export?service=payments"
    lines = page.request.get(seeded.url.rstrip("/") + href).text().splitlines()
    assert [json.loads(line)["message"] for line in lines] == seeded.incident.messages("service", "payments")


# -- live ------------------------------------------------------------------------------------------

def test_a_record_logged_after_the_page_opened_appears_without_reload(live: Live, tab: Tab) -> None:
    page = tab.open(live.url)
    page.evaluate("window.__sameDocument = true")
    message = unique("arrived live ")
    live.services.log("orders", "orders.api", "ERROR", message, code="LIVE", correlation_id="req-live")
    row = tab.row(message)
    expect(row).to_be_visible(timeout=LIVE_MS)
    expect(row.locator(".c-level")).to_have_text("ERROR")
    assert page.evaluate("window.__sameDocument") is True


def test_a_live_view_filtered_by_the_url_gets_only_matching_records(live: Live, tab: Tab) -> None:
    service = unique("svc-")
    page = tab.open(f"{live.url}?level=ERROR&service={service}")
    quiet, loud = unique("quiet "), unique("loud ")
    live.services.log(service, "svc.main", "INFO", quiet)
    live.services.log(service, "svc.main", "ERROR", loud)
    live.services.log("elsewhere", "svc.main", "ERROR", unique("other service "))
    tab.expect_messages([loud], timeout=LIVE_MS)
    expect(page.locator("#sizer .row")).to_have_count(1)


def test_pause_buffers_what_arrives_and_resume_shows_it(live: Live, tab: Tab) -> None:
    """Paused, new records wait with an "N new" count; Resume shows them; the view always says which it is."""
    service = unique("pause-")
    page = tab.open(f"{live.url}?service={service}")
    first = unique("before the pause ")
    live.services.log(service, "svc.main", "INFO", first)
    tab.expect_messages([first], timeout=LIVE_MS)
    page.click("#pause")
    expect(page.locator("#mode")).to_have_text("Paused")
    later = [unique("while paused "), unique("while paused ")]
    for message in later:
        live.services.log(service, "svc.main", "INFO", message)
    expect(page.locator("#new-count")).to_have_text("2 new records — show", timeout=LIVE_MS)
    tab.expect_messages([first])
    page.click("#new-count")
    expect(page.locator("#mode")).to_have_text("Live")
    tab.expect_messages([first, *later])
    page.keyboard.press("p")
    expect(page.locator("#mode")).to_have_text("Paused")
    page.keyboard.press("p")
    expect(page.locator("#mode")).to_have_text("Live")


def test_kafka_going_away_shows_a_banner_and_the_view_recovers(own_broker: Any, browser: Any,
                                                               tmp_path: Path) -> None:
    """Killing the broker shows "Kafka is unreachable" within 20 s; when it is back (empty: the test broker
    keeps nothing), the banner goes by itself and records logged since appear. When the viewer itself goes,
    the page says so too."""
    namespace = unique("uidown")
    servers = own_broker.bootstrap_servers
    create_stream_topics(servers, namespace)
    tab = Tab(browser)
    try:
        with ui_process(servers, "--namespace", namespace) as ui:
            page = tab.open(ui.base)
            before = unique("before the outage ")
            _log_once(servers, namespace, tmp_path / "a", before)
            expect(tab.row(before)).to_be_visible(timeout=LIVE_MS)
            expect(page.locator("#chart-rate rect.b-warning")).to_have_count(1, timeout=LIVE_MS)  # the chart, live
            own_broker.kill()
            banner = page.locator("#kafka-banner")
            expect(banner).to_be_visible(timeout=20_000)
            expect(banner).to_contain_text("Kafka is unreachable since")
            expect(banner).to_contain_text("still trying")
            expect(page.locator("#mode")).to_have_text("Live · Kafka away")
            expect(tab.row(before)).to_be_visible()  # what was read stays
            tab.screenshot("ui-kafka-down")
            own_broker.start()
            create_stream_topics(servers, namespace)
            expect(banner).to_be_hidden(timeout=30_000)
            expect(page.locator("#mode")).to_have_text("Live")
            after = unique("after the outage ")
            # the restarted test broker starts its offsets again from 0: log until the viewer's reader, which
            # resumes at the offsets it had reached, gets there (a real broker keeps its records and offsets)
            assert wait_for(lambda: _log_once(servers, namespace, tmp_path / "b", after)
                            or tab.row(after).count() > 0, 30), "no record logged after the outage appeared"
            expect(tab.row(after).first).to_be_visible()
        server_banner = page.locator("#server-banner")  # the viewer stopped with the block above
        expect(server_banner).to_be_visible(timeout=10_000)
        expect(server_banner).to_contain_text("not answering")
        expect(page.locator("#mode")).to_have_text("Disconnected")
    finally:
        tab.close()
    assert not tab.problems, tab.problems


def _log_once(servers: str, namespace: str, spool: Path, message: str) -> bool:
    """Log ``message`` once with a handler of its own (delivered or not); False, for wait_for's loop."""
    services = Services(servers, namespace, spool)
    try:
        services.log("outage", "outage.check", "WARNING", message)
        services.handler("outage").flush(5)
    finally:
        services.close()
    time.sleep(0.5)
    return False


# -- safety ----------------------------------------------------------------------------------------

def test_the_token_is_required_and_leaves_the_address(seeded: Seeded, kafka_broker: Any, tab: Tab) -> None:
    """With --token every request needs it: the page without it is refused; the address printed (with
    ?token=) loads the page and the token leaves the address; the API takes it as a bearer token. Beyond this
    machine without a token the command refuses to start."""
    refused = subprocess.run([sys.executable, "-m", "logkafka", "ui", "-b", kafka_broker.bootstrap_servers,
                              "--host", "0.0.0.0", "--port", "0"], capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "--token" in refused.stderr and "0.0.0.0" in refused.stderr, refused.stderr
    token = unique("secret-token-")
    with ui_process(kafka_broker.bootstrap_servers, "--namespace", seeded.namespace, "--token", token) as ui:
        assert ui.url.endswith(f"?token={token}")
        ui.wait_for_records(len(seeded.incident.records), {"Authorization": f"Bearer {token}"})
        assert ui.get("/")[0] == 401
        assert ui.get("/api/records")[0] == 401
        assert ui.get("/api/records", {"Authorization": "Bearer wrong-token-123456"})[0] == 401
        status, _, body = ui.get("/api/records?limit=1", {"Authorization": f"Bearer {token}"})
        assert status == 200 and len(json.loads(body)["records"]) == 1
        page = tab.open(ui.url.replace("?token=", "?level=ERROR&token="))
        expect(page).to_have_url(f"{ui.base}?level=ERROR")
        tab.expect_messages(seeded.incident.messages("level", "ERROR"))
        expect(page.locator("#kafka-state")).to_contain_text("Kafka: ok")


def test_the_page_has_a_csp_and_writes_no_record_as_html(seeded: Seeded) -> None:
    status, headers, body = seeded.ui.get("/")
    csp = headers["content-security-policy"]
    assert status == 200 and "script-src 'self'" in csp and "unsafe-inline" not in csp and "default-src 'none'" in csp
    html = body.decode()
    assert not re.search(r"<script(?![^>]*\bsrc=)", html), "inline script in the page"
    assert not re.search(r"\sstyle=|<style", html), "inline style in the page"
    script = (STATIC / "app.js").read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert sink not in script, f"app.js uses {sink}"
