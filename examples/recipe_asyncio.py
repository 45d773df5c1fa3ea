"""Embedding recipe: a plain asyncio TCP line server, its parts in an ``asyncio.TaskGroup``.

**The kernel idea.** The service's task group holds the kernel in a task of its own (booted
with ``async with Kernel():``, shut down when the server is down) while the main task runs an
``asyncio.start_server()`` server. The server starts a task per connection, outside the
kernel's context; each connection handler enters the kernel on its first call as a user task
(process context, a pid of its own), so it may queue work and sleep in the kernel. If either
part fails, the task group cancels the other and nothing is left running; the kernel names
whatever the cancellation left undone.

The handlers speak the line protocol of ``embed_service.line_command()``: ``touch KEY``
debounces the key's reindexing with ``mod_delayed_work()``; ``write TEXT`` appends a record to
a journal on an ``alloc_ordered_workqueue()``, written in the background in the order the
lines came; ``status [RUNS [RECORDS [TIMEOUT_MS]]]`` answers with what ran, as one line of
JSON, once RUNS debounced runs have finished and RECORDS records are written; ``quit`` closes.

Ctrl+C (or SIGTERM) stops the server, closes the connections, then lets the kernel task run
the keys still armed (``--pending leave``: the kernel cancels and names them), drain the
journal and halt; the script prints what the kernel left behind.

``asyncio.TaskGroup`` is new in Python 3.11; on 3.10 the same code runs on anyio's task group
(:class:`AnyioTaskGroup` below: ``create_task()`` on top of ``start_soon()``).

Run it: ``python examples/recipe_asyncio.py [--port 7000] [--quiet-ms 200]
[--pending flush|leave]``, then ``nc localhost 7000`` and type ``touch a``, ``write hello``,
``status 1 1``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Callable, Coroutine, Sequence
from types import TracebackType
from typing import Any

import anyio
from embed_service import (
    Running,
    Service,
    Settings,
    add_arguments,
    announce,
    exit_report,
    line_command,
    settings_from,
)


class AnyioTaskGroup:
    """``asyncio.TaskGroup``'s ``create_task()`` on an anyio task group (for Python 3.10)."""

    def __init__(self) -> None:
        self._tg = anyio.create_task_group()

    async def __aenter__(self) -> AnyioTaskGroup:
        await self._tg.__aenter__()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        return await self._tg.__aexit__(et, e, tb)

    def create_task(self, coro: Coroutine[Any, Any, Any], *, name: str | None = None) -> None:
        async def run() -> None:
            await coro

        self._tg.start_soon(run, name=name)


if sys.version_info >= (3, 11):

    def task_group(fallback: bool = False) -> asyncio.TaskGroup | AnyioTaskGroup:
        """``asyncio.TaskGroup()`` (or, if *fallback*, the anyio-based one)."""
        return AnyioTaskGroup() if fallback else asyncio.TaskGroup()

else:  # Python 3.10 has no asyncio.TaskGroup

    def task_group(fallback: bool = False) -> AnyioTaskGroup:
        """The anyio-based task group."""
        return AnyioTaskGroup()


async def handle_connection(
    service: Service,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    idle: set[asyncio.StreamWriter],
) -> None:
    """One connection: a task the server started, outside the kernel's context. Its first
    kernel call enters the kernel as a user task. While it waits for a line, its stream is
    in *idle*; once the service shuts down it answers the line it has, then closes."""
    try:
        while not service.closing:
            idle.add(writer)
            try:
                line = await reader.readline()
            finally:
                idle.discard(writer)
            if not line:
                break
            reply = await line_command(service, line.decode(errors="replace"))
            writer.write(b"bye\n" if reply is None else reply.encode() + b"\n")
            await writer.drain()
            if reply is None:
                break
    except ConnectionError:
        pass  # the client went away
    finally:
        writer.close()


async def run_kernel(
    settings: Settings, running: Running, booted: asyncio.Event, server_down: asyncio.Event
) -> None:
    """The kernel's task: boot, make the service, wait until the server is down, then shut
    the service and the kernel down."""
    async with settings.kernel() as kernel:
        running.kernel = kernel
        running.service = service = Service(settings)
        booted.set()
        await server_down.wait()
        await service.close()  # run (or leave) the armed keys, drain the journal


async def serve(
    settings: Settings,
    host: str,
    port: int,
    stop: asyncio.Event,
    on_ready: Callable[[Running], object] = lambda running: None,
    *,
    fallback: bool = False,
) -> Running:
    """
    Serve on *host*:*port* until *stop* is set; *on_ready* gets the running parts (the
    port, the kernel, the service) once the server listens. Returns them once the kernel has
    halted.
    """
    running = Running()
    booted = asyncio.Event()
    server_down = asyncio.Event()
    handlers: set[asyncio.Task[Any]] = set()
    idle: set[asyncio.StreamWriter] = set()  # connections waiting for their next line
    async with task_group(fallback) as tg:
        tg.create_task(run_kernel(settings, running, booted, server_down), name="kernel")
        await booted.wait()
        service = running.service
        assert service is not None

        async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            handlers.add(task)
            try:
                await handle_connection(service, reader, writer, idle)
            finally:
                handlers.discard(task)

        server = await asyncio.start_server(on_connection, host, port)
        try:
            running.port = server.sockets[0].getsockname()[1]
            on_ready(running)
            await stop.wait()
        finally:
            server.close()  # no new connections
            service.shut_down()  # handlers waiting in the kernel answer now, then close
            for writer in idle:
                writer.close()  # idle ones see the end of their stream
            await asyncio.gather(*handlers)
            await server.wait_closed()
            server_down.set()  # now the kernel task shuts down
    return running


async def _main(settings: Settings, host: str, port: int) -> Running:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # Windows: Ctrl+C raises instead
            loop.add_signal_handler(sig, stop.set)
    return await serve(settings, host, port, stop, lambda r: announce(f"{host}:{r.port}"))


def main(argv: Sequence[str] | None = None) -> None:
    """Serve until Ctrl+C, then print what the kernel did and left behind."""
    p = argparse.ArgumentParser(description="An asyncio TCP line server with a kernel.")
    add_arguments(p, default_port=7000)
    args = p.parse_args(argv)
    running = asyncio.run(_main(settings_from(args), args.host, args.port))
    print("\n".join(exit_report(running.kernel, running.service)))


if __name__ == "__main__":
    main()
