"""kdefer_async.run(): boot a kernel in a new event loop, run main in it, return its value.

These are plain synchronous tests: run() starts its own event loop.
"""

from __future__ import annotations

import importlib.util
import time

import anyio
import pytest

import kdefer_async
from kdefer_async import Kernel, KernelPanic, Tasklet, current, current_kernel, tasklet_schedule

BACKENDS = ["asyncio", "trio"]


@pytest.mark.parametrize("backend", BACKENDS)
class TestRun:
    def test_returns_main_value(self, backend: str) -> None:
        """run() returns what main returned."""

        async def main() -> str:
            return "done"

        assert kdefer_async.run(main, backend=backend) == "done"

    def test_passes_positional_args(self, backend: str) -> None:
        """Positional arguments after main are passed to it."""

        async def main(a: int, b: str) -> tuple[int, str]:
            return a, b

        assert kdefer_async.run(main, 1, "x", backend=backend) == (1, "x")

    def test_kernel_geometry(self, backend: str) -> None:
        """nr_cpus and hz reach the Kernel; main runs as init on CPU 0."""

        async def main() -> tuple[int, int, int, str, int]:
            k = current_kernel()
            return k.nr_cpus, k.hz, kdefer_async.HZ, current().comm, current().pid

        assert kdefer_async.run(main, nr_cpus=3, hz=100, backend=backend) == (
            3,
            100,
            100,
            "init",
            1,
        )

    def test_defaults(self, backend: str) -> None:
        """By default the kernel has 4 CPUs at HZ=250."""

        async def main() -> tuple[int, int]:
            return kdefer_async.num_online_cpus(), kdefer_async.HZ

        assert kdefer_async.run(main, backend=backend) == (4, 250)

    def test_kernel_options(self, backend: str) -> None:
        """Further keyword options go to the Kernel (here dyndbg)."""

        async def main() -> list[str]:
            kdefer_async.pr_debug("debug line")
            return current_kernel().dmesg()

        assert any(
            "debug line" in line for line in kdefer_async.run(main, backend=backend, dyndbg=True)
        )
        assert not any("debug line" in line for line in kdefer_async.run(main, backend=backend))

    def test_virtual_time(self, backend: str) -> None:
        """With virtual_time=True an hour of kernel time passes at once, in exact jiffies."""

        async def main() -> int:
            start = kdefer_async.jiffies
            await anyio.sleep(3600)
            return int(kdefer_async.jiffies - start)

        wall = time.perf_counter()
        assert kdefer_async.run(main, hz=100, backend=backend, virtual_time=True) == 3600 * 100
        assert time.perf_counter() - wall < 30

    def test_virtual_msleep(self, backend: str) -> None:
        """msleep() on virtual time returns after at least its duration in jiffies."""

        async def main() -> int:
            start = kdefer_async.jiffies
            await kdefer_async.msleep(2000)
            return int(kdefer_async.jiffies - start)

        elapsed = kdefer_async.run(main, hz=100, backend=backend, virtual_time=True)
        assert 201 <= elapsed <= 230  # msecs_to_jiffies(2000) + 1, plus wheel slack

    def test_panic_propagates(self, backend: str) -> None:
        """A panic leaves run() as KernelPanic, chaining the cause."""
        err = ValueError("boom")

        def boom(t: Tasklet) -> None:
            raise err

        async def main() -> None:
            tasklet_schedule(Tasklet(boom))
            await anyio.sleep_forever()

        with pytest.raises(KernelPanic) as info:
            kdefer_async.run(main, backend=backend)
        assert info.value.__cause__ is err

    def test_main_exception_propagates(self, backend: str) -> None:
        """main's own exception leaves run() unwrapped."""

        async def main() -> None:
            raise LookupError("mine")

        with pytest.raises(LookupError, match="mine"):
            kdefer_async.run(main, backend=backend)

    def test_no_kernel_after_run(self, backend: str) -> None:
        """After run() returns no kernel is current."""

        async def main() -> Kernel:
            return current_kernel()

        k = kdefer_async.run(main, backend=backend)
        assert k.dmesg()[-1].endswith("reboot: System halted")
        with pytest.raises(RuntimeError):
            current_kernel()


def test_uvloop_backend_option() -> None:
    """backend_options reach anyio.run: the asyncio backend on uvloop works."""
    if importlib.util.find_spec("uvloop") is None:
        pytest.skip("uvloop not installed")

    async def main() -> int:
        return kdefer_async.num_online_cpus()

    assert kdefer_async.run(main, nr_cpus=2, backend_options={"use_uvloop": True}) == 2


