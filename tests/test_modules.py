"""Loadable modules: insmod, rmmod, lsmod, module_init/module_exit and MODULE_* tags."""

from __future__ import annotations

import errno
import re
import textwrap
from pathlib import Path

import pytest

from kdefer_async import (
    MODULE_AUTHOR,
    MODULE_DESCRIPTION,
    MODULE_LICENSE,
    WARN_ON,
    Kernel,
    KernelPanic,
    ModuleLoadError,
    module_exit,
    module_init,
    module_param,
)
from kdefer_async._module import ModuleDef, definition_for

pytestmark = pytest.mark.anyio

HEADER = "Module                  Size  Used by"

#: A module whose init and exit log the task they run in.
HELLO = """
from kdefer_async import MODULE_AUTHOR, MODULE_DESCRIPTION, MODULE_LICENSE
from kdefer_async import current, module_exit, module_init, pr_info

@module_init
{init_kind} hello_init():
    pr_info("hello: init by %s/%d", current().comm, current().pid)
    return 0

@module_exit
{exit_kind} hello_exit():
    pr_info("hello: exit by %s/%d", current().comm, current().pid)

MODULE_LICENSE({license!r})
MODULE_AUTHOR("A. Hacker")
MODULE_DESCRIPTION("says hello")
"""
EVENT = re.compile(r"hello: (init|exit) by (\S+)/(\d+)$")


def _write(tmp_path: Path, name: str, source: str) -> Path:
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    return path


def _hello(
    tmp_path: Path, *, init: str = "async def", exit: str = "def", license: str = "GPL"
) -> Path:
    return _write(tmp_path, "hello", HELLO.format(init_kind=init, exit_kind=exit, license=license))


def _has(k: Kernel, text: str) -> bool:
    return any(text in line for line in k.dmesg())


def _loaded(k: Kernel) -> list[str]:
    return [line.split()[0] for line in k.lsmod().splitlines()[1:]]


def _events(k: Kernel) -> list[tuple[str, str, int]]:
    """What the hello module's init and exit logged: (which, comm, pid)."""
    found = [EVENT.search(line) for line in k.dmesg()]
    return [(m.group(1), m.group(2), int(m.group(3))) for m in found if m]


