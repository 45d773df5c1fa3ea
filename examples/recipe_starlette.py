"""Embedding recipe: a Starlette app served by uvicorn, the kernel booted in its lifespan.

**The kernel idea.** A kernel is booted once per process and outlives every request, as
``async with Kernel():`` around the lifespan's ``yield``: it boots before the first request
and shuts down after the last one. The request handlers are tasks uvicorn starts, outside
the kernel's context; each one enters the kernel on its first call as a user task, in process
context, so it may queue work and sleep in the kernel. ``embed_service.py`` holds what the
handlers call: per-key debounce with ``mod_delayed_work()`` and an ordered journal on an
``alloc_ordered_workqueue()``.

**Why an application wants it.** ``POST /touch/{key}`` is a change notification: a burst of
touches of one key gives one reindexing of that key, once it has been quiet for
``--quiet-ms``. ``POST /write/{record}`` appends a record to a journal that is written in the
background, one record at a time, in the order the requests came. ``GET /status`` reports what
ran; ``?runs=N&records=M`` makes it wait (asleep in the kernel, at most ``timeout_ms``) until
N debounced runs have finished and M records are written. At shutdown the lifespan runs the
keys still armed (or, with ``--pending leave``, leaves them to the kernel, which cancels and
names each one) and drains the journal; then the kernel halts and the script prints what it
left behind: nothing, after a flush.

Handlers are ``async def``: Starlette runs a plain ``def`` endpoint in a worker thread, and a
kernel API called from another thread raises ``NoKernelError``.

Run it: ``python examples/recipe_starlette.py [--port 8000] [--quiet-ms 200]
[--pending flush|leave]``, then for instance::

    curl -X POST localhost:8000/touch/a; curl -X POST localhost:8000/write/hello
    curl 'localhost:8000/status?runs=1&records=1'
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from embed_service import (
    Service,
    ServiceClosed,
    Settings,
    add_arguments,
    announce,
    exit_report,
    listening_socket,
    settings_from,
)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


def _service(request: Request) -> Service:
    service: Service = request.state.service  # the lifespan's state, handed to every request
    return service


async def touch(request: Request) -> Response:
    """``POST /touch/{key}``: push the key's reindexing back (never sleeps)."""
    key = request.path_params["key"]
    try:
        touches = _service(request).touch(key)
    except ServiceClosed as exc:
        return JSONResponse({"error": str(exc)}, status_code=503)
    return JSONResponse({"key": key, "touches": touches}, status_code=202)


async def write(request: Request) -> Response:
    """``POST /write/{record}``: queue the record on the ordered journal (never sleeps)."""
    record = request.path_params["record"]
    try:
        seq = _service(request).write(record)
    except ServiceClosed as exc:
        return JSONResponse({"error": str(exc)}, status_code=503)
    return JSONResponse({"record": record, "seq": seq}, status_code=202)


async def status(request: Request) -> Response:
    """``GET /status[?runs=N&records=M&timeout_ms=T]``: what ran, once N runs and M writes
    have happened (the handler sleeps in the kernel meanwhile)."""
    try:
        runs, records, timeout_ms = (
            int(request.query_params.get(name, default))
            for name, default in (("runs", 0), ("records", 0), ("timeout_ms", 5000))
        )
    except ValueError:
        return JSONResponse({"error": "runs, records and timeout_ms are numbers"}, 400)
    return JSONResponse(await _service(request).status_after(runs, records, timeout_ms))


def create_app(settings: Settings) -> Starlette:
    """The app. Once its lifespan has begun, ``app.state.kernel`` and ``app.state.service``
    are the kernel and the service (still readable after shutdown)."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        async with settings.kernel() as kernel:
            service = Service(settings)
            app.state.kernel = kernel
            app.state.service = service
            yield {"service": service}  # the app serves requests here
            await service.close()  # run (or leave) the armed keys, drain the journal
        # the kernel has halted: kernel.shutdown_report says what it left behind

    return Starlette(
        routes=[
            Route("/touch/{key}", touch, methods=["POST"]),
            Route("/write/{record}", write, methods=["POST"]),
            Route("/status", status, methods=["GET"]),
        ],
        lifespan=lifespan,
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Serve until Ctrl+C, then print what the kernel did and left behind."""
    p = argparse.ArgumentParser(description="A Starlette app with a kernel in its lifespan.")
    add_arguments(p, default_port=8000)
    args = p.parse_args(argv)
    app = create_app(settings_from(args))
    sock = listening_socket(args.host, args.port)
    server = uvicorn.Server(uvicorn.Config(app, lifespan="on", log_level="warning"))
    announce(f"http://{args.host}:{sock.getsockname()[1]}")
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass  # uvicorn shut down cleanly first, then passed Ctrl+C on
    state = app.state
    for line in exit_report(getattr(state, "kernel", None), getattr(state, "service", None)):
        print(line)


if __name__ == "__main__":
    main()