def test_async_callable_object() -> None:
    """run() accepts an object whose __call__ is `async def`."""

    class Main:
        async def __call__(self, x: int) -> int:
            return x * 2

    assert kdefer_async.run(Main(), 21) == 42


async def _main() -> None:
    pass  # pragma: no cover


async def _main_one(x: int) -> int:
    return x  # pragma: no cover


def _plain_main() -> int:
    return 1  # pragma: no cover


class TestArguments:
    """run() checks main and every option before an event loop starts, in the _check.py
    wording (Kernel options not named by run() get Kernel()'s)."""

    @pytest.fixture(autouse=True)
    def no_event_loop(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Starting an event loop fails the test: every rejection must come before."""

        def refuse(*args: object, **kwargs: object) -> None:
            raise AssertionError("an event loop was started")

        monkeypatch.setattr(anyio, "run", refuse)

    @pytest.mark.parametrize(
        ("main", "args", "kwargs", "exc", "message"),
        [
            pytest.param(
                _main,
                (),
                {"nr_cpus": 0},
                ValueError,
                "run() expects an int from 1 to 1024 for 'nr_cpus', got 0",
                id="nr_cpus-0",
            ),
            pytest.param(
                _main,
                (),
                {"nr_cpus": "2"},
                TypeError,
                "run() expects an int for 'nr_cpus', got str",
                id="nr_cpus-str",
            ),
            pytest.param(
                _main,
                (),
                {"hz": "250"},
                TypeError,
                "run() expects an int for 'hz', got str",
                id="hz-str",
            ),
            pytest.param(
                _main,
                (),
                {"hz": 0},
                ValueError,
                "run() expects an int from 1 to 10000 for 'hz', got 0",
                id="hz-0",
            ),
            pytest.param(
                _main,
                (),
                {"backend": "curio"},
                ValueError,
                "run() expects 'asyncio' or 'trio' for 'backend', got 'curio'",
                id="backend-unknown",
            ),
            pytest.param(
                _main,
                (),
                {"backend": None},
                TypeError,
                "run() expects a str for 'backend', got NoneType",
                id="backend-none",
            ),
            pytest.param(
                _main,
                (),
                {"backend_options": [("use_uvloop", True)]},
                TypeError,
                "run() expects a dict or None for 'backend_options', got list",
                id="backend_options-list",
            ),
            pytest.param(
                _main,
                (),
                {"virtual_time": 1},
                TypeError,
                "run() expects a bool for 'virtual_time', got int",
                id="virtual_time-int",
            ),
            pytest.param(
                _main,
                (),
                {"hung_task_timeout_secs": -5},
                ValueError,
                "Kernel() expects a number of seconds >= 0 (0 disables the detector) for "
                "'hung_task_timeout_secs', got -5",
                id="kernel-option",
            ),
            pytest.param(
                None,
                (),
                {},
                TypeError,
                "run() expects a function callable as main(*args) for 'main', got NoneType",
                id="main-none",
            ),
        ],
    )
    def test_rejected_before_boot(
        self,
        main: object,
        args: tuple[object, ...],
        kwargs: dict[str, object],
        exc: type[Exception],
        message: str,
    ) -> None:
        """Each bad argument is refused with the exact message, before any loop starts."""
        with pytest.raises(exc) as info:
            kdefer_async.run(main, *args, **kwargs)  # type: ignore[arg-type]
        assert str(info.value) == message

    def test_main_must_be_async_def(self) -> None:
        """A plain main would return before anything ran: refused, naming the one rule."""
        with pytest.raises(TypeError) as info:
            kdefer_async.run(_plain_main)  # type: ignore[arg-type]
        assert str(info.value).startswith(
            "run(): main may sleep, so it must be `async def` (called as `await main(*args)`), but "
        )
        assert str(info.value).endswith("_plain_main is a plain function")

    def test_main_must_take_the_arguments(self) -> None:
        """main is called as main(*args): a main that cannot take them is refused now."""
        with pytest.raises(TypeError) as info:
            kdefer_async.run(_main_one)
        assert str(info.value).startswith(
            "run() expects a function callable as main(*args) for 'main', but "
        )
        assert str(info.value).endswith("cannot be called with no arguments")
        with pytest.raises(TypeError) as info:
            kdefer_async.run(_main, 1)
        assert str(info.value).endswith("cannot be called with 1 positional argument")

    def test_unknown_option(self) -> None:
        """An option Kernel() does not have is a TypeError, before any loop starts."""
        with pytest.raises(TypeError, match="unexpected keyword argument 'nr_cpu'"):
            kdefer_async.run(_main, nr_cpu=2)
