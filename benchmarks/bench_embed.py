"""Cost when embedded: the Starlette recipe's request throughput, with an idle kernel and without.

kdefer: the app of ``examples/recipe_starlette.py``, whose lifespan boots the recipe's kernel
(``Kernel(nr_cpus=2, hz=1000)``) and its service, serves a burst of ``GET /ping/{key}``
requests: a route added beside the recipe's own, which answers like ``POST /touch/{key}``
but never calls the kernel, so the kernel stays booted and idle while the burst runs.
Baseline: the same app built by the same code (the recipe's routes plus the same
``/ping/{key}``, served by the same uvicorn config) with a lifespan that boots nothing.
Target: the kernel side's median throughput >= 0.98x the plain side's (an idle kernel costs
the app under 2% of its requests per second). Reported without a target: the same
measurement of the kernel app's ``POST /touch/{key}``, which re-arms the key's
``DelayedWork`` with ``mod_delayed_work()`` (the request's task entering the kernel as a
user task on that call): what one kernel call per request costs. The service's debounce
delay is set to a minute, so that no debounced run falls inside a burst: the runs come at
shutdown, when the service flushes the keys still armed.

**Where client and server run.** Each server runs in a process of its own, as a web app
does, and the load generator in this process. Two processes serving the very same app
differ in throughput by a percent or so, steadily, for as long as they live (their memory
layouts differ): so every round starts fresh server processes, one per side, and the
median over the rounds averages that out. Restarting a server in a long-lived process would keep that
bias for the whole run. The client speaks HTTP/1.1 over raw asyncio protocols (on uvloop
when installed) rather than through a client library, so that it costs a fraction of what a
server spends per request: a line shows how busy it was.

**One round.** The fresh servers start together: uvicorn serves each app (the recipe's
``uvicorn.Config``, on the plain asyncio loop, as in every benchmark here: ``Server.run()``
would pick uvloop when it is installed) on a socket bound to port 0 of 127.0.0.1 and reports
the port. The client opens 8 keep-alive connections to each and sends each 200 untimed
requests, whose answers show that the lifespan has run and the server accepts. Then the
timed burst, in turns: in each of 20 turns each side gets a slice of 100 requests, one side
after the other, the order rotating (the ``POST /touch`` side gets a slice every 4th turn: a
quarter of the requests is enough for a number without a target). Each connection sends its
next request once the answer to its previous one has arrived, so 8 are in flight. A side's
time is the sum of its slices: the sides take turns every 20 ms or so, so a moment
when other work takes the CPU hits all of them alike, which alternating whole bursts would
not do. Where the OS allows it, the servers share one CPU and the client has another. Each
server counts the requests it answered and the script checks the count; its cyclic GC is
off during the burst, as in every benchmark here. Then the servers exit (the lifespan halts
the kernel) while the next round's servers start: neither is timed.

**The numbers.** Each side's throughput is measured twice in each round: requests per
second of wall time (``time.perf_counter()`` in the client) and requests per CPU second of
the server (``time.process_time()`` in the server, over the burst). Every round's numbers are
printed, and each side's median over the rounds is kept (the header's "best of" is the
number of repetitions: ``--repeat N`` runs 5N rounds, fewer if they would take more than
50 s; it says so). The target is on wall time, by default: for a client and a server that
wait on each other it is the honest measure, and the one the requirement is about. On a
machine that other work keeps busy, wall time also counts the time a server waited for a
CPU, which varies from slice to slice by more than the 2% to be seen: two servers of the
very same app then differ by up to 2% over a whole run. There, ``--clock process_time`` puts
the target on the server's CPU time, which leaves the waiting out; both are always printed.

**Idle means idle.** Each kernel-side server also counts what its kernel did during the
burst: local timer interrupts and softirqs, from ``Kernel.proc_interrupts()`` and
``Kernel.proc_softirqs()``. The kernel is tickless: on the idle side both stay at 0.
``--profile`` then runs one more server of each kernel side alone and prints, for one burst,
its top functions by own time and every kdefer_async function that ran: none on the idle
side, and on the other what a ``POST /touch`` costs the kernel.
"""

from __future__ import annotations

