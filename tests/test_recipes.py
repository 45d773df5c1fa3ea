"""The embedding recipes, ``examples/recipe_*.py``: each served on 127.0.0.1 (port 0) and
driven by a real client over real sockets, with real time.

In-process tests run each server in the test's event loop: uvicorn's ``Server.serve()``
(Starlette), aiohttp's ``AppRunner``/``TCPSite``, and the ``serve()`` coroutines of the asyncio
and trio line servers. Clients: ``httpx.AsyncClient`` for HTTP, anyio TCP streams for the line
servers. Each test checks the replies, the deferred work's effects (a burst of touches gives
exactly one debounced run per key; records are written once each, in the order they were
queued, one at a time) and the shutdown (the server stops, the kernel's last line is
``reboot: System halted``, ``Kernel.shutdown_report`` holds what the test expects). Waiting for
deferred work uses the service's own wait (``GET /status?runs=N&records=M``, a handler asleep
in the kernel on a wait queue the work functions wake), never a sleep.

A burst is one debounced run when no gap between two of its touches reaches the quiet period:
the burst's requests are all in flight at once over open connections and take some tens of
milliseconds, against a quiet period of ``QUIET_MS``. Shutdown tests use a quiet period of a
minute, so that the keys they touch are certainly still armed when the server stops.

The subprocess tests run each script as a user would (``--port 0``), talk to it, send it
SIGINT and read what it prints.

The asyncio recipes run on asyncio and asyncio+uvloop; the trio recipe on trio. None runs
in virtual time: real sockets need the real clock. The frameworks come with the ``embed``
dependency group; a recipe whose framework is missing is skipped.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import json
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.abc
import pytest
from anyio.streams.buffered import BufferedByteReceiveStream
from helpers import ROOT, subprocess_env

import kdefer_async as kd
from kdefer_async import Kernel

EXAMPLES = ROOT / "examples"
HOST = "127.0.0.1"
#: The debounce of the burst tests: 150 jiffies at HZ=1000. A burst (client and server share
#: one event loop) takes up to some 30 ms here, touches of one key up to 10 ms apart.
QUIET_MS = 150
#: The debounce of the shutdown tests: nothing touched in them can run before the shutdown.
LONG_QUIET_MS = 60_000
#: A burst: this many touches of A and of B, interleaved, all in flight at once.
A_TOUCHES, B_TOUCHES = 12, 7
#: Connections a burst goes over.
CONNECTIONS = 4
#: Records written one request after another, then records all in flight at once.
IN_A_ROW, AT_ONCE = 5, 10
#: The bound on every wait of these tests (none comes near it unless something is broken).
WAIT_S = 15

pytestmark = pytest.mark.anyio


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def needs(*modules: str) -> pytest.MarkDecorator:
    """Skip unless *modules* are installed."""
    missing = [m for m in modules if not _installed(m)]
    return pytest.mark.skipif(bool(missing), reason=f"{', '.join(missing)} not installed")


ASYNCIO_BACKENDS = [
    pytest.param("asyncio", id="asyncio"),
    pytest.param("asyncio+uvloop", id="asyncio+uvloop", marks=needs("uvloop")),
]
TRIO_BACKENDS = [pytest.param("trio", id="trio", marks=needs("trio"))]
#: The web recipes' frameworks and client (the ``embed`` dependency group).
STARLETTE = needs("starlette", "uvicorn", "httpx")
AIOHTTP = needs("aiohttp", "httpx")


def recipe(name: str) -> Any:
    """Import ``examples/NAME.py``; the recipes import their shared ``embed_service`` as a
    sibling module, as they do when run as scripts (imported once, then cached)."""
    sys.path.insert(0, str(EXAMPLES))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(EXAMPLES))


def settings(quiet_ms: int = QUIET_MS, pending: str = "flush") -> Any:
    """The recipes' settings: 2 CPUs at HZ=1000."""
    return recipe("embed_service").Settings(nr_cpus=2, hz=1000, quiet_ms=quiet_ms, pending=pending)