class TestInsmod:
    @pytest.mark.parametrize("init", ["async def", "def"])
    async def test_init_runs_as_insmod(self, tmp_path: Path, init: str) -> None:
        """module_init (async def or plain def) runs in an "insmod" task; insmod returns 0."""
        path = _hello(tmp_path, init=init)
        async with Kernel(nr_cpus=2, hz=250) as k:
            assert await k.insmod(path) == 0
            events = _events(k)
            assert [(e[0], e[1]) for e in events] == [("init", "insmod")]
            assert events[0][2] not in (0, 1)
            assert "hello" in _loaded(k)

    async def test_path_as_str(self, tmp_path: Path) -> None:
        """insmod takes a str path as well as a pathlib.Path."""
        path = _hello(tmp_path)
        async with Kernel(nr_cpus=1, hz=250) as k:
            assert await k.insmod(str(path)) == 0
            assert _loaded(k) == ["hello"]

    async def test_init_returning_none(self, tmp_path: Path) -> None:
        """An init that returns nothing counts as success."""
        path = _write(
            tmp_path,
            "quiet",
            """
            from kdefer_async import MODULE_LICENSE, module_init
            @module_init
            def quiet_init():
                pass
            MODULE_LICENSE("GPL")
            """,
        )
        async with Kernel(nr_cpus=1, hz=250) as k:
            assert await k.insmod(path) == 0
            assert _loaded(k) == ["quiet"]

    async def test_module_without_init(self, tmp_path: Path) -> None:
        """A module with no module_init loads (and unloads) fine."""
        path = _write(
            tmp_path, "bare", 'from kdefer_async import MODULE_LICENSE\nMODULE_LICENSE("GPL")\n'
        )
        async with Kernel(nr_cpus=1, hz=250) as k:
            assert await k.insmod(path) == 0
            assert _loaded(k) == ["bare"]
            assert await k.rmmod("bare") == 0
            assert _loaded(k) == []

    async def test_init_returning_errno(self, tmp_path: Path) -> None:
        """init returning -EINVAL: ModuleLoadError (an OSError, errno EINVAL), logged, not loaded."""
        path = _write(
            tmp_path,
            "picky",
            """
            from kdefer_async import EINVAL, MODULE_LICENSE, module_init
            @module_init
            async def picky_init():
                return -EINVAL
            MODULE_LICENSE("GPL")
            """,
        )
        async with Kernel(nr_cpus=1, hz=250) as k:
            with pytest.raises(ModuleLoadError) as info:
                await k.insmod(path)
            assert isinstance(info.value, OSError)
            assert info.value.errno == errno.EINVAL
            assert "picky" not in _loaded(k)
        assert _has(k, f"insmod: ERROR: could not insert module {path}: Invalid argument")
        assert k.oopses == []

    async def test_init_raising_is_an_oops(self, tmp_path: Path) -> None:
        """init raising: an oops of the insmod task, ModuleLoadError chaining it, not loaded."""
        path = _write(
            tmp_path,
            "crashy",
            """
            from kdefer_async import MODULE_LICENSE, module_init
            @module_init
            def crashy_init():
                raise ZeroDivisionError("init bug")
            MODULE_LICENSE("GPL")
            """,
        )
        async with Kernel(nr_cpus=1, hz=250) as k:
            with pytest.raises(ModuleLoadError) as info:
                await k.insmod(path)
            assert isinstance(info.value.__cause__, ZeroDivisionError)
            assert "crashy" not in _loaded(k)
            assert len(k.oopses) == 1
            oops = k.oopses[0]
            assert oops.comm == "insmod"
            assert isinstance(oops.exception, ZeroDivisionError)
        assert _has(
            k, "BUG: unhandled exception in module init crashy: ZeroDivisionError: init bug"
        )
        assert _has(k, "Oops: ZeroDivisionError [#1]")
        assert _has(k, f"PID: {oops.pid} Comm: insmod")
        assert not _has(k, "Kernel panic")

    async def test_init_raising_with_panic_on_oops(self, tmp_path: Path) -> None:
        """With panic_on_oops=True an exception in init panics the kernel."""
        path = _write(
            tmp_path,
            "fatal",
            """
            from kdefer_async import module_init
            @module_init
            def fatal_init():
                raise RuntimeError("fatal init")
            """,
        )
        with pytest.raises(KernelPanic) as info:
            async with Kernel(nr_cpus=1, hz=250, panic_on_oops=True) as k:
                await k.insmod(path)
        assert isinstance(info.value.__cause__, RuntimeError)
        assert _has(k, "Kernel panic - not syncing: Fatal exception")

    async def test_insmod_twice(self, tmp_path: Path) -> None:
        """Loading a module that is already loaded fails with EEXIST and runs no second init."""
        path = _hello(tmp_path)
        async with Kernel(nr_cpus=1, hz=250) as k:
            await k.insmod(path)
            with pytest.raises(ModuleLoadError) as info:
                await k.insmod(path)
            assert info.value.errno == errno.EEXIST
            assert [e[0] for e in _events(k)] == ["init"]
            assert _loaded(k) == ["hello"]
        assert _has(k, f"insmod: ERROR: could not insert module {path}: File exists")

    async def test_insmod_twice_does_not_rerun_the_file(self, tmp_path: Path) -> None:
        """A refused second insmod does not execute the module file's top level again."""
        path = _write(
            tmp_path,
            "noisy",
            """
            from kdefer_async import MODULE_LICENSE, current_kernel, pr_info
            if current_kernel() is not None:
                pr_info("noisy: top level ran")
            MODULE_LICENSE("GPL")
            """,
        )
        async with Kernel(nr_cpus=1, hz=250) as k:
            await k.insmod(path)
            with pytest.raises(ModuleLoadError):
                await k.insmod(path)
        assert sum("noisy: top level ran" in line for line in k.dmesg()) == 1

    async def test_missing_file(self, tmp_path: Path) -> None:
        """A missing file fails with ENOENT and the insmod error line."""
        path = tmp_path / "nosuch.py"
        async with Kernel(nr_cpus=1, hz=250) as k:
            with pytest.raises(ModuleLoadError) as info:
                await k.insmod(path)
            assert info.value.errno == errno.ENOENT
            assert _loaded(k) == []
        assert _has(k, f"insmod: ERROR: could not insert module {path}: No such file or directory")

    async def test_not_a_module(self, tmp_path: Path) -> None:
        """A file that is not a .py module fails with ENOEXEC."""
        path = tmp_path / "hello.ko"
        path.write_text("binary")
        async with Kernel(nr_cpus=1, hz=250) as k:
            with pytest.raises(ModuleLoadError) as info:
                await k.insmod(path)
            assert info.value.errno == errno.ENOEXEC
        assert _has(k, "insmod: ERROR: could not insert module")

    async def test_syntax_error(self, tmp_path: Path) -> None:
        """A module file that does not compile fails with ENOEXEC, not a SyntaxError."""
        path = _write(tmp_path, "broken", "def (:\n")
        async with Kernel(nr_cpus=1, hz=250) as k:
            with pytest.raises(ModuleLoadError) as info:
                await k.insmod(path)
            assert info.value.errno == errno.ENOEXEC
            assert _loaded(k) == []

    async def test_insmod_after_failed_init(self, tmp_path: Path) -> None:
        """After an init failure the module can be fixed and loaded."""
        path = _write(
            tmp_path,
            "retry",
            """
            from kdefer_async import ENOMEM, MODULE_LICENSE, module_init
            @module_init
            def retry_init():
                return -ENOMEM
            MODULE_LICENSE("GPL")
            """,
        )
        async with Kernel(nr_cpus=1, hz=250) as k:
            with pytest.raises(ModuleLoadError) as info:
                await k.insmod(path)
            assert info.value.errno == errno.ENOMEM
            path.write_text(path.read_text().replace("return -ENOMEM", "return 0"))
            assert await k.insmod(path) == 0
            assert _loaded(k) == ["retry"]