import asyncio
import cProfile
import gc
import importlib
import io
import os
import pstats
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from _common import Row, Target, finish, parse_args, print_header, print_samples, print_table

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
HOST = "127.0.0.1"
#: keep-alive connections to each server, each with one request in flight at a time
CONNECTIONS = 8
#: untimed requests to each server before the burst (connections made, the server warm)
WARMUP_REQUESTS = 200
#: requests sent to one side before the next side's turn
SLICE = 100
#: slices per round of the two sides the target compares (2,000 timed requests each)
SLICES = 20
#: rounds per ``--repeat``
ROUNDS_PER_REPEAT = 5
#: no new round is started once the rounds have taken this long (seconds)
BUDGET_S = 50.0
#: the service's debounce delay: longer than a round, so that ``POST /touch`` costs the call
#: alone during the burst; the debounced runs come at shutdown, when the service flushes them
QUIET_MS = 60_000
#: the longest a slice may take before the script gives up on the server (seconds)
TIMEOUT_S = 30.0
#: the target: the idle-kernel side serves at least this share of the plain side's requests
MIN_RATIO = 0.98
#: the command line of a server process: ``bench_embed.py --serve SIDE [--profile]``
SERVER_FLAG = "--serve"


@dataclass(frozen=True)
class Side:
    """How one side of the benchmark is served and driven."""

    label: str
    with_kernel: bool
    method: str
    prefix: str
    status: str  # the answer's status code
    every: int  # the side takes a slice every that many turns

    @property
    def burst(self) -> int:
        """Timed requests per round."""
        return SLICE * len(range(0, SLICES, self.every))


SIDES = {
    "plain": Side("no kernel", False, "GET", "/ping", "200", 1),
    "idle": Side("kernel idle", True, "GET", "/ping", "200", 1),
    # reported without a target: a quarter of the requests is enough
    "call": Side("kernel call", True, "POST", "/touch", "202", 4),
}


# -- the server process ------------------------------------------------------------------------


def _recipe() -> Any:
    """``examples/recipe_starlette.py``, imported as the recipe imports its service: with the
    examples directory on the path."""
    sys.path.insert(0, str(EXAMPLES))
    try:
        return importlib.import_module("recipe_starlette")
    finally:
        sys.path.remove(str(EXAMPLES))


class _Pings:
    """Requests ``GET /ping/{key}`` answered so far."""

    n = 0