def burst() -> list[str]:
    """The keys of one burst of touches: A and B interleaved, then the rest of A."""
    keys = []
    for i in range(max(A_TOUCHES, B_TOUCHES)):
        keys += ["A"] * (i < A_TOUCHES) + ["B"] * (i < B_TOUCHES)
    return keys


async def all_at_once(calls: list[Callable[[], Awaitable[Any]]]) -> list[Any]:
    """Run *calls* concurrently; their results in the order of *calls*."""
    results: list[Any] = [None] * len(calls)

    async def one(i: int) -> None:
        results[i] = await calls[i]()

    async with anyio.create_task_group() as tg:
        for i in range(len(calls)):
            tg.start_soon(one, i)
    return results


# -- what every recipe must show ----------------------------------------------------------------


def check_touch_counts(replies: list[tuple[str, int]]) -> None:
    """Each key's touches were counted once each: key A's replies say 1..12 in some order."""
    for key, n in (("A", A_TOUCHES), ("B", B_TOUCHES)):
        assert sorted(count for k, count in replies if k == key) == list(range(1, n + 1))


def expected_journal(at_once: dict[str, int]) -> list[dict[str, Any]]:
    """The journal: the records sent in a row, then those sent at once in the order the
    server queued them (the seq each reply gave)."""
    rows = [{"seq": i, "record": f"row{i}"} for i in range(IN_A_ROW)]
    rows += [
        {"seq": seq, "record": rec} for rec, seq in sorted(at_once.items(), key=lambda x: x[1])
    ]
    return rows


def check_status(status: dict[str, Any], at_once: dict[str, int]) -> None:
    """One debounced run per key, after a full quiet period, covering all its touches; the
    journal in queue order, written one record at a time."""
    assert status["ready"] is True, status
    quiet = status["quiet_jiffies"]
    assert quiet == QUIET_MS  # HZ=1000
    assert set(status["keys"]) == {"A", "B"}
    for key, n in (("A", A_TOUCHES), ("B", B_TOUCHES)):
        runs = status["keys"][key]["runs"]
        assert status["keys"][key]["touches"] == n
        assert len(runs) == 1, (key, runs)  # a burst: one run, not one per touch
        assert runs[0]["touches"] == n
        assert runs[0]["quiet_jiffies"] > quiet  # never before the quiet period is over
    assert sorted(at_once.values()) == list(range(IN_A_ROW, IN_A_ROW + AT_ONCE))
    assert status["queued"] == IN_A_ROW + AT_ONCE
    assert status["journal"] == expected_journal(at_once)
    assert status["max_writers"] == 1  # ordered: the sleeping writes never overlapped


def check_clean_kernel(k: Kernel) -> None:
    """No BUG, warning or oops, and the kernel's log ends with its halt."""
    log = k.dmesg()
    assert log[-1].endswith("] reboot: System halted")
    assert [line for line in log if re.search(r"BUG|WARNING|Oops|inconsistent", line)] == []
    assert k.oopses == []


def check_clean_shutdown(k: Kernel) -> None:
    """A normal exit that left nothing behind."""
    check_clean_kernel(k)
    report = k.shutdown_report
    assert report is not None
    assert (report.reason, report.items) == ("normal", [])
    assert not any("kdefer: shutdown:" in line for line in k.dmesg())


SHUTDOWN_TOUCHES = {"K1": 3, "K2": 1}
SHUTDOWN_RECORDS = ["last0", "last1", "last2"]