class TestRmmod:
    @pytest.mark.parametrize("exit", ["def", "async def"])
    async def test_rmmod_runs_exit(self, tmp_path: Path, exit: str) -> None:
        """rmmod runs module_exit (plain or async) in an "rmmod" task and unloads the module."""
        path = _hello(tmp_path, exit=exit)
        async with Kernel(nr_cpus=1, hz=250) as k:
            await k.insmod(path)
            assert await k.rmmod("hello") == 0
            events = _events(k)
            assert [(e[0], e[1]) for e in events] == [("init", "insmod"), ("exit", "rmmod")]
            assert events[0][2] != events[1][2]
            assert _loaded(k) == []

    async def test_rmmod_by_file_name(self, tmp_path: Path) -> None:
        """rmmod accepts the module's file name, as the real rmmod does."""
        path = _hello(tmp_path)
        async with Kernel(nr_cpus=1, hz=250) as k:
            await k.insmod(path)
            assert await k.rmmod("hello.py") == 0
            assert _loaded(k) == []

    async def test_rmmod_unknown(self) -> None:
        """rmmod of a module that is not loaded: the rmmod error line and ModuleLoadError(ENOENT)."""
        async with Kernel(nr_cpus=1, hz=250) as k:
            with pytest.raises(ModuleLoadError) as info:
                await k.rmmod("x")
            assert info.value.errno == errno.ENOENT
        assert _has(k, "rmmod: ERROR: Module x is not currently loaded")

    async def test_rmmod_twice(self, tmp_path: Path) -> None:
        """A second rmmod of the same module fails: it is no longer loaded."""
        path = _hello(tmp_path)
        async with Kernel(nr_cpus=1, hz=250) as k:
            await k.insmod(path)
            await k.rmmod("hello")
            with pytest.raises(ModuleLoadError):
                await k.rmmod("hello")
        assert _has(k, "rmmod: ERROR: Module hello is not currently loaded")

    async def test_reload_after_rmmod(self, tmp_path: Path) -> None:
        """After rmmod the module can be loaded again, running its init again."""
        path = _hello(tmp_path)
        async with Kernel(nr_cpus=1, hz=250) as k:
            await k.insmod(path)
            await k.rmmod("hello")
            await k.insmod(path)
            assert _loaded(k) == ["hello"]
        assert [e[0] for e in _events(k)] == ["init", "exit", "init"]

    async def test_modules_are_per_kernel(self, tmp_path: Path) -> None:
        """A module loaded in one kernel is not loaded in the next one."""
        path = _hello(tmp_path)
        async with Kernel(nr_cpus=1, hz=250) as k:
            await k.insmod(path)
        async with Kernel(nr_cpus=1, hz=250) as k2:
            assert _loaded(k2) == []
            assert await k2.insmod(path) == 0