def build_app(with_kernel: bool) -> Any:
    """The recipe's app plus ``GET /ping/{key}``: its lifespan is the recipe's (the kernel and
    the service) *with_kernel*, otherwise one that boots nothing."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    recipe = _recipe()
    settings = sys.modules["embed_service"].Settings(quiet_ms=QUIET_MS)
    recipe_app = recipe.create_app(settings)

    async def ping(request: Request) -> Response:
        """``GET /ping/{key}``: an answer like that of ``POST /touch/{key}``, without the
        kernel."""
        _Pings.n += 1
        return JSONResponse({"key": request.path_params["key"], "touches": _Pings.n})

    @asynccontextmanager
    async def no_kernel(app: Any) -> AsyncIterator[dict[str, Any]]:
        yield {}

    lifespan = recipe_app.router.lifespan_context if with_kernel else no_kernel
    return Starlette(routes=[Route("/ping/{key}", ping), *recipe_app.routes], lifespan=lifespan)


def kernel_events(kernel: Any) -> int:
    """Local timer interrupts plus softirqs the kernel has taken so far, all CPUs."""
    loc = kernel.proc_interrupts().rsplit("LOC:", 1)[1].split()
    events = sum(int(word) for word in loc if word.isdigit())
    for line in kernel.proc_softirqs().splitlines()[1:]:
        events += sum(int(word) for word in line.split(":", 1)[1].split())
    return events


class _Server:
    """One side's app on uvicorn, driven by commands on stdin, one per line, each answered
    by one line on stdout: ``start`` (the burst begins: GC off, counters and CPU time read),
    ``stop`` (the burst is over: ``stopped CPU_S ANSWERED KERNEL_EVENTS``), ``exit``."""

    def __init__(self, side: Side, profile: bool) -> None:
        self.side = side
        self.app = build_app(side.with_kernel)
        self.profile = cProfile.Profile() if profile else None
        self.profile_wall = 0.0
        self.cpu0 = self.wall0 = 0.0
        self.answered0 = self.events0 = 0

    def answered(self) -> int:
        if self.side.prefix == "/ping":
            return _Pings.n
        return sum(key.touches for key in self.app.state.service.keys.values())

    def events(self) -> int:
        return kernel_events(self.app.state.kernel) if self.side.with_kernel else 0

    async def command(self, cmd: str) -> str:
        """Run one command on the event loop's thread."""
        if cmd == "start":
            gc.collect()
            gc.disable()
            self.answered0, self.events0 = self.answered(), self.events()
            if self.profile is not None:
                self.profile.enable()
            self.wall0 = time.perf_counter()
            self.cpu0 = time.process_time()
            return "started"
        if cmd == "stop":
            cpu = time.process_time() - self.cpu0
            self.profile_wall = time.perf_counter() - self.wall0
            if self.profile is not None:
                self.profile.disable()
            gc.enable()
            answered = self.answered() - self.answered0
            return f"stopped {cpu!r} {answered} {self.events() - self.events0}"
        raise ValueError(f"unknown command {cmd!r}")

    def commands(self, loop: asyncio.AbstractEventLoop, server: Any) -> None:
        """The thread reading stdin: run each command on the loop, answer on stdout."""
        for line in sys.stdin:
            cmd = line.strip()
            if cmd == "exit":
                break
            answer = asyncio.run_coroutine_threadsafe(self.command(cmd), loop).result()
            print(answer, flush=True)
        loop.call_soon_threadsafe(setattr, server, "should_exit", True)

    async def serve(self, sock: Any) -> None:
        import uvicorn

        server = uvicorn.Server(uvicorn.Config(self.app, lifespan="on", log_level="warning"))
        reader = threading.Thread(
            target=self.commands, args=(asyncio.get_running_loop(), server), daemon=True
        )
        reader.start()
        await server.serve([sock])

    def print_profile(self) -> None:
        """The burst's top functions by own time, then every kdefer_async function that ran."""
        assert self.profile is not None
        out = io.StringIO()
        stats = pstats.Stats(self.profile, stream=out)
        stats.sort_stats(pstats.SortKey.TIME).print_stats(25)
        print(
            f"-- cProfile: {self.side.label} server, one burst of {self.side.burst:,} requests "
            f"({self.profile_wall:.3f} s under the profiler) --"
        )
        print(out.getvalue().strip())
        raw: dict[tuple[str, int, str], tuple[Any, ...]] = stats.stats
        ours = {func: row for func, row in raw.items() if "kdefer_async" in func[0]}
        calls = sum(row[1] for row in ours.values())
        print(f"-- kdefer_async during the burst: {calls} calls of {len(ours)} functions --")
        for (filename, line, name), row in sorted(ours.items(), key=lambda kv: -kv[1][1]):
            print(f"{row[1]:>8}  {Path(filename).name}:{line}({name})")


def server_main(args: list[str]) -> int:
    """A server process: serve one side until told to exit."""
    side = SIDES[args[0]]
    server = _Server(side, profile="--profile" in args[1:])
    sock = sys.modules["embed_service"].listening_socket(HOST, 0)
    print(f"port {sock.getsockname()[1]}", flush=True)
    with sock:
        asyncio.run(server.serve(sock))
    if server.profile is not None:
        server.print_profile()
    return 0


# -- the load generator (this process) -----------------------------------------------------------


class _Burst:
    """Requests still to send and answers still to come, shared by one side's connections."""

    def __init__(self, total: int, expect: bytes) -> None:
        self.to_send = total
        self.to_receive = total
        self.expect = expect  # the status line's code, e.g. b"200"
        self.bad: list[bytes] = []
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()