def check_shutdown_outcome(k: Kernel, service: Any, pending: str) -> None:
    """The keys armed at shutdown ran then (flush) or were cancelled and named by the kernel
    (leave); the records queued just before the stop were all written, in order."""
    assert service.closing
    assert service.journal == list(enumerate(SHUTDOWN_RECORDS))
    assert service.max_writing == 1
    check_clean_kernel(k)
    report = k.shutdown_report
    assert report is not None
    assert report.reason == "normal"
    keys = service.keys
    if pending == "flush":
        assert service.flushed_at_exit == len(SHUTDOWN_TOUCHES)
        for name, touches in SHUTDOWN_TOUCHES.items():
            [run] = keys[name].runs
            assert run.touches == touches
            assert run.quiet_jiffies < service.delay  # run by the flush, long before its timer
        assert report.items == []
        assert not any("kdefer: shutdown:" in line for line in k.dmesg())
    else:
        assert service.flushed_at_exit == 0
        assert all(key.runs == [] for key in keys.values())
        assert report.counts() == {"delayed work cancelled": len(SHUTDOWN_TOUCHES)}
        assert {item.obj for item in report.items} == {key.dwork for key in keys.values()}
        assert {(i.func, i.where, i.state) for i in report.items} == {
            ("reindex_key", "keys", "armed")
        }
        named = [line for line in k.dmesg() if "kdefer: shutdown:" in line]
        assert len(named) == 3, named
        for line in named[:2]:
            assert re.search(
                r"delayed work reindex_key for keys on CPU \d still armed; cancelled$", line
            )
        assert named[2].endswith("2 items did not run to completion (delayed work: 2)")
        assert k.dmesg().index(named[2]) == len(k.dmesg()) - 2  # then the halt


# -- HTTP: Starlette on uvicorn, aiohttp ---------------------------------------------------------


@asynccontextmanager
async def uvicorn_serving(app: Any) -> AsyncIterator[str]:
    """Serve *app* with uvicorn in this event loop on a port of its own; yield its URL; stop
    it (``should_exit``) and wait until it has shut down, lifespan included."""
    import uvicorn

    sock = recipe("embed_service").listening_socket(HOST, 0)
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, lifespan="on", log_config=None, access_log=False, log_level="warning")
    )
    with sock:
        async with anyio.create_task_group() as tg:
            tg.start_soon(server.serve, [sock])
            with anyio.fail_after(WAIT_S):
                while not server.started:  # set once the lifespan has started and it listens
                    assert not server.should_exit, "uvicorn failed to start"
                    await anyio.sleep(0.001)
            try:
                yield f"http://{HOST}:{port}"
            finally:
                server.should_exit = True


@asynccontextmanager
async def aiohttp_serving(app: Any) -> AsyncIterator[str]:
    """Serve *app* with an AppRunner and a TCPSite on port 0; yield its URL; clean it up
    (the cleanup contexts included)."""
    from aiohttp import web

    runner = web.AppRunner(app, access_log=None)
    await runner.setup()  # the startup half of the cleanup contexts: the kernel boots
    try:
        site = web.TCPSite(runner, HOST, 0)
        await site.start()
        yield f"http://{HOST}:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()  # stop the server, then the cleanup half: the kernel halts


async def http_exchange(url: str) -> None:
    """Touch A and B in one burst, write records in a row and at once, wait for the runs and
    the writes through ``GET /status``, and check what it reports."""
    import httpx

    limits = httpx.Limits(max_connections=CONNECTIONS)
    async with httpx.AsyncClient(base_url=url, timeout=WAIT_S, limits=limits) as client:
        # open the connections first: the burst then goes over open connections
        await all_at_once([lambda: client.get("/status")] * CONNECTIONS)

        async def touch(key: str) -> tuple[str, int]:
            r = await client.post(f"/touch/{key}")
            assert r.status_code == 202
            body = r.json()
            assert body["key"] == key
            return key, body["touches"]

        replies = await all_at_once([lambda k=k: touch(k) for k in burst()])
        check_touch_counts(replies)

        for i in range(IN_A_ROW):
            r = await client.post(f"/write/row{i}")
            assert (r.status_code, r.json()) == (202, {"record": f"row{i}", "seq": i})

        async def write(record: str) -> tuple[str, int]:
            r = await client.post(f"/write/{record}")
            assert r.status_code == 202
            assert r.json()["record"] == record
            return record, r.json()["seq"]

        at_once = dict(await all_at_once([lambda i=i: write(f"once{i}") for i in range(AT_ONCE)]))

        with anyio.fail_after(WAIT_S):
            r = await client.get(
                "/status",
                params={"runs": 2, "records": IN_A_ROW + AT_ONCE, "timeout_ms": WAIT_S * 1000},
            )
        assert r.status_code == 200
        check_status(r.json(), at_once)

        r = await client.get("/status", params={"runs": "many"})
        assert r.status_code == 400


