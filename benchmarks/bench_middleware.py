"""What the request helpers cost: the middleware per request, timed per block, SamplingFilter per record.

    python benchmarks/bench_middleware.py [--n N] [--rounds R]

In process, no server and no broker: the ASGI and WSGI apps are called directly
with a minimal request, bare and wrapped, back to back in interleaved rounds.
The records go to a logger with a NullHandler, so the figures are the helpers'
own cost (binding the context, the correlation id, making the record); what a
KafkaLogHandler adds per record is bench_handler.py's subject. Medians over the
rounds; shared machines are noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import time
from collections.abc import Callable
from typing import Any

import logkafka

SCOPE = {"type": "http", "method": "GET", "path": "/orders/7", "raw_path": b"/orders/7", "query_string": b"",
         "headers": [(b"user-agent", b"bench/1.0"), (b"x-correlation-id", b"req-7f3a")],
         "client": ("10.0.0.7", 50123), "server": ("127.0.0.1", 8000), "scheme": "http", "http_version": "1.1"}
ENVIRON = {"REQUEST_METHOD": "GET", "PATH_INFO": "/orders/7", "HTTP_USER_AGENT": "bench/1.0",
           "HTTP_X_CORRELATION_ID": "req-7f3a", "REMOTE_ADDR": "10.0.0.7", "wsgi.url_scheme": "http"}


async def asgi_app(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"ok"})


def wsgi_app(environ: Any, start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


def asgi_rate(app: Any, n: int) -> float:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        pass

    async def run() -> float:
        start = time.perf_counter()
        for _ in range(n):
            await app(dict(SCOPE), receive, send)
        return (time.perf_counter() - start) / n * 1e6

    return asyncio.run(run())


def wsgi_rate(app: Any, n: int) -> float:
    def start_response(status: str, headers: Any, exc_info: Any = None) -> Callable[[bytes], None]:
        return lambda data: None

    start = time.perf_counter()
    for _ in range(n):
        body = app(dict(ENVIRON), start_response)
        for _chunk in body:
            pass
        close = getattr(body, "close", None)
        if close is not None:
            close()
    return (time.perf_counter() - start) / n * 1e6


def timed_rate(use: bool, n: int) -> float:
    lg = logging.getLogger("bench.requests")
    start = time.perf_counter()
    if use:
        for _ in range(n):
            with logkafka.timed("step", logger=lg, job="j-1"):
                pass
    else:
        for _ in range(n):
            pass
    return (time.perf_counter() - start) / n * 1e6


def filter_rate(f: logging.Filter | None, n: int) -> float:
    lg = logging.getLogger("bench.requests")
    records = [lg.makeRecord(lg.name, logging.INFO, __file__, 1, "step", None, None) for _ in range(n)]
    start = time.perf_counter()
    if f is not None:
        with logkafka.bound(correlation_id="req-7f3a"):
            for r in records:
                f.filter(r)
    else:
        for _r in records:
            pass
    return (time.perf_counter() - start) / n * 1e6


def compare(label: str, bare: Callable[[], float], wrapped: Callable[[], float], rounds: int) -> None:
    bare()
    wrapped()
    pairs = [(bare(), wrapped()) for _ in range(rounds)]
    b = statistics.median(p[0] for p in pairs)
    w = statistics.median(p[1] for p in pairs)
    cost = statistics.median(p[1] - p[0] for p in pairs)
    print(f"  {label:<34}{b:>10.2f}{w:>10.2f}{cost:>10.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000, help="requests, blocks or records per measurement")
    parser.add_argument("--rounds", type=int, default=7)
    opts = parser.parse_args()
    lg = logging.getLogger("bench.requests")
    lg.addHandler(logging.NullHandler())
    lg.propagate = False
    lg.setLevel(logging.INFO)
    n = opts.n
    asgi = logkafka.ASGIMiddleware(asgi_app, logger=lg)
    wsgi = logkafka.WSGIMiddleware(wsgi_app, logger=lg)
    print(f"{n} per measurement, {opts.rounds} interleaved rounds; medians, µs each\n")
    print(f"  {'':<34}{'bare':>10}{'with':>10}{'cost':>10}")
    compare("ASGIMiddleware, per request", lambda: asgi_rate(asgi_app, n), lambda: asgi_rate(asgi, n), opts.rounds)
    compare("WSGIMiddleware, per request", lambda: wsgi_rate(wsgi_app, n), lambda: wsgi_rate(wsgi, n), opts.rounds)
    compare("timed, per block (2 records)", lambda: timed_rate(False, n), lambda: timed_rate(True, n), opts.rounds)
    compare("SamplingFilter(0.1), per record", lambda: filter_rate(None, n),
            lambda: filter_rate(logkafka.SamplingFilter(0.1), n), opts.rounds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
