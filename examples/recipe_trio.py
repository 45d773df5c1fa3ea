"""Embedding recipe: a trio TCP line server, the kernel in a task of the service's nursery.

**The kernel idea.** The service's nursery holds the kernel in a task of its own (booted with
``async with Kernel():``, which runs on trio through anyio) and ``trio.serve_tcp()``. Each
connection gets a task in a nursery of handlers, started outside the kernel's context; its
first kernel call enters the kernel as a user task (process context, a pid of its own), so it
may queue work and sleep in the kernel.

The handlers speak the line protocol of ``embed_service.line_command()``, as
``recipe_asyncio.py`` does: ``touch KEY`` debounces the key's reindexing with
``mod_delayed_work()``; ``write TEXT`` appends a record to a journal on an
``alloc_ordered_workqueue()``, written in the order the lines came; ``status [RUNS [RECORDS
[TIMEOUT_MS]]]`` answers with what ran, as one line of JSON; ``quit`` closes.

Ctrl+C (or SIGTERM) stops accepting, lets every handler answer the line it has (a status
request waiting in the kernel is woken), closes the connections, then lets the kernel task run
the keys still armed (``--pending leave``: the kernel cancels and names them), drain the
journal and halt; the script prints what the kernel left behind.

Run it: ``python examples/recipe_trio.py [--port 7001] [--quiet-ms 200]
[--pending flush|leave]``
"""

from __future__ import annotations

import argparse
import signal
from collections.abc import Callable, Sequence
from functools import partial

import trio
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

#: The longest command line a client may send.
MAX_LINE = 4096


class LineReader:
    """Lines from a trio stream (trio streams carry bytes, not lines)."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.buf = bytearray()

    async def readline(self) -> bytes:
        """The next line, with its ``\\n``; ``b""`` once the stream has ended (or a line
        grew past ``MAX_LINE``)."""
        while (end := self.buf.find(b"\n")) < 0:
            chunk = await self.stream.receive_some() if len(self.buf) <= MAX_LINE else b""
            if not chunk:
                return b""
            self.buf += chunk
        line = bytes(self.buf[: end + 1])
        del self.buf[: end + 1]
        return line


async def handle_connection(
    service: Service, idle: set[trio.CancelScope], stream: trio.SocketStream
) -> None:
    """One connection: a task outside the kernel's context; its first kernel call enters
    the kernel as a user task. While it waits for a line, a cancel scope of its own is in
    *idle*; once the service shuts down it answers the line it has, then closes."""
    reader = LineReader(stream)
    async with stream:
        try:
            while not service.closing:
                line = b""
                with trio.CancelScope() as waiting:
                    idle.add(waiting)
                    try:
                        line = await reader.readline()
                    finally:
                        idle.discard(waiting)
                if not line:
                    return  # the client closed, or the service shut down while we waited
                reply = await line_command(service, line.decode(errors="replace"))
                await stream.send_all(b"bye\n" if reply is None else reply.encode() + b"\n")
                if reply is None:
                    return
        except trio.BrokenResourceError:
            pass  # the client went away


async def run_kernel(
    settings: Settings,
    running: Running,
    server_down: trio.Event,
    *,
    task_status: trio.TaskStatus[Service] = trio.TASK_STATUS_IGNORED,
) -> None:
    """The kernel's task: boot, make the service (handed to ``nursery.start()``), wait until
    the server is down, then shut the service and the kernel down."""
    async with settings.kernel() as kernel:
        running.kernel = kernel
        running.service = service = Service(settings)
        task_status.started(service)
        await server_down.wait()
        await service.close()  # run (or leave) the armed keys, drain the journal


async def serve(
    settings: Settings,
    host: str,
    port: int,
    stop: trio.Event,
    on_ready: Callable[[Running], object] = lambda running: None,
) -> Running:
    """
    Serve on *host*:*port* until *stop* is set; *on_ready* gets the running parts (the
    port, the kernel, the service) once the server listens. Returns them once the kernel has
    halted.
    """
    running = Running()
    server_down = trio.Event()
    idle: set[trio.CancelScope] = set()  # handlers waiting for their next line
    async with trio.open_nursery() as nursery:
        service: Service = await nursery.start(run_kernel, settings, running, server_down)
        try:
            async with trio.open_nursery() as handlers:
                async with trio.open_nursery() as accepting:
                    listeners = await accepting.start(
                        partial(
                            trio.serve_tcp,
                            partial(handle_connection, service, idle),
                            port,
                            host=host,
                            handler_nursery=handlers,
                        )
                    )
                    running.port = listeners[0].socket.getsockname()[1]
                    on_ready(running)
                    await stop.wait()
                    accepting.cancel_scope.cancel()  # no new connections; listeners closed
                service.shut_down()  # handlers waiting in the kernel answer now, then close
                for scope in idle:
                    scope.cancel()  # idle ones stop waiting for a line
        finally:
            server_down.set()  # every handler has ended: now the kernel task shuts down
    return running


async def _main(settings: Settings, host: str, port: int) -> Running:
    stop = trio.Event()
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:

            async def on_signal() -> None:
                async for _ in signals:
                    stop.set()
                    return

            nursery.start_soon(on_signal)
            running = await serve(
                settings, host, port, stop, lambda r: announce(f"{host}:{r.port}")
            )
            nursery.cancel_scope.cancel()
    return running


def main(argv: Sequence[str] | None = None) -> None:
    """Serve until Ctrl+C, then print what the kernel did and left behind."""
    p = argparse.ArgumentParser(description="A trio TCP line server with a kernel.")
    add_arguments(p, default_port=7001)
    args = p.parse_args(argv)
    running = trio.run(_main, settings_from(args), args.host, args.port)
    print("\n".join(exit_report(running.kernel, running.service)))


if __name__ == "__main__":
    main()