async def http_touch_and_write_then_stop(url: str) -> None:
    """The shutdown tests' requests: touch K1 three times and K2 once, queue three records."""
    import httpx

    async with httpx.AsyncClient(base_url=url, timeout=WAIT_S) as client:
        for key, n in SHUTDOWN_TOUCHES.items():
            for i in range(n):
                r = await client.post(f"/touch/{key}")
                assert (r.status_code, r.json()) == (202, {"key": key, "touches": i + 1})
        for i, rec in enumerate(SHUTDOWN_RECORDS):
            r = await client.post(f"/write/{rec}")
            assert (r.status_code, r.json()) == (202, {"record": rec, "seq": i})


@STARLETTE
@pytest.mark.parametrize("backend_name", ASYNCIO_BACKENDS)
class TestStarlette:
    async def test_burst_debounced_journal_ordered_clean_shutdown(self) -> None:
        """Over uvicorn: a burst gives one run per key; records are written in queue order;
        the lifespan's exit leaves nothing behind."""
        mod = recipe("recipe_starlette")
        app = mod.create_app(settings())
        async with uvicorn_serving(app) as url:
            await http_exchange(url)
        check_clean_shutdown(app.state.kernel)
        assert app.state.service.flushed_at_exit == 0  # the runs were done: nothing to flush

    @pytest.mark.parametrize("pending", ["flush", "leave"])
    async def test_shutdown_with_armed_keys(self, pending: str) -> None:
        """Keys still armed when uvicorn stops: the lifespan's exit runs them (flush), or the
        kernel cancels each and names it in dmesg and in shutdown_report (leave); the
        records queued last are all written."""
        mod = recipe("recipe_starlette")
        app = mod.create_app(settings(LONG_QUIET_MS, pending))
        async with uvicorn_serving(app) as url:
            await http_touch_and_write_then_stop(url)
        check_shutdown_outcome(app.state.kernel, app.state.service, pending)


@AIOHTTP
@pytest.mark.parametrize("backend_name", ASYNCIO_BACKENDS)
class TestAiohttp:
    async def test_burst_debounced_journal_ordered_clean_shutdown(self) -> None:
        """Over aiohttp: a burst gives one run per key; records are written in queue order;
        the cleanup context's exit leaves nothing behind."""
        mod = recipe("recipe_aiohttp")
        app = mod.create_app(settings())
        async with aiohttp_serving(app) as url:
            await http_exchange(url)
        check_clean_shutdown(app[mod.KERNEL])
        assert app[mod.SERVICE].flushed_at_exit == 0

    @pytest.mark.parametrize("pending", ["flush", "leave"])
    async def test_shutdown_with_armed_keys(self, pending: str) -> None:
        """Keys still armed at cleanup: run then (flush) or cancelled and named by the kernel
        (leave); the records queued last are all written."""
        mod = recipe("recipe_aiohttp")
        app = mod.create_app(settings(LONG_QUIET_MS, pending))
        async with aiohttp_serving(app) as url:
            await http_touch_and_write_then_stop(url)
        check_shutdown_outcome(app[mod.KERNEL], app[mod.SERVICE], pending)


# -- TCP line servers: asyncio, trio --------------------------------------------------------------


