// logkafka ui: the page. A read-only viewer of the application, audit and security streams.
//
// Safety first: whatever a record holds (message, fields, key, headers, a value that is not JSON) is
// shown as text. Nothing from a record is ever written as HTML: nodes are built with
// document.createElement and filled with textContent (or Node.append of a string, which makes a text
// node). The Content-Security-Policy forbids inline script and inline style, so styles are classes,
// and the few computed positions are set through element.style.
//
// Shape of the page: the state (view, filters, time range) lives in the URL under the API's own
// parameter names; load() reads what the state asks for (/api/records, /api/history or /api/request)
// into a virtual list (only the rows in view exist in the DOM) and follows /api/stream (server-sent
// events: records, Kafka's status, rates) for what comes after.
"use strict";

(() => {
  const MAX_ROWS = 5000; // rows the page keeps; beyond, the oldest go (the server keeps more: read a range)
  const ROW_H = 26; // px, fixed: a row's place is its index times this, so only visible rows need to exist
  const OVERSCAN = 60; // rows kept in the DOM above and below the visible ones
  const RETRY_MS = 2000; // the wait before reconnecting to the viewer
  const FILTERS = ["level", "stream", "service", "logger", "code", "correlation_id", "trace_id", "tenant_id", "q"];
  const TEXT_FILTERS = ["service", "logger", "code", "correlation_id", "trace_id", "tenant_id", "q"];
  const STREAMS = ["application", "audit", "security"];
  const VIEWS = ["records", "audit", "security", "request"];
  const SVG_NS = "http://www.w3.org/2000/svg";

  // ------------------------------------------------------------------------------------------------
  // Small helpers

  const $ = (id) => document.getElementById(id);

  /** An element with properties (class, text, title, data, on<event>, other attributes) and children
   * (nodes, or strings that become text nodes). Record data may go in text, title, data and children only. */
  function el(tag, props = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(props)) {
      if (value == null || value === false) continue;
      if (name === "class") node.className = value;
      else if (name === "text") node.textContent = value;
      else if (name === "title") node.title = value;
      else if (name === "data") Object.assign(node.dataset, value);
      else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value === true ? "" : value);
    }
    for (const child of children) if (child != null && child !== "") node.append(child);
    return node;
  }

  function svg(tag, attrs = {}, text) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
    if (text != null) node.textContent = text;
    return node;
  }

  /** Any value as text: strings as they are, anything else as JSON (a record's fields may be anything). */
  function str(value) {
    if (value == null) return "";
    if (typeof value === "string") return value;
    try {
      return JSON.stringify(value);
    } catch {
      return String(value);
    }
  }

  /** Text on one line (a row is one line high), cut: the detail panel shows it whole. */
  function oneLine(text, max = 600) {
    const line = text.replace(/\s*[\r\n]+\s*/g, " ⏎ ");
    return line.length > max ? line.slice(0, max) + "…" : line;
  }

  const pad = (n, width = 2) => String(n).padStart(width, "0");
  const plural = (n, word) => `${n.toLocaleString("en")} ${word}${n === 1 ? "" : "s"}`;

  // ------------------------------------------------------------------------------------------------
  // Times: shown in the browser's zone or in UTC (the button in the header), always saying which

  let utc = localStorage.getItem("logkafka-ui-tz") === "utc";

  function clock(ms) {
    const d = new Date(ms);
    return utc
      ? { y: d.getUTCFullYear(), mo: d.getUTCMonth() + 1, d: d.getUTCDate(), h: d.getUTCHours(),
          mi: d.getUTCMinutes(), s: d.getUTCSeconds(), ms: d.getUTCMilliseconds() }
      : { y: d.getFullYear(), mo: d.getMonth() + 1, d: d.getDate(), h: d.getHours(),
          mi: d.getMinutes(), s: d.getSeconds(), ms: d.getMilliseconds() };
  }

  const hms = (c) => `${pad(c.h)}:${pad(c.mi)}:${pad(c.s)}`;
  const ymd = (c) => `${c.y}-${pad(c.mo)}-${pad(c.d)}`;

  function zoneName() {
    if (utc) return "UTC";
    const offset = -new Date().getTimezoneOffset();
    const sign = offset < 0 ? "−" : "+";
    return `local, UTC${sign}${pad(Math.floor(Math.abs(offset) / 60))}:${pad(Math.abs(offset) % 60)}`;
  }

  /** A row's time: the clock to the millisecond, with the date when it is not today. */
  function rowTime(ms) {
    if (!ms) return "—";
    const c = clock(ms);
    const time = `${hms(c)}.${pad(c.ms, 3)}`;
    return ymd(c) === ymd(clock(Date.now())) ? time : `${pad(c.mo)}-${pad(c.d)} ${time}`;
  }

  const fullTime = (ms) => (ms ? `${ymd(clock(ms))} ${hms(clock(ms))}.${pad(clock(ms).ms, 3)} (${zoneName()})` : "no time");
  const shortClock = (ms) => hms(clock(ms));

  /** A datetime-local input's value for epoch ms, in the shown zone. */
  function inputValue(ms) {
    const c = clock(ms);
    return `${ymd(c)}T${hms(c)}`;
  }

  /** Epoch ms of a datetime-local input's value, read in the shown zone; null when empty or invalid. */
  function inputMs(value) {
    if (!value) return null;
    const ms = Date.parse(utc ? `${value}Z` : value);
    return Number.isNaN(ms) ? null : ms;
  }

  /** Epoch ms of a URL's from/to: epoch milliseconds, or an ISO time (UTC unless it says, as the server reads it). */
  function urlMs(text) {
    if (!text) return null;
    if (/^-?\d+$/.test(text)) return Number(text);
    const zoned = /(Z|[+-]\d\d:?\d\d)$/i.test(text) ? text : `${text}Z`;
    const ms = Date.parse(zoned);
    return Number.isNaN(ms) ? NaN : ms;
  }

  const isoUrl = (ms) => new Date(ms).toISOString().replace(".000Z", "Z");

  // ------------------------------------------------------------------------------------------------
  // What a record shows

  const keyOf = (e) => `${e.id}@${e.ts}`; // one record: the store's copy and Kafka's compare equal

  function levelBand(e) {
    const n = e.levelno;
    if (typeof n !== "number") return "none";
    if (n >= 50) return "critical";
    if (n >= 40) return "error";
    if (n >= 30) return "warning";
    if (n >= 20) return "info";
    return "debug";
  }

  function levelText(e) {
    if (e.level != null) return str(e.level);
    return typeof e.levelno === "number" ? `Level ${e.levelno}` : "—";
  }

  /** The text a row shows as message: the record's message, else the raw value, else its JSON. */
  function messageText(e) {
    if (e.message != null) return str(e.message);
    if (e.raw != null) return str(e.raw);
    if (e.record != null) return str(e.record);
    return "";
  }

  /** The flag's short name for its badge ("not JSON", "not a log record", "cut"). */
  function flagLabel(flag) {
    const text = str(flag);
    return text.startsWith("cut") ? "cut" : text;
  }

  /** An audit record's diff ({old: {...}, new: {...}}) as "field: old → new; ..." text. */
  function diffText(diff) {
    if (diff == null) return "";
    if (typeof diff !== "object" || Array.isArray(diff)) return str(diff);
    const before = diff.old && typeof diff.old === "object" ? diff.old : {};
    const after = diff.new && typeof diff.new === "object" ? diff.new : {};
    const names = [...new Set([...Object.keys(before), ...Object.keys(after)])];
    if (!names.length) return str(diff);
    const side = (values, name) => (name in values ? str(values[name]) : "∅");
    return names.map((n) => `${n}: ${side(before, n)} → ${side(after, n)}`).join("; ");
  }

  /** The value as the Kafka message held it, as near as the entry allows (a toggle beside the pretty JSON). */
  function rawValue(e) {
    if (e.raw != null) return str(e.raw);
    if (e.envelope) return JSON.stringify({ ...e.envelope, payload: e.record });
    return JSON.stringify(e.record);
  }

  function prettyValue(e) {
    if (e.record == null) return str(e.raw);
    if (e.envelope) return JSON.stringify({ ...e.envelope, payload: e.record }, null, 2);
    return JSON.stringify(e.record, null, 2);
  }

  // ------------------------------------------------------------------------------------------------
  // Columns of each view: a label, and a cell made of text or nodes

  const part = (name, key) => (e) => str(e[name] && typeof e[name] === "object" ? e[name][key] : null);

  function requestButton(kind, value) {
    return el("button", { type: "button", class: "linkish", text: value, data: { action: "request", kind },
                          title: `Show this request across the three streams (${kind})` });
  }

  function messageCell(e) {
    const frag = document.createDocumentFragment();
    if (e.flag) frag.append(el("span", { class: "flag", text: flagLabel(e.flag), title: str(e.flag) }));
    frag.append(el("span", { class: "msg", text: oneLine(messageText(e)) }));
    if (e.error) frag.append(el("span", { class: "err", text: str(e.error) }));
    return frag;
  }

  const COLUMNS = {
    offset: { label: "+ms", cell: (e, ctx) => `+${(e.ts - ctx.t0).toLocaleString("en")} ms` },
    time: { label: () => `Time (${utc ? "UTC" : "local"})`, cell: (e) => rowTime(e.ts), title: (e) => fullTime(e.ts) },
    level: { label: "Level", cell: (e) => el("span", { class: `lvl lvl-${levelBand(e)}`, text: levelText(e) }) },
    stream: { label: "Stream", cell: streamBadge },
    service: { label: "Service", cell: (e) => str(e.service) },
    logger: { label: "Logger", cell: (e) => str(e.logger) },
    code: { label: "Code", cell: (e) => str(e.code) },
    message: { label: "Message", cell: messageCell, title: (e) => messageText(e).slice(0, 2000) },
    correlation_id: { label: "Correlation id",
                      cell: (e) => (e.correlation_id ? requestButton("correlation_id", str(e.correlation_id)) : "") },
    tenant_id: { label: "Tenant", cell: (e) => str(e.tenant_id) },
    actor: { label: "Actor", cell: part("audit", "actor") },
    action: { label: "Action", cell: part("audit", "action") },
    resource: { label: "Resource", cell: (e) => part(e.audit ? "audit" : "security", "resource")(e) },
    outcome: { label: "Outcome", cell: (e) => outcomeBadge(part("audit", "outcome")(e), "failure") },
    diff: { label: "Diff (old → new)", cell: (e) => oneLine(diffText(e.audit && e.audit.diff)),
            title: (e) => diffText(e.audit && e.audit.diff) },
    event_type: { label: "Event", cell: part("security", "event_type") },
    user_id: { label: "User", cell: part("security", "user_id") },
    decision: { label: "Decision", cell: (e) => outcomeBadge(part("security", "decision")(e), "deny") },
  };

  function streamBadge(e) {
    return el("span", { class: `badge s-${STREAMS.includes(e.stream) ? e.stream : "other"}`, text: str(e.stream) });
  }

  function outcomeBadge(text, bad) {
    return text ? el("span", { class: `outcome ${text === bad ? "bad" : "good"}`, text }) : "";
  }

  const VIEW_COLUMNS = {
    records: ["time", "level", "stream", "service", "logger", "code", "message", "correlation_id", "tenant_id"],
    audit: ["time", "actor", "action", "resource", "outcome", "tenant_id", "diff", "correlation_id"],
    security: ["time", "event_type", "user_id", "resource", "decision", "tenant_id", "service", "correlation_id"],
    request: ["offset", "time", "level", "stream", "service", "logger", "code", "message", "tenant_id"],
  };

  /** Classes a whole row carries: the denies and failures stand out in every view. */
  function rowClasses(e) {
    const classes = ["row", `band-${levelBand(e)}`];
    if (e.flag) classes.push("flagged");
    if (e.security && e.security.decision === "deny") classes.push("deny");
    if (e.audit && e.audit.outcome === "failure") classes.push("failure");
    return classes.join(" ");
  }

  // ------------------------------------------------------------------------------------------------
  // The list: every entry in time order in memory, and in the DOM only the rows near the viewport.
  // Rows are kept by key while they stay in range, so a row being clicked is never replaced under the pointer.

  class RowList {
    constructor(scroller, sizer, head) {
      this.scroller = scroller;
      this.sizer = sizer;
      this.head = head;
      this.entries = [];
      this.keys = new Set();
      this.rendered = new Map(); // key -> row element
      this.columns = [];
      this.selected = null; // key of the row whose detail is open
      this.pending = false;
    }

    setView(view) {
      this.columns = VIEW_COLUMNS[view].map((name) => ({ name, ...COLUMNS[name] }));
      this.head.replaceChildren(...this.columns.map((c) =>
        el("div", { class: `cell c-${c.name}`, role: "columnheader",
                    text: typeof c.label === "function" ? c.label() : c.label })));
      this.redraw();
    }

    /** Drop every row element (columns or times changed); render() makes them again. */
    redraw() {
      for (const node of this.rendered.values()) node.remove();
      this.rendered.clear();
      this.schedule();
    }

    reset(entries) {
      this.entries = [];
      this.keys.clear();
      this.add(entries);
      this.redraw();
    }

    has(e) {
      return this.keys.has(keyOf(e));
    }

    /** Add entries not already shown, each at its place in time order (new ones land at the end). */
    add(entries) {
      let added = 0;
      for (const e of entries) {
        const key = keyOf(e);
        if (this.keys.has(key)) continue;
        this.keys.add(key);
        let i = this.entries.length;
        while (i > 0 && this.entries[i - 1].ts > e.ts) i--;
        this.entries.splice(i, 0, e);
        added++;
      }
      if (added) this.schedule();
      return added;
    }

    /** Keep the newest ``max`` entries; returns how many older ones went. */
    trim(max) {
      const extra = this.entries.length - max;
      if (extra <= 0) return 0;
      for (const e of this.entries.splice(0, extra)) this.keys.delete(keyOf(e));
      this.schedule();
      return extra;
    }

    find(id) {
      return this.entries.find((e) => e.id === id);
    }

    indexOfKey(key) {
      return this.entries.findIndex((e) => keyOf(e) === key);
    }

    atBottom() {
      const s = this.scroller;
      return s.scrollTop + s.clientHeight >= s.scrollHeight - ROW_H;
    }

    toBottom() {
      this.scroller.scrollTop = this.scroller.scrollHeight;
    }

    schedule() {
      if (this.pending) return;
      this.pending = true;
      requestAnimationFrame(() => {
        this.pending = false;
        this.render();
      });
    }

    render() {
      const n = this.entries.length;
      this.sizer.style.height = `${n * ROW_H}px`;
      if (feed.follow()) this.toBottom();
      const top = this.scroller.scrollTop;
      const first = Math.max(0, Math.floor(top / ROW_H) - OVERSCAN);
      const last = Math.min(n, Math.ceil((top + this.scroller.clientHeight) / ROW_H) + OVERSCAN);
      const wanted = new Map();
      for (let i = first; i < last; i++) wanted.set(keyOf(this.entries[i]), i);
      for (const [key, node] of this.rendered) {
        if (!wanted.has(key)) {
          node.remove();
          this.rendered.delete(key);
        }
      }
      const ctx = { t0: n ? this.entries[0].ts : 0 };
      let previous = null;
      for (const [key, i] of wanted) {
        let node = this.rendered.get(key);
        if (!node) {
          node = this.makeRow(this.entries[i], ctx);
          this.rendered.set(key, node);
        }
        node.style.top = `${i * ROW_H}px`;
        node.classList.toggle("selected", key === this.selected);
        node.setAttribute("aria-selected", key === this.selected ? "true" : "false");
        // the DOM keeps the rows in display order (for screen readers, and for anyone reading the DOM)
        const wantedNext = previous ? previous.nextSibling : this.sizer.firstChild;
        if (wantedNext !== node) this.sizer.insertBefore(node, wantedNext);
        previous = node;
      }
      if (this.columns[0] && this.columns[0].name === "offset") this.refreshOffsets(ctx);
      showCounts();
    }

    /** In the request view the first record may change (an earlier one arrives): the +ms column follows. */
    refreshOffsets(ctx) {
      for (const node of this.rendered.values()) {
        const cell = node.firstChild;
        const text = COLUMNS.offset.cell(node.entry, ctx);
        if (cell.textContent !== text) cell.textContent = text;
      }
    }

    makeRow(e, ctx) {
      const row = el("div", { class: rowClasses(e), role: "row", tabindex: "-1" });
      row.entry = e;
      for (const c of this.columns) {
        const cell = el("div", { class: `cell c-${c.name}`, role: "cell" });
        try {
          const content = c.cell(e, ctx);
          if (content != null && content !== "") cell.append(content);
          if (c.title) cell.title = c.title(e);
        } catch (err) {
          // one strange record must not break the page: say so in its cell and go on
          cell.append(el("span", { class: "flag", text: "unreadable" }));
          console.warn("logkafka ui: cannot show a field", c.name, err);
        }
        row.append(cell);
      }
      return row;
    }

    /** Select a row (its detail is open): highlighted, scrolled into view. */
    select(key) {
      this.selected = key;
      const i = key == null ? -1 : this.indexOfKey(key);
      if (i >= 0) {
        const y = i * ROW_H;
        const s = this.scroller;
        if (y < s.scrollTop || y + ROW_H > s.scrollTop + s.clientHeight) s.scrollTop = y - s.clientHeight / 2;
      }
      this.schedule();
    }
  }

  // ------------------------------------------------------------------------------------------------
  // State, and the URL that holds it (a link pasted into a ticket opens the same view)

  const state = {
    view: "records", // records | audit | security | request
    filters: {}, // the API's parameter names -> value (stream: comma-separated)
    request: null, // {correlation_id, trace_id, around} in the request view
    range: null, // {from, to} epoch ms: reading back in time instead of the live tail
    limit: null, // records per load (?limit=), else the server's page
    record: null, // {id, at}: the record whose detail is open (a permalink)
  };

  function readUrl() {
    const params = new URLSearchParams(location.search);
    const view = params.get("view");
    state.view = VIEWS.includes(view) ? view : "records";
    state.filters = {};
    for (const name of FILTERS) {
      const value = (params.get(name) || "").trim();
      if (value) state.filters[name] = value;
    }
    state.request = null;
    if (state.view === "request") {
      const request = { correlation_id: params.get("correlation_id") || null, trace_id: params.get("trace_id") || null,
                        around: params.get("around") || null };
      if (request.correlation_id || request.trace_id) state.request = request;
      else state.view = "records";
      state.filters = {}; // the request view shows the whole request, whatever else is filtered
    }
    const from = urlMs(params.get("from"));
    const to = urlMs(params.get("to"));
    state.range = from == null ? null : { from, to };
    const limit = params.get("limit");
    state.limit = limit && /^\d+$/.test(limit) ? limit : null;
    state.record = params.get("record") ? { id: params.get("record"), at: params.get("at") } : null;
  }

  /** The URL of the state (the record's permalink when ``record`` is given). */
  function stateUrl(record = state.record) {
    const params = new URLSearchParams();
    if (state.view !== "records") params.set("view", state.view);
    if (state.view === "request" && state.request) {
      for (const name of ["correlation_id", "trace_id", "around"]) {
        if (state.request[name]) params.set(name, state.request[name]);
      }
    } else {
      for (const name of FILTERS) if (state.filters[name]) params.set(name, state.filters[name]);
      if (state.range) {
        params.set("from", isoUrl(state.range.from));
        if (state.range.to != null) params.set("to", isoUrl(state.range.to));
      }
    }
    if (state.limit) params.set("limit", state.limit);
    if (record) {
      params.set("record", record.id);
      if (record.at != null) params.set("at", String(record.at));
    }
    const query = readableQuery(params);
    return `${location.pathname}${query ? `?${query}` : ""}`;
  }

  /** A query string as people read it in a ticket: ":", ",", "/" and "@" left as they are (all legal there). */
  function readableQuery(params) {
    return [...params].map(([name, value]) => `${encodeURIComponent(name)}=${encodeURIComponent(value)}`)
      .join("&").replace(/%3A/gi, ":").replace(/%2C/gi, ",").replace(/%2F/gi, "/").replace(/%40/gi, "@");
  }

  /** Put the state in the address: ``push`` for a change of view (Back returns), else replace. */
  function writeUrl(push = false) {
    const url = stateUrl();
    if (url === `${location.pathname}${location.search}`) return;
    if (push) history.pushState(null, "", url);
    else history.replaceState(null, "", url);
  }

  /** The API's query for the view: the filters, the stream forced in the audit and security views. */
  function apiParams() {
    const params = new URLSearchParams();
    if (state.view === "request") {
      for (const name of ["correlation_id", "trace_id"]) if (state.request[name]) params.set(name, state.request[name]);
      return params;
    }
    for (const name of FILTERS) if (state.filters[name]) params.set(name, state.filters[name]);
    if (state.view === "audit" || state.view === "security") params.set("stream", state.view);
    return params;
  }

  // ------------------------------------------------------------------------------------------------
  // Talking to the viewer

  class ApiError extends Error {
    constructor(message, away = false) {
      super(message);
      this.away = away; // no answer at all (not an answer refusing the request)
    }
  }

  async function getJson(path, params) {
    const query = params && params.toString();
    let response;
    try {
      response = await fetch(query ? `${path}?${query}` : path, { headers: { Accept: "application/json" } });
    } catch {
      throw new ApiError("the viewer does not answer (is logkafka ui still running?)", true);
    }
    if (response.status === 401) {
      throw new ApiError("this viewer needs its token: open the address logkafka ui printed (it holds ?token=…)");
    }
    let body = null;
    try {
      body = await response.json();
    } catch {
      body = null;
    }
    if (!response.ok) {
      throw new ApiError((body && body.error) || `the viewer answered ${response.status} to ${path}`);
    }
    return body;
  }

  // ------------------------------------------------------------------------------------------------
  // The feed: what load() brought, then the live stream; pausing buffers what arrives

  const feed = {
    generation: 0, // each load() has its own; anything answering an older one is dropped
    source: null, // the EventSource
    retry: null, // the reconnect timer
    paused: false,
    reason: null, // "user", "scroll" or "detail": what paused it (scrolling back down resumes a scroll pause)
    buffered: [], // records that arrived while paused
    bufferDropped: 0,
    dropped: 0, // older rows let go to keep MAX_ROWS
    unseen: 0, // records the viewer's buffer let go before this page got them (a burst)
    newWhileAway: 0, // live records that arrived while reading a range
    mode: "live", // live | history | request
    history: { cursor: null, scanned: 0, stopped: null, loading: false, done: false },
    lostSince: null, // when the viewer stopped answering
    kafka: null, // the last status event

    /** Whether the list sticks to its newest row. */
    follow() {
      return this.mode === "live" && !this.paused;
    },
  };

  const list = new RowList($("scroller"), $("sizer"), $("thead"));

  /** Read what the state asks for, then follow it live. */
  async function load() {
    const generation = ++feed.generation;
    closeStream();
    feed.buffered = [];
    feed.bufferDropped = 0;
    feed.dropped = 0;
    feed.unseen = 0;
    feed.newWhileAway = 0;
    feed.paused = false;
    feed.reason = null;
    feed.mode = state.view === "request" ? "request" : state.range ? "history" : "live";
    feed.history = { cursor: null, scanned: 0, stopped: null, loading: false, done: false };
    closePanel();
    showError(null);
    showView();
    list.setView(state.view);
    list.reset([]);
    showEmpty("Loading…");
    try {
      if (feed.mode === "request") await loadRequest(generation);
      else if (feed.mode === "history") await loadHistory(generation);
      else await loadLive(generation);
    } catch (err) {
      if (generation !== feed.generation) return;
      showError(err.message);
      showEmpty("Nothing to show: see the message above.");
      if (err instanceof ApiError && err.away) {
        // the viewer is away: keep trying, as the stream would
        serverLost();
        feed.retry = setTimeout(() => { if (generation === feed.generation) load(); }, RETRY_MS);
      }
      return;
    }
    if (generation !== feed.generation) return;
    if (state.record) await openPermalink(generation, state.record);
  }

  async function loadLive(generation) {
    const params = apiParams();
    if (state.limit) params.set("limit", state.limit);
    const data = await getJson("/api/records", params);
    if (generation !== feed.generation) return;
    list.reset(data.records);
    showKafka(data.kafka);
    showEmpty();
    openStream(generation, data.latest);
  }

  /** The view's query for one record only: its answer says the newest seq and Kafka's state. */
  function newestOnly() {
    const params = apiParams();
    params.set("limit", "1");
    return params;
  }

  async function loadRequest(generation) {
    // the newest seq first, so that the stream starts where this answer ends (duplicates are dropped by key)
    const head = await getJson("/api/records", newestOnly());
    const params = apiParams();
    if (state.request.around) params.set("around", state.request.around);
    const data = await getJson("/api/request", params);
    if (generation !== feed.generation) return;
    list.reset(data.records);
    feed.fromKafka = data.from_kafka;
    showKafka(head.kafka);
    showEmpty();
    showContext();
    list.scroller.scrollTop = 0;
    openStream(generation, head.latest);
  }

  async function loadHistory(generation) {
    await readPage(generation);
    if (generation !== feed.generation) return;
    list.scroller.scrollTop = 0;
    // the stream still runs: Kafka's status for the banner, and a count of what arrives live meanwhile
    const head = await getJson("/api/records", newestOnly());
    if (generation !== feed.generation) return;
    showKafka(head.kafka);
    openStream(generation, head.latest);
  }

  /** The next page of the range (its first page without a cursor). */
  async function readPage(generation) {
    const h = feed.history;
    if (h.loading || h.done) return;
    h.loading = true;
    showContext();
    const params = apiParams();
    params.set("from", String(state.range.from));
    if (state.range.to != null) params.set("to", String(state.range.to));
    if (state.limit) params.set("limit", state.limit);
    if (h.cursor) params.set("cursor", h.cursor);
    try {
      const data = await getJson("/api/history", params);
      if (generation !== feed.generation) return;
      list.add(data.records);
      h.cursor = data.cursor;
      h.done = !data.cursor;
      h.scanned += data.scanned || 0;
      h.stopped = data.stopped;
    } finally {
      h.loading = false;
      if (generation === feed.generation) {
        showContext();
        showEmpty();
      }
    }
  }

  function openStream(generation, since) {
    closeStream();
    const params = apiParams();
    params.set("since", String(since));
    const source = new EventSource(`/api/stream?${params}`);
    feed.source = source;
    source.addEventListener("open", () => serverBack());
    source.addEventListener("records", (event) => {
      if (generation === feed.generation) arrived(parseEvent(event, []));
    });
    source.addEventListener("skipped", (event) => {
      // a burst went by faster than this page read it: the viewer's buffer let some go before they were sent
      const gone = parseEvent(event, { records: 0 });
      if (generation === feed.generation && gone && gone.records) {
        feed.unseen += gone.records;
        showCounts();
      }
    });
    source.addEventListener("status", (event) => showKafka(parseEvent(event, null)));
    source.addEventListener("rates", (event) => drawRates(parseEvent(event, null)));
    source.addEventListener("error", () => {
      // the viewer went away (or restarted: its sequence numbers start again): reconnect ourselves,
      // reading the records afresh, rather than let EventSource resume from a stale place
      if (feed.source !== source) return;
      closeStream();
      serverLost();
      scheduleReconnect(generation);
    });
  }

  function parseEvent(event, fallback) {
    try {
      return JSON.parse(event.data);
    } catch {
      return fallback;
    }
  }

  function closeStream() {
    if (feed.source) feed.source.close();
    feed.source = null;
    clearTimeout(feed.retry);
    feed.retry = null;
  }

  function scheduleReconnect(generation) {
    clearTimeout(feed.retry);
    feed.retry = setTimeout(() => reconnect(generation), RETRY_MS);
  }

  /** After the viewer came back: what was missed (merged, duplicates dropped), then the stream again. */
  async function reconnect(generation) {
    if (generation !== feed.generation) return;
    try {
      const params = apiParams();
      if (feed.mode === "history") params.set("limit", "1");
      const data = await getJson("/api/records", params);
      if (generation !== feed.generation) return;
      serverBack();
      if (feed.mode !== "history") arrived(data.records.filter((e) => !list.has(e)));
      showKafka(data.kafka);
      openStream(generation, data.latest);
    } catch (err) {
      if (generation !== feed.generation) return;
      serverLost();
      scheduleReconnect(generation);
    }
  }

  /** Records from the stream: shown, or buffered while paused, or counted while reading a range. */
  function arrived(entries) {
    if (!Array.isArray(entries) || !entries.length) return;
    if (feed.mode === "history") {
      feed.newWhileAway += entries.length;
      showContext();
      return;
    }
    if (feed.paused) {
      feed.buffered.push(...entries);
      const extra = feed.buffered.length - MAX_ROWS;
      if (extra > 0) {
        feed.buffered.splice(0, extra);
        feed.bufferDropped += extra;
      }
      showMode();
      return;
    }
    show(entries);
  }

  function show(entries) {
    list.add(entries);
    if (feed.mode === "live") feed.dropped += list.trim(MAX_ROWS);
    showEmpty();
  }

  function pause(reason) {
    if (feed.mode === "history" || feed.paused) return;
    feed.paused = true;
    feed.reason = reason;
    showMode();
  }

  function resume() {
    if (!feed.paused) return;
    feed.paused = false;
    feed.reason = null;
    const waiting = feed.buffered;
    feed.buffered = [];
    feed.dropped += feed.bufferDropped;
    feed.bufferDropped = 0;
    show(waiting);
    if (feed.mode === "live") list.toBottom();
    list.schedule();
    showMode();
  }

  // ------------------------------------------------------------------------------------------------
  // The header's state: the view, live or paused, Kafka, the viewer's connection

  function showMode() {
    const mode = $("mode");
    const pauseButton = $("pause");
    const count = $("new-count");
    const waiting = feed.buffered.length;
    if (feed.mode === "history") {
      mode.textContent = "History";
      mode.className = "pill history";
      mode.title = "Reading a time range back from Kafka; live records are not added";
      pauseButton.hidden = true;
      count.hidden = true;
      return;
    }
    pauseButton.hidden = false;
    pauseButton.textContent = feed.paused ? "Resume" : "Pause";
    pauseButton.setAttribute("aria-pressed", feed.paused ? "true" : "false");
    if (feed.paused) {
      mode.textContent = "Paused";
      mode.className = "pill paused";
      mode.title = { scroll: "Paused because you scrolled back: scroll to the bottom or Resume",
                     detail: "Paused while a record is open: close it or Resume",
                     user: "Paused: Resume shows what arrived meanwhile" }[feed.reason] || "Paused";
      count.hidden = waiting === 0; // "Paused" says the rest; the count appears with the first new record
      const lost = feed.bufferDropped ? ` (+${feed.bufferDropped} dropped)` : "";
      count.textContent = `${plural(waiting, "new record")}${lost} — show`;
    } else {
      const away = feed.kafka && feed.kafka.kafka === "unreachable";
      mode.textContent = (feed.mode === "request" ? "Live (this request)" : "Live") + (away ? " · Kafka away" : "");
      mode.className = away ? "pill live waiting" : "pill live";
      mode.title = away ? "Live, but Kafka does not answer: nothing new can arrive until it does"
        : "New records appear as they arrive";
      count.hidden = true;
    }
  }

  function showKafka(status) {
    if (!status || typeof status !== "object") return;
    feed.kafka = status;
    const banner = $("kafka-banner");
    const badge = $("kafka-state");
    if (status.kafka === "unreachable") {
      const since = status.since ? shortClock(status.since * 1000) : "?";
      banner.textContent = `Kafka is unreachable since ${since} — ${str(status.error) || "no answer"}; still trying. `
        + "Records already read stay shown; new ones appear when it answers again.";
      banner.hidden = false;
      badge.textContent = "Kafka: unreachable";
      badge.className = "kafka bad";
      if (feed.lostSince == null) showMode();
    } else {
      banner.hidden = true;
      const topics = Array.isArray(status.topics) ? status.topics : [];
      badge.textContent = status.kafka === "ok" ? `Kafka: ok, ${plural(topics.length, "topic")}` : "Kafka: connecting…";
      badge.title = topics.length ? `Reading ${topics.map(str).join(", ")}` : "No topic read yet (do the topics exist?)";
      badge.className = status.kafka === "ok" ? "kafka ok" : "kafka wait";
      if (feed.lostSince == null) showMode();
    }
  }

  function serverLost() {
    if (feed.lostSince == null) feed.lostSince = Date.now();
    const banner = $("server-banner");
    banner.textContent = `The viewer (logkafka ui) is not answering since ${shortClock(feed.lostSince)}; `
      + `retrying every ${RETRY_MS / 1000} s. What is shown stays.`;
    banner.hidden = false;
    $("mode").textContent = "Disconnected";
    $("mode").className = "pill lost";
  }

  function serverBack() {
    if (feed.lostSince == null) return;
    feed.lostSince = null;
    $("server-banner").hidden = true;
    showMode();
  }

  function showError(message) {
    const banner = $("error-banner");
    banner.hidden = !message;
    banner.textContent = message ? `Cannot show this: ${message}` : "";
  }

  function showEmpty(text) {
    const empty = $("empty");
    if (text == null && list.entries.length === 0) {
      text = feed.mode === "history" ? "No record of this range matches."
        : feed.mode === "request" ? "No record of this request was found."
        : Object.keys(state.filters).length || state.view !== "records"
          ? "No record matches (yet): new ones appear here as they arrive."
          : "No records yet: they appear here as they arrive.";
    }
    empty.hidden = list.entries.length > 0 || !text;
    empty.textContent = text || "";
  }

  function showCounts() {
    const n = list.entries.length;
    const bits = [plural(n, "record")];
    if (feed.mode === "live") bits.push("newest at the bottom");
    const kept = MAX_ROWS.toLocaleString("en");
    if (feed.mode === "live" && feed.dropped) {
      bits.push(`${feed.dropped.toLocaleString("en")} older let go (the page keeps the newest ${kept}: read a time range for more)`);
    } else if (feed.mode === "live") {
      bits.push(`the page keeps the newest ${kept}`);
    }
    if (feed.unseen) bits.push(`${feed.unseen.toLocaleString("en")} went by unseen in a burst (read a time range for them)`);
    bits.push(`times ${zoneName()}`);
    $("footer").textContent = bits.join(" · ");
  }

  /** The bar above the list saying what the request or range view shows, with its buttons. */
  function showContext() {
    const bar = $("context-bar");
    if (feed.mode === "request") {
      const r = state.request;
      const kind = r.correlation_id ? "correlation id" : "trace id";
      const value = r.correlation_id || r.trace_id;
      const streams = [...new Set(list.entries.map((e) => str(e.stream)))];
      const span = list.entries.length > 1 ? list.entries[list.entries.length - 1].ts - list.entries[0].ts : 0;
      bar.replaceChildren(
        button("back", "← Back", leaveRequest, "Back to the records (Esc)"),
        el("strong", { text: `Request ${kind} ` }), el("code", { text: value }),
        ` · ${plural(list.entries.length, "record")}${streams.length ? ` across ${streams.join(", ")}` : ""}`
          + `${span ? ` · ${span.toLocaleString("en")} ms from first to last` : ""} · in time order, other filters ignored`
          + (feed.fromKafka === false ? " · from the viewer's memory only (Kafka did not answer)" : ""));
      bar.hidden = false;
    } else if (feed.mode === "history") {
      const h = feed.history;
      const to = state.range.to != null ? fullTime(state.range.to) : "now";
      const parts = [el("strong", { text: "Back in time: " }),
        `${fullTime(state.range.from)} → ${to} · ${plural(list.entries.length, "record")}`
        + ` · ${h.scanned.toLocaleString("en")} read from Kafka`];
      if (h.stopped) parts.push(` · this page stopped early (${str(h.stopped)})`);
      if (h.loading) parts.push(el("span", { class: "muted", text: " · reading…" }));
      else if (h.cursor) parts.push(" ", button("load-more", "Load more", loadMore, "The next page of the range"));
      else parts.push(el("span", { class: "muted", id: "range-end", text: " · end of the range" }));
      if (feed.newWhileAway) {
        parts.push(el("span", { class: "muted", text: ` · ${plural(feed.newWhileAway, "new live record")} meanwhile` }));
      }
      parts.push(" ", button("back-to-live", "Back to live", backToLive, "Leave the range: the live view again"));
      bar.replaceChildren(...parts);
      bar.hidden = false;
    } else {
      bar.hidden = true;
      bar.replaceChildren();
    }
  }

  function button(id, text, onclick, title) {
    return el("button", { type: "button", id, text, title, onclick });
  }

  function loadMore() {
    readPage(feed.generation).catch((err) => showError(err.message));
  }

  /** The parts of the page that depend on the view: tabs, filter form, export link, range inputs. */
  function showView() {
    for (const tab of document.querySelectorAll(".tab[data-view]")) {
      tab.setAttribute("aria-selected", tab.dataset.view === state.view ? "true" : "false");
    }
    const requestTab = $("tab-request");
    if (state.view === "request") {
      const value = state.request.correlation_id || state.request.trace_id;
      requestTab.replaceChildren(`Request ${value}`, el("button", { type: "button", class: "tab-close", text: "×",
                                                                  title: "Close the request view", onclick: leaveRequest }));
      requestTab.hidden = false;
      requestTab.setAttribute("aria-selected", "true");
    } else {
      requestTab.hidden = true;
    }
    $("filter-fields").disabled = state.view === "request";
    $("range-fields").disabled = state.view === "request";
    $("filters").classList.toggle("muted-form", state.view === "request");
    for (const toggle of document.querySelectorAll(".toggle[data-stream]")) {
      toggle.disabled = state.view === "audit" || state.view === "security";
    }
    $("to-live").hidden = !state.range;
    $("list").dataset.view = state.view;
    fillForm();
    showExport();
    showMode();
    showContext();
    const what = state.view === "request" ? "request" : state.range ? "history" : state.view === "records" ? "live" : state.view;
    document.title = `logkafka ui · ${what}`;
  }

  let exportAllowed = false;

  function showExport() {
    const link = $("export");
    link.hidden = !exportAllowed || state.view === "request" || Boolean(state.range);
    link.href = `/api/export?${apiParams()}`;
  }

  // ------------------------------------------------------------------------------------------------
  // The filter form, mirrored in the URL

  function fillForm() {
    const level = $("f-level");
    const wanted = (state.filters.level || "").toUpperCase();
    if (wanted && ![...level.options].some((o) => o.value === wanted)) {
      level.append(el("option", { value: wanted, text: wanted })); // a level the URL names (a number, NOTICE)
    }
    level.value = wanted;
    for (const name of TEXT_FILTERS) {
      const input = $(`f-${name}`);
      if (document.activeElement !== input) input.value = state.filters[name] || "";
    }
    const chosen = (state.filters.stream || "").split(",").map((s) => s.trim()).filter(Boolean);
    for (const toggle of document.querySelectorAll(".toggle[data-stream]")) {
      const forced = state.view === "audit" || state.view === "security" ? toggle.dataset.stream === state.view : null;
      const on = forced != null ? forced : !chosen.length || chosen.includes(toggle.dataset.stream);
      toggle.setAttribute("aria-pressed", on ? "true" : "false");
    }
    $("from").value = state.range ? inputValue(state.range.from) : "";
    $("to").value = state.range && state.range.to != null ? inputValue(state.range.to) : "";
    $("range-zone").textContent = `(${utc ? "UTC" : "local time"})`;
    $("tz").textContent = `Times: ${utc ? "UTC" : "local"}`;
  }

  /** The filters as the form has them. */
  function readForm() {
    const filters = {};
    const level = $("f-level").value;
    if (level) filters.level = level;
    for (const name of TEXT_FILTERS) {
      const value = $(`f-${name}`).value.trim();
      if (value) filters[name] = value;
    }
    if (!(state.view === "audit" || state.view === "security")) {
      const on = [...document.querySelectorAll(".toggle[data-stream]")]
        .filter((t) => t.getAttribute("aria-pressed") === "true").map((t) => t.dataset.stream);
      if (on.length && on.length < STREAMS.length) filters.stream = on.join(",");
    } else if (state.filters.stream) {
      filters.stream = state.filters.stream; // kept for when the user goes back to all streams
    }
    return filters;
  }

  let typing = null;

  function filtersChanged(delay = 0) {
    clearTimeout(typing);
    typing = setTimeout(() => {
      const filters = readForm();
      if (JSON.stringify(filters) === JSON.stringify(state.filters)) return;
      state.filters = filters;
      state.record = null;
      writeUrl(false);
      load();
    }, delay);
  }

  function setFilter(name, value) {
    if (state.view === "request") state.view = "records";
    state.filters = { ...state.filters, [name]: value };
    state.record = null;
    writeUrl(true);
    load();
  }

  // ------------------------------------------------------------------------------------------------
  // Views: tabs, the request view, the range

  function setView(view) {
    if (view === state.view) return;
    state.view = view;
    state.request = null;
    state.record = null;
    writeUrl(true);
    load();
  }

  let enteredRequestFromPage = false;

  function openRequest(kind, value, around) {
    state.view = "request";
    state.request = { correlation_id: kind === "correlation_id" ? value : null, trace_id: kind === "trace_id" ? value : null,
                      around: around ? String(around) : null };
    state.record = null;
    state.range = null;
    enteredRequestFromPage = true;
    writeUrl(true);
    load();
  }

  function leaveRequest() {
    if (state.view !== "request") return;
    if (enteredRequestFromPage) {
      history.back(); // the filters the user had, as the URL before held them (popstate loads them)
      return;
    }
    state.view = "records";
    state.request = null;
    state.filters = {};
    state.record = null;
    writeUrl(true);
    load();
  }

  function readRange() {
    const from = inputMs($("from").value);
    const to = inputMs($("to").value);
    if (from == null) {
      showError("from: give the start of the range");
      $("from").focus();
      return;
    }
    if (to != null && to < from) {
      showError("to: the range ends before it starts");
      return;
    }
    state.range = { from, to };
    if (state.view === "request") state.view = "records";
    state.record = null;
    writeUrl(true);
    load();
  }

  /** The record among its neighbours: the same service a minute either side, from Kafka, its detail open. */
  function openContext(e) {
    state.view = "records";
    state.request = null;
    state.filters = e.service ? { service: str(e.service) } : {};
    state.range = { from: e.ts - 60_000, to: e.ts + 60_000 };
    state.record = { id: e.id, at: e.ts };
    state.limit = null;
    writeUrl(true);
    load();
  }

  function backToLive() {
    state.range = null;
    state.limit = null; // the page size was the range's
    state.record = null;
    writeUrl(true);
    load();
  }

  // ------------------------------------------------------------------------------------------------
  // The record's detail: pretty JSON (as text), a raw toggle, Kafka's metadata, copy buttons

  let detailEntry = null;
  let showRaw = false;

  function openDetail(e, { fromUrl = false } = {}) {
    detailEntry = e;
    showRaw = false;
    if (!fromUrl) {
      state.record = { id: e.id, at: e.ts };
      writeUrl(false);
    }
    pause("detail");
    list.select(keyOf(e));
    renderDetail();
    $("detail").hidden = false;
    document.body.classList.add("with-detail");
  }

  /** The panel closed (a new load: the URL's record, if any, opens again after it). */
  function closePanel() {
    detailEntry = null;
    $("detail").hidden = true;
    $("detail").replaceChildren();
    document.body.classList.remove("with-detail");
    list.select(null);
  }

  /** Close the detail: the record leaves the URL, and a pause the detail made ends with it. */
  function hideDetail() {
    if (detailEntry == null) return;
    closePanel();
    if (state.record) {
      state.record = null;
      writeUrl(false);
    }
    if (feed.paused && feed.reason === "detail") resume();
  }

  function field(label, value, filterName) {
    if (value == null || value === "") return null;
    const text = str(value);
    const dd = el("dd", {}, el("span", { class: "value", text }));
    if (filterName === "correlation_id" || filterName === "trace_id") {
      dd.append(" ", el("button", { type: "button", class: "small", text: "request view",
        id: filterName === "correlation_id" ? "detail-request" : "detail-trace",
        title: `This request across the three streams, by ${filterName}`,
        onclick: () => openRequest(filterName, text, detailEntry && detailEntry.ts) }));
    }
    if (filterName) {
      dd.append(" ", el("button", { type: "button", class: "small", text: "filter",
        title: `Show only records with ${filterName} = this`,
        onclick: () => setFilter(filterName, filterName === "level" ? text.toUpperCase() : text) }));
    }
    return [el("dt", { text: label }), dd];
  }

  function fieldList(rows) {
    const dl = el("dl", { class: "fields" });
    for (const row of rows) if (row) dl.append(...row);
    return dl;
  }

  function renderDetail() {
    const e = detailEntry;
    if (!e) return;
    const aside = $("detail");
    const json = el("pre", { class: "json", id: "detail-json", tabindex: "0", text: showRaw ? rawValue(e) : prettyValue(e) });
    const copyJson = button("copy-json", "Copy JSON", () => copyText(json.textContent, copyJson),
                            "Copy the record (as shown) to the clipboard");
    const permalink = () => new URL(stateUrl({ id: e.id, at: e.ts }), location.href).href;
    const copyLink = button("copy-link", "Copy permalink", () => copyText(permalink(), copyLink),
                            "Copy a link that opens this record");
    const rawToggle = el("button", { type: "button", id: "raw-toggle", text: showRaw ? "Pretty" : "Raw",
      title: "Show the value as the Kafka message held it, or pretty-printed", "aria-pressed": showRaw ? "true" : "false" });
    rawToggle.addEventListener("click", () => { showRaw = !showRaw; renderDetail(); });
    const context = el("button", { type: "button", id: "detail-context", text: "Context ±1 min", disabled: !e.ts,
      title: "The records of the same service a minute either side, read back from Kafka, the other filters dropped" });
    context.addEventListener("click", () => openContext(e));
    const head = el("div", { class: "detail-head" },
      el("span", { class: `lvl lvl-${levelBand(e)}`, text: levelText(e) }), " ",
      streamBadge(e), " ",
      el("span", { class: "detail-time", text: fullTime(e.ts) }),
      el("button", { type: "button", id: "detail-close", class: "close", text: "×", title: "Close (Esc)",
                     onclick: () => hideDetail() }));
    const parts = [head];
    if (e.flag) {
      parts.push(el("p", { class: "flag-line" }, el("span", { class: "flag", text: flagLabel(e.flag) }),
                    ` ${str(e.flag)}: shown as the message held it.`));
    }
    parts.push(el("div", { class: "actions" }, copyJson, copyLink, rawToggle, context));
    parts.push(el("p", { class: "message-full", text: messageText(e) }));
    parts.push(fieldList([
      field("service", e.service, "service"), field("logger", e.logger, "logger"), field("code", e.code, "code"),
      field("level", e.level, "level"), field("correlation id", e.correlation_id, "correlation_id"),
      field("trace id", e.trace_id, "trace_id"), field("tenant", e.tenant_id, "tenant_id"), field("error", e.error),
      field("time (record)", e.time),
    ]));
    for (const name of ["audit", "security"]) {
      if (e[name] && typeof e[name] === "object") {
        const rows = Object.entries(e[name]).filter(([, v]) => v != null)
          .map(([k, v]) => field(k, k === "diff" ? diffText(v) : v));
        parts.push(el("h3", { text: name }), fieldList(rows));
      }
    }
    parts.push(el("h3", { text: showRaw ? "Value (raw)" : e.record == null ? "Value (not JSON)" : "Record" }), json);
    const headers = e.headers && typeof e.headers === "object" ? Object.entries(e.headers) : [];
    parts.push(el("h3", { text: "Kafka" }), fieldList([
      field("topic", e.topic), field("partition", e.partition), field("offset", e.offset),
      field("timestamp", e.ts ? `${e.ts} (${new Date(e.ts).toISOString()})` : null), field("key", e.key),
    ]));
    if (headers.length) parts.push(el("h4", { text: "headers" }), fieldList(headers.map(([k, v]) => field(k, v))));
    aside.replaceChildren(...parts);
  }

  /** Copy to the clipboard (the async API where the page may; a selected textarea otherwise), and say so. */
  async function copyText(text, button) {
    let done = false;
    try {
      await navigator.clipboard.writeText(text);
      done = true;
    } catch {
      const area = el("textarea", { class: "offscreen", readonly: true });
      area.value = text;
      document.body.append(area);
      area.select();
      try {
        done = document.execCommand("copy");
      } catch {
        done = false;
      }
      area.remove();
    }
    const label = button.textContent;
    button.textContent = done ? "Copied ✓" : "Copy failed";
    button.classList.add(done ? "copied" : "failed");
    setTimeout(() => {
      button.textContent = label;
      button.classList.remove("copied", "failed");
    }, 1500);
  }

  /** Open the record a permalink names: from the page, else read back from Kafka at its time. */
  async function openPermalink(generation, record) {
    const found = list.entries.find((e) => e.id === record.id && (record.at == null || String(e.ts) === String(record.at)));
    if (found) {
      openDetail(found, { fromUrl: true });
      return;
    }
    const at = Number(record.at);
    if (!Number.isFinite(at)) {
      showError(`record: ${record.id} is not on the page, and the link gives no time to find it at`);
      return;
    }
    try {
      const params = new URLSearchParams({ from: String(at), to: String(at), limit: "5000" });
      const data = await getJson("/api/history", params);
      if (generation !== feed.generation) return;
      const e = data.records.find((r) => r.id === record.id);
      if (e) openDetail(e, { fromUrl: true });
      else showError(`record: ${record.id} was not found in Kafka at ${fullTime(at)} (gone with the topic's retention?)`);
    } catch (err) {
      if (generation === feed.generation) showError(`record: ${err.message}`);
    }
  }

  // ------------------------------------------------------------------------------------------------
  // The charts: records per second by level, errors per minute (inline SVG, from the rates events)

  const BANDS = ["error", "warning", "info", "debug"]; // bottom to top: errors are never hidden under the rest

  function drawRates(rates) {
    if (!rates || typeof rates !== "object") return;
    drawPerSecond(Array.isArray(rates.seconds) ? rates.seconds : []);
    drawPerMinute(Array.isArray(rates.minutes) ? rates.minutes : []);
  }

  function svgBar(x, y, width, height, className) {
    return svg("rect", { x: x.toFixed(2), y: y.toFixed(2), width: Math.max(1, width).toFixed(2),
                         height: height.toFixed(2), class: className });
  }

  function drawPerSecond(seconds) {
    const chart = $("chart-rate");
    const width = 360;
    const height = 44;
    const totals = seconds.map((s) => BANDS.reduce((sum, b) => sum + (Number(s[b]) || 0), 0));
    const peak = Math.max(1, ...totals);
    const bar = width / Math.max(1, seconds.length);
    const nodes = [svg("line", { x1: 0, y1: height - 0.5, x2: width, y2: height - 0.5, class: "axis" })];
    seconds.forEach((s, i) => {
      let y = height;
      const title = [];
      for (const band of BANDS) {
        const n = Number(s[band]) || 0;
        if (!n) continue;
        const h = Math.max(1, (n / peak) * (height - 2));
        y -= h;
        nodes.push(svgBar(i * bar, y, bar - 0.6, h, `bar b-${band}`));
        title.push(`${n} ${band}`);
      }
      if (title.length) {
        nodes[nodes.length - 1].append(svg("title", {}, `${shortClock(Number(s.t) * 1000)}: ${title.join(", ")}`));
      }
    });
    chart.replaceChildren(...nodes);
    const total = totals.reduce((a, b) => a + b, 0);
    $("chart-rate-caption").textContent = `records/s, last 2 min · peak ${Math.max(0, ...totals)}/s`;
  }

  function drawPerMinute(minutes) {
    const chart = $("chart-errors");
    const width = 180;
    const height = 44;
    const counts = minutes.map((m) => Number(m.errors) || 0);
    const peak = Math.max(1, ...counts);
    const bar = width / Math.max(1, minutes.length);
    const nodes = [svg("line", { x1: 0, y1: height - 0.5, x2: width, y2: height - 0.5, class: "axis" })];
    minutes.forEach((m, i) => {
      const n = counts[i];
      if (!n) return;
      const h = Math.max(1, (n / peak) * (height - 2));
      const rect = svgBar(i * bar + 1, height - h, bar - 2, h, "bar b-error");
      rect.append(svg("title", {}, `${shortClock(Number(m.t) * 1000)}: ${n} error${n === 1 ? "" : "s"}`));
      nodes.push(rect);
    });
    chart.replaceChildren(...nodes);
    const total = counts.reduce((a, b) => a + b, 0);
    $("chart-errors-caption").textContent = `errors/min, last 15 min · ${total} in all`;
  }

  // ------------------------------------------------------------------------------------------------
  // Wiring: clicks, scrolling, keys, the address

  function onListClick(event) {
    const row = event.target.closest(".row");
    if (!row || !row.entry) return;
    const action = event.target.closest("[data-action]");
    if (action && action.dataset.action === "request") {
      event.stopPropagation();
      openRequest(action.dataset.kind, action.textContent, row.entry.ts);
      return;
    }
    openDetail(row.entry);
  }

  function onScroll() {
    list.schedule();
    if (feed.mode !== "live") return;
    // scrolling back pauses (what arrives is buffered, not pushed under the reader); back at the bottom resumes
    if (!list.atBottom()) pause("scroll");
    else if (feed.paused && feed.reason === "scroll") resume();
  }

  /** j/k: the next or previous record's detail. */
  function step(delta) {
    if (!list.entries.length) return;
    const i = list.selected == null ? (delta > 0 ? -1 : list.entries.length) : list.indexOfKey(list.selected);
    const next = list.entries[Math.min(list.entries.length - 1, Math.max(0, i + delta))];
    if (next) openDetail(next);
  }

  function onKey(event) {
    const target = event.target;
    const typingHere = target instanceof HTMLElement
      && (target.matches("input, select, textarea") || target.isContentEditable);
    if (event.key === "Escape") {
      if (typingHere) target.blur();
      else if (detailEntry) hideDetail();
      else if (state.view === "request") leaveRequest();
      return;
    }
    if (typingHere || event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.key === "/") {
      event.preventDefault();
      $("f-q").focus();
      $("f-q").select();
    } else if (event.key === "p") {
      togglePause();
    } else if (event.key === "j") {
      step(1);
    } else if (event.key === "k") {
      step(-1);
    }
  }

  function togglePause() {
    if (feed.paused) resume();
    else pause("user");
  }

  function wire() {
    $("sizer").addEventListener("click", onListClick);
    $("scroller").addEventListener("scroll", onScroll, { passive: true });
    $("pause").addEventListener("click", togglePause);
    $("new-count").addEventListener("click", resume);
    for (const tab of document.querySelectorAll(".tab[data-view]")) {
      tab.addEventListener("click", () => setView(tab.dataset.view));
    }
    $("f-level").addEventListener("change", () => filtersChanged());
    for (const name of TEXT_FILTERS) {
      const input = $(`f-${name}`);
      input.addEventListener("input", () => filtersChanged(400));
      input.addEventListener("keydown", (event) => { if (event.key === "Enter") filtersChanged(0); });
    }
    for (const toggle of document.querySelectorAll(".toggle[data-stream]")) {
      toggle.addEventListener("click", () => {
        toggle.setAttribute("aria-pressed", toggle.getAttribute("aria-pressed") === "true" ? "false" : "true");
        const toggles = [...document.querySelectorAll(".toggle[data-stream]")];
        if (toggles.every((t) => t.getAttribute("aria-pressed") === "false")) {
          for (const t of toggles) t.setAttribute("aria-pressed", "true"); // none chosen means all: show it so
        }
        filtersChanged();
      });
    }
    $("filters").addEventListener("submit", (event) => { event.preventDefault(); filtersChanged(0); });
    $("clear").addEventListener("click", () => {
      clearTimeout(typing);
      state.filters = {};
      state.record = null;
      writeUrl(false);
      load();
    });
    $("read-range").addEventListener("click", readRange);
    $("to-live").addEventListener("click", backToLive);
    $("tz").addEventListener("click", () => {
      utc = !utc;
      localStorage.setItem("logkafka-ui-tz", utc ? "utc" : "local");
      fillForm();
      list.setView(state.view);
      showContext();
      if (detailEntry) renderDetail();
    });
    document.addEventListener("keydown", onKey);
    window.addEventListener("popstate", () => {
      enteredRequestFromPage = false;
      readUrl();
      load();
    });
    window.addEventListener("resize", () => list.schedule());
  }

  async function start() {
    wire();
    readUrl();
    if (state.range && Number.isNaN(state.range.from)) {
      state.range = null;
      showError("from: expected an ISO 8601 time (2026-12-06T10:00:00Z) or epoch milliseconds");
    }
    getJson("/api/status").then((status) => {
      exportAllowed = status.export === true;
      showExport();
      if (!feed.kafka) showKafka(status);
    }).catch(() => {});
    await load();
  }

  start();
})();