class TestLsmod:
    async def test_empty(self) -> None:
        """With no module loaded lsmod prints only its header."""
        async with Kernel(nr_cpus=1, hz=250) as k:
            assert k.lsmod() == HEADER + "\n"

    async def test_layout(self, tmp_path: Path) -> None:
        """lsmod lays out "%-19s %8u  %s" rows (name, size, users) in load order."""
        first = _hello(tmp_path)
        second = _write(
            tmp_path,
            "a_second_module",
            'from kdefer_async import MODULE_LICENSE\nMODULE_LICENSE("GPL")\n',
        )
        async with Kernel(nr_cpus=1, hz=250) as k:
            await k.insmod(first)
            await k.insmod(second)
            lines = k.lsmod().splitlines()
        assert lines[0] == HEADER
        assert lines[1] == f"{'hello':<19} {first.stat().st_size:>8}  0"
        assert lines[2] == f"{'a_second_module':<19} {second.stat().st_size:>8}  0"
        assert all(re.fullmatch(r"\S+ +\d+  \d+", line) for line in lines[1:])
        assert len(lines) == 3

    async def test_lsmod_in_warn(self, tmp_path: Path) -> None:
        """A WARN's "Modules linked in:" line lists the loaded modules."""
        async with Kernel(nr_cpus=1, hz=250) as k:
            await k.insmod(_hello(tmp_path))
            WARN_ON(True)
        assert any(line.endswith("Modules linked in: hello") for line in k.dmesg())


class TestLicense:
    async def test_gpl_does_not_taint(self, tmp_path: Path) -> None:
        """MODULE_LICENSE("GPL") does not taint with P; only O (out of tree), in the kernel's flag order."""
        async with Kernel(nr_cpus=1, hz=250) as k:
            await k.insmod(_hello(tmp_path, license="GPL"))
            WARN_ON(True)
        assert not _has(k, "module license")
        assert _has(k, "hello: loading out-of-tree module taints kernel.")
        assert not any("[P]=" in line for line in k.dmesg())
        assert any("Tainted: [W]=WARN, [O]=OOT_MODULE" in line for line in k.dmesg())

    @pytest.mark.parametrize("license", ["GPL v2", "Dual BSD/GPL", "Dual MIT/GPL"])
    async def test_gpl_compatible_licenses(self, tmp_path: Path, license: str) -> None:
        """GPL-compatible licenses do not taint either."""
        async with Kernel(nr_cpus=1, hz=250) as k:
            await k.insmod(_hello(tmp_path, license=license))
        assert not _has(k, "module license")

    async def test_missing_license_taints(self, tmp_path: Path) -> None:
        """A module without MODULE_LICENSE: "module license 'unspecified' taints kernel."."""
        path = _write(tmp_path, "nolicense", "x = 1\n")
        async with Kernel(nr_cpus=1, hz=250) as k:
            await k.insmod(path)
            WARN_ON(True)
        assert _has(k, "nolicense: module license 'unspecified' taints kernel.")
        assert any("Tainted: [P]=PROPRIETARY_MODULE" in line for line in k.dmesg())

    async def test_proprietary_license_taints(self, tmp_path: Path) -> None:
        """A proprietary license taints the kernel and says so, naming the license."""
        async with Kernel(nr_cpus=1, hz=250) as k:
            await k.insmod(_hello(tmp_path, license="Proprietary"))
        assert _has(k, "hello: module license 'Proprietary' taints kernel.")

    async def test_out_of_tree_taint_once(self, tmp_path: Path) -> None:
        """The out-of-tree taint message is printed for the first module only."""
        second = _write(
            tmp_path, "other", 'from kdefer_async import MODULE_LICENSE\nMODULE_LICENSE("GPL")\n'
        )
        async with Kernel(nr_cpus=1, hz=250) as k:
            await k.insmod(_hello(tmp_path))
            await k.insmod(second)
        assert sum("loading out-of-tree module taints kernel." in line for line in k.dmesg()) == 1