class LineClient:
    """A TCP client of the line protocol."""

    def __init__(self, stream: anyio.abc.SocketStream) -> None:
        self.stream = stream
        self.received = BufferedByteReceiveStream(stream)

    async def send(self, *lines: str) -> None:
        """Send *lines* in one write (the server reads them one by one)."""
        await self.stream.send("".join(f"{line}\n" for line in lines).encode())

    async def reply(self) -> str:
        """The next line the server sends."""
        return (await self.received.receive_until(b"\n", 1 << 20)).decode()

    async def replies(self, n: int) -> list[str]:
        return [await self.reply() for _ in range(n)]

    async def closed_by_server(self) -> bool:
        """Whether the server closed the connection (the next read finds its end)."""
        try:
            await self.received.receive()
        except (anyio.EndOfStream, anyio.IncompleteRead):
            return True
        return False


@asynccontextmanager
async def line_client(port: int) -> AsyncIterator[LineClient]:
    async with await anyio.connect_tcp(HOST, port) as stream:
        yield LineClient(stream)


Serve = Callable[[Callable[[Any], object]], Awaitable[Any]]


@asynccontextmanager
async def tcp_serving(serve: Serve) -> AsyncIterator[Any]:
    """Run ``serve(on_ready)`` in a task; yield the running parts it hands to *on_ready*
    (port, kernel, service); after the block (whose end sets the stop event) wait until
    ``serve()`` has returned them, the kernel halted."""
    ready = anyio.Event()
    box: list[Any] = []
    returned: list[Any] = []

    def on_ready(running: Any) -> None:
        box.append(running)
        ready.set()

    async def run() -> None:
        returned.append(await serve(on_ready))

    async with anyio.create_task_group() as tg:
        tg.start_soon(run, name="server")
        with anyio.fail_after(WAIT_S):
            await ready.wait()
        yield box[0]
    assert returned == box


async def tcp_exchange(port: int) -> None:
    """The line-protocol version of :func:`http_exchange`."""
    keys = burst()
    per_conn = [keys[i::CONNECTIONS] for i in range(CONNECTIONS)]  # each sends its lines at once

    async def touches(lines: list[str]) -> list[tuple[str, int]]:
        async with line_client(port) as c:
            await c.send(*(f"touch {k}" for k in lines))
            out = []
            for key, reply in zip(lines, await c.replies(len(lines)), strict=True):
                word, got, n = reply.split()
                assert (word, got) == ("touched", key)
                out.append((key, int(n)))
            return out

    replies = await all_at_once([lambda ks=ks: touches(ks) for ks in per_conn])
    check_touch_counts([r for conn in replies for r in conn])

    async with line_client(port) as c:
        await c.send(*(f"write row{i}" for i in range(IN_A_ROW)))
        assert await c.replies(IN_A_ROW) == [f"queued {i}" for i in range(IN_A_ROW)]

    async def write(record: str) -> tuple[str, int]:
        async with line_client(port) as c:
            await c.send(f"write {record}")
            word, seq = (await c.reply()).split()
            assert word == "queued"
            return record, int(seq)

    at_once = dict(await all_at_once([lambda i=i: write(f"once{i}") for i in range(AT_ONCE)]))

    async with line_client(port) as c:
        with anyio.fail_after(WAIT_S):
            await c.send(f"status 2 {IN_A_ROW + AT_ONCE} {WAIT_S * 1000}", "bogus", "quit")
            check_status(json.loads(await c.reply()), at_once)
            assert (await c.reply()).startswith("error: commands: touch KEY")
            assert await c.reply() == "bye"
            assert await c.closed_by_server()


