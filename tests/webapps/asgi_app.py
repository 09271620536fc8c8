"""A Starlette application wrapped in ASGIMiddleware, served by uvicorn inside the test process."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

import logkafka

LOGGER = "webapp.asgi"
log = logging.getLogger(LOGGER)


class Gate:
    """Holds each request until ``size`` requests are inside the endpoint together."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.count = 0
        self.event = asyncio.Event()

    async def wait(self, timeout: float) -> bool:
        self.count += 1
        if self.count >= self.size:
            self.event.set()
        try:
            await asyncio.wait_for(self.event.wait(), timeout)
        except asyncio.TimeoutError:
            return False
        return True


class Outer:
    """An outer ASGI layer that logs ``outer_saw_exception`` when an exception comes out of the middleware."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        try:
            await self.app(scope, receive, send)
        except Exception as exc:
            log.error("outer_saw_exception", extra={"exception_type": type(exc).__name__})
            raise


def make_app(**options: Any) -> Any:
    """The Starlette app wrapped in ``ASGIMiddleware(**options)`` and an ``Outer`` layer."""
    gates: dict[str, Gate] = {}
    lifespan_seen: list[str] = []

    async def work(request: Request) -> Response:
        n = int(request.query_params.get("n", "0"))
        size = int(request.query_params.get("gate", "1"))
        gate = gates.setdefault(request.query_params.get("group", "default"), Gate(size))
        on_entry = logkafka.get_context()
        log.info("work_started", extra={"n": n})
        together = await gate.wait(60.0)  # every request of the group is between its two records
        log.info("work_done", extra={"n": n, "together": together})
        logkafka.bind(stray=f"bound by request {n}")  # must not reach any other request
        return JSONResponse({"n": n, "together": together, "context": on_entry,
                             "thread": threading.current_thread().name})

    async def fail(request: Request) -> Response:
        log.info("about_to_fail")
        raise RuntimeError("boom in the endpoint")

    async def stream(request: Request) -> Response:
        async def chunks() -> AsyncIterator[bytes]:
            for i in range(3):
                log.info("chunk", extra={"chunk": i})
                await asyncio.sleep(0.01)
                yield f"chunk {i}\n".encode()

        return StreamingResponse(chunks(), media_type="text/plain")

    async def stream_fail(request: Request) -> Response:
        async def chunks() -> AsyncIterator[bytes]:
            yield b"first chunk\n"
            await asyncio.sleep(0.01)
            raise ValueError("broken while streaming")

        return StreamingResponse(chunks(), media_type="text/plain")

    async def health(request: Request) -> Response:
        log.info("health_checked")
        return PlainTextResponse("ok")

    async def status(request: Request) -> Response:
        return PlainTextResponse("unavailable", status_code=int(request.query_params.get("code", "503")))

    async def hang(request: Request) -> Response:
        """Never ends: with ``?stream=1`` after the first chunk was sent, else before any response."""
        log.info("hang_started")
        if request.query_params.get("stream") != "1":
            await asyncio.Event().wait()

        async def chunks() -> AsyncIterator[bytes]:
            yield b"started\n"
            await asyncio.Event().wait()

        return StreamingResponse(chunks(), media_type="text/plain")

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        lifespan_seen.append("startup")
        yield
        lifespan_seen.append("shutdown")

    inner = Starlette(
        routes=[
            Route("/work", work),
            Route("/fail", fail),
            Route("/stream", stream),
            Route("/stream-fail", stream_fail),
            Route("/health", health),
            Route("/status", status),
            Route("/hang", hang),
        ],
        lifespan=lifespan,
    )
    app = Outer(logkafka.ASGIMiddleware(inner, **options))
    app.lifespan_seen = lifespan_seen  # type: ignore[attr-defined]
    return app



def make_fastapi_app(outermost: bool) -> Any:
    """A FastAPI app whose ``/boom`` raises, with ASGIMiddleware around it or added with ``add_middleware``."""
    from fastapi import FastAPI

    api = FastAPI()

    @api.get("/boom")
    async def boom() -> None:
        log.info("about_to_fail")
        raise RuntimeError("boom in FastAPI")

    if outermost:
        return logkafka.ASGIMiddleware(api)
    api.add_middleware(logkafka.ASGIMiddleware)
    return api