class _Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection: sends its request again each time an answer has
    arrived in full, while the burst has requests left."""

    def __init__(self, request: bytes) -> None:
        self.request = request
        self.transport: asyncio.WriteTransport | None = None
        self.buffer = b""
        self.burst: _Burst | None = None
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.WriteTransport, transport)  # uvloop's is no subclass

    def start(self, burst: _Burst) -> None:
        self.burst = burst
        self._send_next()

    def _send_next(self) -> None:
        burst = self.burst
        assert burst is not None
        assert self.transport is not None
        if burst.to_send > 0:
            burst.to_send -= 1
            self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        buf = self.buffer + data
        burst = self.burst
        assert burst is not None
        while (end := buf.find(b"\r\n\r\n")) >= 0:
            head = buf[:end].lower()
            at = head.find(b"\r\ncontent-length:")
            eol = head.find(b"\r\n", at + 2)
            try:
                if at < 0:
                    raise ValueError("no content-length")
                total = end + 4 + int(head[at + 17 : eol if eol > 0 else len(head)])
            except ValueError as exc:
                if not burst.done.done():
                    burst.done.set_exception(RuntimeError(f"{exc} in the answer {head!r}"))
                return
            if len(buf) < total:
                break
            if head[9:12] != burst.expect:
                burst.bad.append(head.split(b"\r\n", 1)[0])
            buf = buf[total:]
            burst.to_receive -= 1
            if burst.to_receive == 0:
                burst.done.set_result(None)
            else:
                self._send_next()
        self.buffer = buf

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost.set_result(None)
        burst = self.burst
        if burst is not None and not burst.done.done():
            burst.done.set_exception(ConnectionError(f"the server closed a connection: {exc}"))


async def _run_burst(conns: list[_Connection], total: int, expect: bytes) -> None:
    burst = _Burst(total, expect)
    for conn in conns:
        conn.start(burst)
    try:
        await asyncio.wait_for(burst.done, TIMEOUT_S)
    except asyncio.TimeoutError:
        raise RuntimeError(
            f"{burst.to_receive} of {total} answers missing after {TIMEOUT_S} s"
        ) from None
    if burst.bad:
        raise RuntimeError(f"{len(burst.bad)} unexpected answers, e.g. {burst.bad[0]!r}")


async def _connect(port: int, side: Side) -> list[_Connection]:
    """Open the connections to one server (connection *i* asks for ``PREFIX/c<i>``) and send
    the warm-up requests."""
    loop = asyncio.get_running_loop()
    conns = []
    for i in range(CONNECTIONS):
        request = f"{side.method} {side.prefix}/c{i} HTTP/1.1\r\nhost: {HOST}:{port}\r\n"
        if side.method == "POST":
            request += "content-length: 0\r\n"
        data = (request + "\r\n").encode()
        _, conn = await loop.create_connection(lambda d=data: _Connection(d), HOST, port)
        conns.append(conn)
    await _run_burst(conns, WARMUP_REQUESTS, side.status.encode())
    return conns


async def _interleaved(conns: dict[str, list[_Connection]], first: int) -> dict[str, float]:
    """The timed burst: SLICES turns, in each of which every side due sends SLICE requests,
    one side after the other, the order rotating from turn to turn (and from round to round:
    *first*); the wall time of each side's slices, summed."""
    spent = dict.fromkeys(conns, 0.0)
    expect = {key: SIDES[key].status.encode() for key in conns}
    clock = time.perf_counter
    for n in range(SLICES):
        keys = [key for key in conns if n % SIDES[key].every == 0]
        at = (n + first) % len(keys)
        for key in keys[at:] + keys[:at]:
            start = clock()
            await _run_burst(conns[key], SLICE, expect[key])
            spent[key] += clock() - start
    return spent


async def _close(conns: list[_Connection]) -> None:
    for conn in conns:
        assert conn.transport is not None
        conn.transport.close()
    await asyncio.gather(*(conn.lost for conn in conns))


class _ServerProcess:
    """The parent's handle on one server process."""

    def __init__(self, key: str, profile: bool = False) -> None:
        self.key = key
        args = [sys.executable, __file__, SERVER_FLAG, key, *(["--profile"] if profile else [])]
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def answer(self, expected: str) -> list[str]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        words = line.split()
        if not words or words[0] != expected:
            raise RuntimeError(f"the {self.key} server answered {line!r}, not {expected!r}")
        return words[1:]

    def port(self) -> int:
        return int(self.answer("port")[0])

    def command(self, cmd: str, expected: str) -> list[str]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()
        return self.answer(expected)

    def stop(self) -> None:
        """Tell the server to exit (closing its stdin, which it also takes as ``exit``)."""
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write("exit\n")
            self.proc.stdin.close()
        except BrokenPipeError:
            pass  # it has gone already

    def wait(self) -> str:
        """Wait until the server has exited; return what it printed after its last answer."""
        assert self.proc.stdout is not None
        rest = self.proc.stdout.read()
        self.proc.wait()
        return rest