async def tcp_shutdown(running: Any, stop: Callable[[], None]) -> None:
    """Touch K1 three times and K2 once, queue three records; leave one client waiting in
    ``status`` for runs that cannot come and one idle; stop the server: the waiting client
    gets its answer (not ready) and both are closed by the server."""
    async with line_client(running.port) as c:
        lines = [f"touch {k}" for k, n in SHUTDOWN_TOUCHES.items() for _ in range(n)]
        lines += [f"write {rec}" for rec in SHUTDOWN_RECORDS]
        await c.send(*lines)
        assert await c.replies(len(lines)) == [
            "touched K1 1",
            "touched K1 2",
            "touched K1 3",
            "touched K2 1",
            "queued 0",
            "queued 1",
            "queued 2",
        ]
        # the records written, nothing is left to wake a sleeper but the shutdown
        await c.send(f"status 0 {len(SHUTDOWN_RECORDS)} {WAIT_S * 1000}")
        assert len(json.loads(await c.reply())["journal"]) == len(SHUTDOWN_RECORDS)
    async with line_client(running.port) as waiting, line_client(running.port) as idle:
        await waiting.send(f"status 99 0 {WAIT_S * 1000}")
        with anyio.fail_after(WAIT_S):
            # the server offers no event for "a request sleeps in the kernel": poll for it
            while not kd.waitqueue_active(running.service.waiters):  # noqa: ASYNC110
                await anyio.sleep(0.001)
        stop()
        with anyio.fail_after(WAIT_S):
            status = json.loads(await waiting.reply())
            assert status["ready"] is False
            assert await waiting.closed_by_server()
            assert await idle.closed_by_server()


class TestAsyncio:
    @pytest.mark.parametrize("backend_name", ASYNCIO_BACKENDS)
    @pytest.mark.parametrize(
        "fallback",
        [
            pytest.param(
                False,
                id="TaskGroup",
                marks=pytest.mark.skipif(
                    sys.version_info < (3, 11), reason="asyncio.TaskGroup is new in Python 3.11"
                ),
            ),
            pytest.param(True, id="anyio-task-group"),
        ],
    )
    async def test_burst_debounced_journal_ordered_clean_shutdown(self, fallback: bool) -> None:
        """Over asyncio.start_server: a burst over four connections gives one run per key;
        records are written in queue order; the shutdown leaves nothing behind. With
        asyncio.TaskGroup, and with the anyio task group Python 3.10 uses."""
        mod = recipe("recipe_asyncio")
        stop = asyncio.Event()

        async def serve(on_ready: Callable[[Any], object]) -> Any:
            return await mod.serve(settings(), HOST, 0, stop, on_ready, fallback=fallback)

        async with tcp_serving(serve) as running:
            await tcp_exchange(running.port)
            stop.set()
        check_clean_shutdown(running.kernel)

    @pytest.mark.parametrize("backend_name", ASYNCIO_BACKENDS)
    @pytest.mark.parametrize("pending", ["flush", "leave"])
    async def test_shutdown_with_armed_keys(self, pending: str) -> None:
        """Stopped with keys armed, a client asleep in the kernel and one idle: both get
        closed (the sleeper after its answer); the armed keys run (flush) or are cancelled
        and named (leave); the last records are written."""
        mod = recipe("recipe_asyncio")
        stop = asyncio.Event()

        async def serve(on_ready: Callable[[Any], object]) -> Any:
            return await mod.serve(settings(LONG_QUIET_MS, pending), HOST, 0, stop, on_ready)

        async with tcp_serving(serve) as running:
            await tcp_shutdown(running, stop.set)
        check_shutdown_outcome(running.kernel, running.service, pending)


@pytest.mark.parametrize("backend_name", TRIO_BACKENDS)
class TestTrio:
    async def test_burst_debounced_journal_ordered_clean_shutdown(self) -> None:
        """Over trio.serve_tcp: a burst over four connections gives one run per key; records
        are written in queue order; the shutdown leaves nothing behind."""
        import trio

        mod = recipe("recipe_trio")
        stop = trio.Event()

        async def serve(on_ready: Callable[[Any], object]) -> Any:
            return await mod.serve(settings(), HOST, 0, stop, on_ready)

        async with tcp_serving(serve) as running:
            await tcp_exchange(running.port)
            stop.set()
        check_clean_shutdown(running.kernel)

    @pytest.mark.parametrize("pending", ["flush", "leave"])
    async def test_shutdown_with_armed_keys(self, pending: str) -> None:
        """Stopped with keys armed, a client asleep in the kernel and one idle: both get
        closed (the sleeper after its answer); the armed keys run (flush) or are cancelled
        and named (leave); the last records are written."""
        import trio

        mod = recipe("recipe_trio")
        stop = trio.Event()

        async def serve(on_ready: Callable[[Any], object]) -> Any:
            return await mod.serve(settings(LONG_QUIET_MS, pending), HOST, 0, stop, on_ready)

        async with tcp_serving(serve) as running:
            await tcp_shutdown(running, stop.set)
        check_shutdown_outcome(running.kernel, running.service, pending)


