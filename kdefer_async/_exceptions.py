"""Every exception kdefer_async raises, each on the most meaningful built-in base."""

from __future__ import annotations


class KernelPanic(Exception):
    """
    The simulated kernel panicked.

    Raised out of ``async with Kernel()`` and :func:`kdefer_async.run` (never wrapped in an
    ``ExceptionGroup``) when the kernel stops, as a real one does, on ``panic()``: an exception in
    an atomic handler ("Fatal exception in interrupt"), or an oops with ``panic_on_oops=True``.
    The original exception is chained as ``__cause__``.

    .. versionadded:: 0.1
    """


class KernelBug(Exception):
    """
    The calling code did what the kernel reports as a ``BUG``.

    Raised in the offending code after the report reaches ``dmesg``: a self-deadlock the kernel
    would hang on (``possible recursive locking detected``), a sleep in atomic context, a
    ``BUG_ON()`` whose condition holds.

    .. versionadded:: 0.1
    """


class NoKernelError(RuntimeError):
    """
    A kernel API was called with no :class:`~kdefer_async.Kernel` running in this context.

    .. versionadded:: 0.1
    """


class KdeferInternalError(Exception):
    """
    Something happened that should never happen inside kdefer_async; all bets are off.

    .. versionadded:: 0.1
    """


class ModuleLoadError(OSError):
    """
    ``insmod``/``rmmod`` failed; ``errno`` is the kernel's error number.

    .. versionadded:: 0.1
    """