def _start_servers(keys: list[str]) -> dict[str, _ServerProcess]:
    return {key: _ServerProcess(key) for key in keys}


def _stop_servers(servers: dict[str, _ServerProcess]) -> None:
    for server in servers.values():
        server.stop()
    for server in servers.values():
        server.wait()


@dataclass
class Sample:
    """One side's numbers in one round."""

    wall: float  # seconds: the side's slices, summed
    cpu: float  # seconds: the server's CPU time over the burst
    events: int  # local timer interrupts + softirqs of its kernel during the burst


@dataclass
class RoundResult:
    samples: dict[str, Sample]
    client_busy: float  # the client's CPU time over the burst's wall time


@contextmanager
def _pinned(cpus: set[int] | None) -> Iterator[None]:
    """Run this process on *cpus* inside the block (if given), then on its CPUs again."""
    if cpus is None:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def _placement() -> tuple[set[int], set[int]] | None:
    """The CPU for the servers and the CPUs for the client, or None where the OS does not let
    a process choose (or there is one CPU)."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None
    return {cpus[-1]}, set(cpus[:-1])


def run_round(
    loop: asyncio.AbstractEventLoop,
    nr: int,
    servers: dict[str, _ServerProcess],
    start_next: Callable[[], dict[str, _ServerProcess] | None],
) -> tuple[RoundResult, dict[str, _ServerProcess] | None]:
    """Run round *nr*'s interleaved burst against its servers (started already), then start
    the next round's (``start_next()``) while this round's stop."""
    nxt = None
    try:
        ports = {key: server.port() for key, server in servers.items()}
        placement = _placement()
        if placement is not None:
            for server in servers.values():
                os.sched_setaffinity(server.proc.pid, placement[0])
        with _pinned(None if placement is None else placement[1]):
            conns = {
                key: loop.run_until_complete(_connect(port, SIDES[key]))
                for key, port in ports.items()
            }
            for server in servers.values():
                server.command("start", "started")
            cpu0, wall0 = time.process_time(), time.perf_counter()
            spent = loop.run_until_complete(_interleaved(conns, nr))
            busy = (time.process_time() - cpu0) / (time.perf_counter() - wall0)
            stopped = {key: server.command("stop", "stopped") for key, server in servers.items()}
            for c in conns.values():
                loop.run_until_complete(_close(c))
        nxt = start_next()  # their start-up overlaps this round's shutdown: neither is timed
    finally:
        _stop_servers(servers)
    samples = {}
    for key, (cpu, answered, events) in stopped.items():
        if int(answered) != SIDES[key].burst:
            raise RuntimeError(
                f"the {key} server answered {answered} of {SIDES[key].burst} timed requests"
            )
        samples[key] = Sample(spent[key], float(cpu), int(events))
    return RoundResult(samples, busy), nxt


def profile_side(loop: asyncio.AbstractEventLoop, key: str) -> None:
    """One server of side *key* alone, one burst, under cProfile in the server."""
    side = SIDES[key]
    server = _ServerProcess(key, profile=True)
    try:
        conns = loop.run_until_complete(_connect(server.port(), side))
        server.command("start", "started")
        loop.run_until_complete(_run_burst(conns, side.burst, side.status.encode()))
        server.command("stop", "stopped")
        loop.run_until_complete(_close(conns))
    finally:
        server.stop()
        print(server.wait().rstrip())


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


@dataclass(frozen=True)
class AtLeast(Target):
    """A target the ratio must reach (``>=``): for throughput, where more is better."""

    def check(self, value: float, ratio: float | None) -> bool:
        x = ratio if self.kind == "ratio" else value
        return x is not None and x >= self.limit


def main() -> int:
    opts = parse_args(__doc__ or "")
    try:
        import starlette
        import uvicorn
    except ImportError as exc:
        print(f"bench_embed.py needs Starlette and uvicorn (the bench dependency group): {exc}")
        return 1
    print_header("Starlette recipe on uvicorn: throughput with an idle kernel", opts)
    rounds = ROUNDS_PER_REPEAT * opts.repeat
    cpu_clock = opts.clock == "process_time"
    placement = _placement()
    where = (
        "the servers on CPU {}, the client on CPU {}".format(*(sorted(p) for p in placement))
        if placement is not None
        else "not pinned to CPUs"
    )
    timed = ", ".join(f"{side.label} {side.burst:,}" for side in SIDES.values())
    print(
        f"starlette {starlette.__version__}, uvicorn {uvicorn.__version__}; up to {rounds} "
        f"rounds ({ROUNDS_PER_REPEAT} per repetition) within {BUDGET_S:.0f} s, each with a "
        f"fresh server per side; {WARMUP_REQUESTS} untimed requests each, then timed ones "
        f"({timed}) in slices of {SLICE}, over {CONNECTIONS} keep-alive connections per "
        f"server; {where}. Each side's median is kept, in requests per second of wall time "
        "(req/s) and per CPU second of the server (req/CPU-s); the target is on the "
        f"{'second' if cpu_clock else 'first'}"
    )
    sys.stdout.flush()
    keys = list(SIDES)
    results: list[RoundResult] = []
    loop = _new_loop()
    started = time.perf_counter()

    def start_next() -> dict[str, _ServerProcess] | None:
        spent = time.perf_counter() - started
        if len(results) + 1 >= rounds or spent * (len(results) + 2) / (len(results) + 1) > BUDGET_S:
            return None  # that was the last round: the next one would end past the budget
        return _start_servers(keys)

    try:
        servers: dict[str, _ServerProcess] | None = _start_servers(keys)
        while servers is not None:
            result, servers = run_round(loop, len(results), servers, start_next)
            results.append(result)
        took = time.perf_counter() - started
        if len(results) < rounds:
            print(
                f"{len(results)} of {rounds} rounds run: the budget of {BUDGET_S:.0f} s was spent"
            )

        # both measures, the one --clock names first: the target is on that one
        measures = [("wall", "req/s"), ("cpu", "req/CPU-s")]
        if cpu_clock:
            measures.reverse()
        medians: dict[str, dict[str, float]] = {}
        for what, unit in measures:
            samples = {
                SIDES[k].label: [SIDES[k].burst / getattr(r.samples[k], what) for r in results]
                for k in keys
            }
            print_samples(samples, 1, unit)
            medians[what] = {k: statistics.median(samples[SIDES[k].label]) for k in keys}
            pairs = [
                getattr(r.samples["plain"], what) / getattr(r.samples["idle"], what)
                for r in results
            ]
            print(
                f"kernel idle / no kernel ({unit}), round by round: "
                f"{', '.join(f'{x:.3f}' for x in pairs)} (median {statistics.median(pairs):.3f})"
            )
        for k in ("idle", "call"):
            events = ", ".join(str(r.samples[k].events) for r in results)
            print(f"{SIDES[k].label}: kernel events during the burst (LOC + softirqs): {events}")
        busy = ", ".join(f"{r.client_busy:.0%}" for r in results)
        print(f"client CPU time / wall time: {busy}; {len(results)} rounds in {took:.1f} s")
        costs = [
            f"{(1 / medians[what]['call'] - 1 / medians[what]['plain']) * 1e6:.1f} us of {name}"
            for what, name in (("wall", "wall time"), ("cpu", "server CPU time"))
        ]
        print(
            "a kernel call per request (POST /touch/{key}) costs, beyond GET /ping without a "
            f"kernel, {' and '.join(costs)} per request"
        )
        (first, unit), (second, other_unit) = measures
        m, o = medians[first], medians[second]
        rows = [
            Row(
                "GET /ping, kernel idle",
                m["idle"],
                m["plain"],
                unit,
                AtLeast("ratio", ">=", MIN_RATIO),
            ),
            Row("GET /ping, kernel idle", o["idle"], o["plain"], other_unit),
            Row("POST /touch, a kernel call", m["call"], m["plain"], unit),
        ]
        print_table(rows, baseline_label="no kernel")
        status = finish(rows)
        if opts.profile:
            for key in ("idle", "call"):
                profile_side(loop, key)
    finally:
        loop.close()
    return status


if __name__ == "__main__":
    if sys.argv[1:2] == [SERVER_FLAG]:
        sys.exit(server_main(sys.argv[2:]))
    sys.exit(main())