# -- the scripts, as a user runs them ------------------------------------------------------------


def _talk_http(port: int) -> None:
    import httpx

    with httpx.Client(base_url=f"http://{HOST}:{port}", timeout=WAIT_S) as client:
        assert client.post("/touch/a").json() == {"key": "a", "touches": 1}
        assert client.post("/touch/a").json() == {"key": "a", "touches": 2}
        assert client.post("/write/hello").json() == {"record": "hello", "seq": 0}
        status = client.get("/status", params={"records": 1}).json()
        assert status["journal"] == [{"seq": 0, "record": "hello"}]


def _talk_lines(port: int) -> None:
    with socket.create_connection((HOST, port), timeout=WAIT_S) as sock, sock.makefile("rw") as f:
        f.write("touch a\ntouch a\nwrite hello\nstatus 0 1\nquit\n")
        f.flush()
        assert [f.readline() for _ in range(3)] == ["touched a 1\n", "touched a 2\n", "queued 0\n"]
        assert json.loads(f.readline())["journal"] == [{"seq": 0, "record": "hello"}]
        assert f.readline() == "bye\n"
        assert f.readline() == ""  # closed by the server


@pytest.mark.skipif(os.name == "nt", reason="no SIGINT delivery to a child process on Windows")
@pytest.mark.parametrize(
    ("script", "talk", "pending"),
    [
        pytest.param("recipe_starlette.py", _talk_http, "flush", marks=STARLETTE),
        pytest.param("recipe_aiohttp.py", _talk_http, "leave", marks=AIOHTTP),
        ("recipe_asyncio.py", _talk_lines, "leave"),
        pytest.param("recipe_trio.py", _talk_lines, "flush", marks=needs("trio")),
    ],
)
def test_script_serves_until_ctrl_c(script: str, talk: Callable[[int], None], pending: str) -> None:
    """``python examples/SCRIPT --port 0``: it prints the port it got, serves a client, and at
    Ctrl+C shuts down cleanly (exit 0, nothing on stderr) and prints what the kernel did: the
    armed key run at shutdown (flush), or cancelled and named by the kernel (leave)."""
    proc = subprocess.Popen(
        [
            sys.executable,
            str(EXAMPLES / script),
            "--port",
            "0",
            "--quiet-ms",
            str(LONG_QUIET_MS),
            "--pending",
            pending,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=subprocess_env(),
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        m = re.fullmatch(
            r"listening on (?:http://)?127\.0\.0\.1:(\d+) \(Ctrl\+C to stop\)\n", first
        )
        assert m, first
        talk(int(m.group(1)))
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=WAIT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, out + err
    assert err == ""
    lines = out.splitlines()
    flushed = 1 if pending == "flush" else 0
    runs = "1 debounced run" if flushed else "0 debounced runs"
    assert lines[:2] == [
        f"keys: 1 key, 2 touches, {runs} ({flushed} at shutdown)",
        "journal: 1 of 1 record written, in order, at most 1 at once",
    ]
    if pending == "flush":
        assert lines[2:-1] == ["kernel: clean shutdown, nothing left behind"]
    else:
        assert lines[2] == (
            "kernel: shutdown (normal) left 1 item behind: delayed work cancelled: 1"
        )
        assert re.fullmatch(
            r"\[ *[\d.]+\] kdefer: shutdown: delayed work reindex_key for keys on CPU \d "
            r"still armed; cancelled",
            lines[3],
        )
        assert lines[4].endswith(
            "kdefer: shutdown: 1 item did not run to completion (delayed work: 1)"
        )
        assert len(lines) == 6
    assert re.fullmatch(r"\[ *[\d.]+\] reboot: System halted", lines[-1])
