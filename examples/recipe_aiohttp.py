"""Embedding recipe: an aiohttp web app, the kernel booted in a cleanup context.

**The kernel idea.** aiohttp's cleanup contexts (``app.cleanup_ctx``) are its lifespan: the
code before ``yield`` runs at startup, the code after it at cleanup. ``async with Kernel():``
around that ``yield`` boots the kernel before the server takes its first request and shuts it
down after the last one. The handlers call the service of ``embed_service.py``: per-key
debounce with ``mod_delayed_work()`` and an ordered journal on an
``alloc_ordered_workqueue()``; the endpoints and their answers are those of
``recipe_starlette.py``.

aiohttp runs the startup half in the task that then starts the server, so its request
handlers inherit that task's context: they begin as the kernel's init task, and each becomes
a kernel task of its own the first time it sleeps in the kernel (``GET /status`` waiting
for deferred work). A framework that starts its handlers elsewhere (uvicorn does) gets user
tasks entering the kernel instead; the handler code is the same.

**Why an application wants it.** ``POST /touch/{key}``: a burst of touches of one key gives
one reindexing of that key once it has been quiet for ``--quiet-ms``. ``POST
/write/{record}``: the record is appended to a journal written in the background, one
record at a time, in the order the requests came. ``GET /status[?runs=N&records=M]``: what
ran, once N debounced runs have finished and M records are written. At cleanup the armed keys
run at once (``--pending leave``: the kernel cancels and names them) and the journal drains;
then the kernel halts and the script prints what it left behind.

Run it: ``python examples/recipe_aiohttp.py [--port 8080] [--quiet-ms 200]
[--pending flush|leave]``
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator, Sequence

from aiohttp import web
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

from kdefer_async import Kernel

#: Where the cleanup context leaves the kernel and the service, for handlers and for after.
KERNEL = web.AppKey("kernel", Kernel)
SERVICE = web.AppKey("service", Service)


async def touch(request: web.Request) -> web.Response:
    """``POST /touch/{key}``: push the key's reindexing back (never sleeps)."""
    key = request.match_info["key"]
    try:
        touches = request.app[SERVICE].touch(key)
    except ServiceClosed as exc:
        return web.json_response({"error": str(exc)}, status=503)
    return web.json_response({"key": key, "touches": touches}, status=202)


async def write(request: web.Request) -> web.Response:
    """``POST /write/{record}``: queue the record on the ordered journal (never sleeps)."""
    record = request.match_info["record"]
    try:
        seq = request.app[SERVICE].write(record)
    except ServiceClosed as exc:
        return web.json_response({"error": str(exc)}, status=503)
    return web.json_response({"record": record, "seq": seq}, status=202)


async def status(request: web.Request) -> web.Response:
    """``GET /status[?runs=N&records=M&timeout_ms=T]``: what ran, once N runs and M writes
    have happened (the handler sleeps in the kernel meanwhile)."""
    try:
        runs, records, timeout_ms = (
            int(request.query.get(name, default))
            for name, default in (("runs", 0), ("records", 0), ("timeout_ms", 5000))
        )
    except ValueError:
        return web.json_response({"error": "runs, records and timeout_ms are numbers"}, status=400)
    return web.json_response(await request.app[SERVICE].status_after(runs, records, timeout_ms))


def create_app(settings: Settings) -> web.Application:
    """The app. Once it has started, ``app[KERNEL]`` and ``app[SERVICE]`` are the kernel and
    the service (still readable after cleanup)."""

    async def kernel_context(app: web.Application) -> AsyncIterator[None]:
        async with settings.kernel() as kernel:
            app[KERNEL] = kernel
            app[SERVICE] = service = Service(settings)
            yield  # the app serves requests here
            await service.close()  # run (or leave) the armed keys, drain the journal
        # the kernel has halted: kernel.shutdown_report says what it left behind

    app = web.Application()
    app.cleanup_ctx.append(kernel_context)
    app.add_routes(
        [
            web.post("/touch/{key}", touch),
            web.post("/write/{record}", write),
            web.get("/status", status),
        ]
    )
    return app


def main(argv: Sequence[str] | None = None) -> None:
    """Serve until Ctrl+C, then print what the kernel did and left behind."""
    p = argparse.ArgumentParser(description="An aiohttp app with a kernel in a cleanup context.")
    add_arguments(p, default_port=8080)
    args = p.parse_args(argv)
    app = create_app(settings_from(args))
    sock = listening_socket(args.host, args.port)
    announce(f"http://{args.host}:{sock.getsockname()[1]}")
    web.run_app(app, sock=sock, print=None, access_log=None)  # returns after cleanup
    print("\n".join(exit_report(app.get(KERNEL), app.get(SERVICE))))


if __name__ == "__main__":
    main()