class TestDecorators:
    async def test_decorators_return_the_function(self) -> None:
        """module_init and module_exit return the function they decorate, unchanged."""

        def f() -> int:
            return 0  # pragma: no cover

        assert module_init(f) is f
        assert module_exit(f) is f

    async def test_decorators_reject_non_callables(self) -> None:
        """module_init/module_exit of something that is not callable raise TypeError."""
        with pytest.raises(TypeError):
            module_init(42)  # type: ignore[type-var]
        with pytest.raises(TypeError):
            module_exit("exit")  # type: ignore[type-var]

    async def test_tags_outside_a_load_do_not_leak(self, tmp_path: Path) -> None:
        """MODULE_* tags used outside insmod do not attach to a module loaded later."""
        MODULE_LICENSE("Proprietary")
        MODULE_AUTHOR("Somebody Else")
        MODULE_DESCRIPTION("not mine")
        async with Kernel(nr_cpus=1, hz=250) as k:
            await k.insmod(_hello(tmp_path, license="GPL"))
        assert not _has(k, "module license")


PARAM_MODULE = """
from kdefer_async import MODULE_LICENSE, module_init, module_param, printk

count = 1
name = "world"
verbose = False
module_param("count", int, 0o644)
module_param("name", "charp", 0o444)
module_param("verbose", bool, 0o644)

@module_init
def init():
    printk("count=%d name=%s verbose=%d\\n", count, name, verbose)
    return 0

MODULE_LICENSE("GPL")
"""


class TestModuleParams:
    async def test_defaults_and_values(self, tmp_path: Path) -> None:
        """module_param variables keep their defaults, or take "name=value" from insmod."""
        path = tmp_path / "params.py"
        path.write_text(PARAM_MODULE)
        async with Kernel(nr_cpus=1, hz=250) as k:
            await k.insmod(path)
            await k.rmmod("params")
            await k.insmod(path, "count=5", "name=kdefer", "verbose=y")
        text = "\n".join(k.dmesg())
        assert "count=1 name=world verbose=0" in text
        assert "count=5 name=kdefer verbose=1" in text

    async def test_unknown_and_bad_values(self, tmp_path: Path) -> None:
        """An unknown parameter is ignored with the kernel's message; a bad value fails the
        load with EINVAL."""
        path = tmp_path / "params.py"
        path.write_text(PARAM_MODULE)
        async with Kernel(nr_cpus=1, hz=250) as k:
            await k.insmod(path, "nosuch=1")
            await k.rmmod("params")
            with pytest.raises(ModuleLoadError) as info:
                await k.insmod(path, "count=many")
            assert info.value.errno == errno.EINVAL
            assert "params" not in k.lsmod()
        text = "\n".join(k.dmesg())
        assert "params: unknown parameter 'nosuch' ignored" in text
        assert "params: 'many' invalid for parameter 'count'" in text

    def test_bad_type(self) -> None:
        """module_param with a type it cannot convert to is a ValueError."""
        with pytest.raises(
            ValueError,
            match=r"^module_param\(\) expects int, str, bool, or one of 'int', .* for 'type', "
            r"got <class 'list'>$",
        ):
            module_param("x", list, 0)


