"""Errno values and ``IS_ERR_VALUE`` (§10): the x86-64 numbers and the error-value range.

Behaviours checked here: ER-01 and ER-02. None of §10 is left unmodelled.
"""

from __future__ import annotations

import errno
import sys

import pytest
from hypothesis import given, strategies as st

import kdefer_async
from kdefer_async import (
    EINTR,
    IS_ERR_VALUE,
    MAX_ERRNO,
    Kernel,
    kthread_create,
    kthread_stop,
)

#: §10's table: name -> value (x86-64, include/uapi/asm-generic/errno*.h, include/linux/errno.h).
TABLE = {
    "EPERM": 1,
    "ENOENT": 2,
    "EINTR": 4,
    "EIO": 5,
    "ENXIO": 6,
    "EAGAIN": 11,
    "EWOULDBLOCK": 11,
    "ENOMEM": 12,
    "EFAULT": 14,
    "EBUSY": 16,
    "EEXIST": 17,
    "ENODEV": 19,
    "EINVAL": 22,
    "ENOSPC": 28,
    "ENOSYS": 38,
    "ETIME": 62,
    "ENOTCONN": 107,
    "ETIMEDOUT": 110,
    "EALREADY": 114,
    "EINPROGRESS": 115,
    "ECANCELED": 125,
    "ERESTARTSYS": 512,
}


class TestValues:
    @pytest.mark.parametrize(("name", "value"), sorted(TABLE.items()))
    def test_errno_values(self, name: str, value: int) -> None:
        """ER-01: every errno of §10 has the kernel's x86-64 value, exported as a plain int."""
        got = getattr(kdefer_async, name)
        assert type(got) is int
        assert got == value
        assert name in kdefer_async.__all__

    def test_ewouldblock_is_eagain(self) -> None:
        """ER-01: EWOULDBLOCK is EAGAIN (11)."""
        assert kdefer_async.EWOULDBLOCK == kdefer_async.EAGAIN == 11

    def test_max_errno(self) -> None:
        """ER-01: MAX_ERRNO is 4095."""
        assert MAX_ERRNO == 4095

    @pytest.mark.skipif(sys.platform != "linux", reason="the host's errno numbers are Linux's")
    def test_agree_with_the_host_on_linux(self) -> None:
        """ER-01: the user-visible numbers are those Python's errno module has on Linux."""
        for name, value in TABLE.items():
            if name != "ERESTARTSYS":  # kernel-internal: never reaches user space
                assert getattr(errno, name) == value, name


class TestIsErrValue:
    @pytest.mark.parametrize("x", [-1, -4095, 2**64 - 1, 2**64 - 4095, -EINTR, 2**65 - 1])
    def test_errors(self, x: int) -> None:
        """ER-02: IS_ERR_VALUE(-1), (-4095), (2**64 - 1) are true (x is cast to unsigned long)."""
        assert IS_ERR_VALUE(x) is True

    @pytest.mark.parametrize("x", [-4096, 0, 22, 1, 2**64 - 4096, 2**63, 2**64, -(2**64)])
    def test_not_errors(self, x: int) -> None:
        """ER-02: IS_ERR_VALUE(-4096), (0), (22) are false."""
        assert IS_ERR_VALUE(x) is False

    @given(st.integers(-(2**70), 2**70))
    def test_is_the_unsigned_comparison(self, x: int) -> None:
        """ER-02: IS_ERR_VALUE(x) is (unsigned long)x >= (unsigned long)-MAX_ERRNO, for any x."""
        assert IS_ERR_VALUE(x) is (x % 2**64 >= 2**64 - MAX_ERRNO)

    def test_every_negative_errno_is_an_error_value(self) -> None:
        """ER-02: -1 to -MAX_ERRNO all are; -(MAX_ERRNO + 1) is not."""
        assert all(IS_ERR_VALUE(-e) for e in range(1, MAX_ERRNO + 1))
        assert not IS_ERR_VALUE(-(MAX_ERRNO + 1))

    @pytest.mark.anyio
    async def test_a_kernel_return_value(self) -> None:
        """ER-02: what kthread_stop returns for a thread that never ran (-EINTR) is an error
        value; what a thread function returns (0) is not."""
        async with Kernel(nr_cpus=1):

            async def threadfn(data: object) -> int:
                return 0

            ret = await kthread_stop(kthread_create(threadfn, None, "never-run"))
            assert ret == -EINTR
            assert IS_ERR_VALUE(ret)
            assert not IS_ERR_VALUE(0)


class TestArguments:
    @pytest.mark.parametrize(("junk", "kind"), [(None, "NoneType"), (True, "bool"), (1.0, "float")])
    def test_x_must_be_an_int(self, junk: object, kind: str) -> None:
        """IS_ERR_VALUE(None), (True), (1.0): TypeErrors naming 'x'."""
        with pytest.raises(
            TypeError, match=rf"^IS_ERR_VALUE\(\) expects an int for 'x', got {kind}$"
        ):
            IS_ERR_VALUE(junk)  # type: ignore[arg-type]

    def test_int_subclass(self) -> None:
        """An int subclass is an int."""
        import enum

        class Ret(enum.IntEnum):
            FAIL = -12

        assert IS_ERR_VALUE(Ret.FAIL) is True