def _this_module() -> ModuleDef:
    """What the tags of this test file record into (it is not loaded by insmod)."""
    MODULE_DESCRIPTION("argument checks")  # makes sure the definition exists
    mdef = definition_for(__name__)
    assert mdef is not None
    return mdef


def _snapshot(mdef: ModuleDef) -> tuple[object, ...]:
    return (
        mdef.init,
        mdef.exit,
        list(mdef.author),
        mdef.license,
        mdef.description,
        dict(mdef.params),
    )


class TestArguments:
    @pytest.mark.parametrize("tag", [MODULE_LICENSE, MODULE_AUTHOR, MODULE_DESCRIPTION])
    @pytest.mark.parametrize(("value", "shown"), [(None, "NoneType"), (b"GPL", "bytes")])
    def test_tags_take_strings(self, tag: object, value: object, shown: str) -> None:
        """MODULE_LICENSE(None) is a TypeError (a C string literal), recording nothing."""
        mdef = _this_module()
        before = _snapshot(mdef)
        name = getattr(tag, "__name__", "")
        with pytest.raises(TypeError, match=rf"^{name}\(\) expects a str for 's', got {shown}$"):
            tag(value)  # type: ignore[operator]
        assert _snapshot(mdef) == before

    @pytest.mark.parametrize("decorator", [module_init, module_exit])
    def test_entry_points_take_no_arguments(self, decorator: object) -> None:
        """module_init/module_exit need a function callable with no arguments."""
        mdef = _this_module()
        before = _snapshot(mdef)
        name = getattr(decorator, "__name__", "")
        with pytest.raises(
            TypeError,
            match=rf"^{name}\(\) expects a function callable as fn\(\) for 'fn', got NoneType$",
        ):
            decorator(None)  # type: ignore[operator]
        with pytest.raises(
            TypeError,
            match=rf"^{name}\(\) expects a function callable as fn\(\) for 'fn', but "
            r"<lambda>\(dev\) cannot be called with no arguments$",
        ):
            decorator(lambda dev: 0)  # type: ignore[operator]
        assert _snapshot(mdef) == before

    @pytest.mark.parametrize(
        ("args", "exc", "message"),
        [
            ((5, int, 0o644), TypeError, "a str for 'name', got int"),
            (("my count", int, 0o644), ValueError, "a C identifier .* for 'name', got 'my count'"),
            (("count", 5, 0o644), TypeError, "int, str, bool, or one of .* for 'type', got int"),
            (("count", "float", 0o644), ValueError, "int, str, bool, or one of .* got 'float'"),
            (("count", int, "0644"), TypeError, "an int for 'perm', got str"),
            (("count", int, 0o1000), ValueError, "a mode from 0 to 0o777 for 'perm', got 512"),
            (
                ("count", int, 0o666),
                ValueError,
                "a mode not writable by others for 'perm', got 0o666",
            ),
            (
                ("count", int, 0o044),
                ValueError,
                "a mode readable by the user if by the group, .* for 'perm', got 0o44",
            ),
            (
                ("count", int, 0o464),
                ValueError,
                "a mode writable by the user if by the group for 'perm', got 0o464",
            ),
        ],
        ids=[
            "name-type",
            "name-value",
            "type-type",
            "type-value",
            "perm-type",
            "perm-range",
            "other-writable",
            "readable-order",
            "writable-order",
        ],
    )
    def test_module_param(
        self, args: tuple[object, ...], exc: type[Exception], message: str
    ) -> None:
        """module_param checks name, type and perm as the kernel's build does."""
        mdef = _this_module()
        before = _snapshot(mdef)
        with pytest.raises(exc, match=rf"^module_param\(\) expects {message}$"):
            module_param(*args)  # type: ignore[arg-type]
        assert _snapshot(mdef) == before

    def test_module_param_accepts_kernel_modes(self) -> None:
        """The modes drivers use (0, 0444, 0644, 0600, 0664) are accepted."""
        mdef = _this_module()
        for perm in (0, 0o444, 0o644, 0o600, 0o664):
            module_param("count", int, perm)
            assert mdef.params["count"][1] == perm
        del mdef.params["count"]
