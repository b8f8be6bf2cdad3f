"""One pass at a time on a state file: an exclusive ``flock`` on ``<state>.lock``.

A store opened for writing holds the lock until it is closed (``run`` for its pass, ``serve``
while it runs, ``dlq replay`` for its replay). The kernel drops it when the process ends,
however it ends (SIGKILL included), so a stale lock file never blocks the next pass. The file
holds the holder's pid and start time, for the message the next one prints. One process may
open the same store more than once: the lock counts the opens and is released with the last.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time

from pipeline.errors import StateHeldError

__all__ = ["PRIVATE", "acquire", "release", "tighten"]

PRIVATE = 0o600
"""The mode of every file the product keeps beside the state (emails, reasons)."""

_WAIT_FOR_HOLDER = 0.5  # seconds to wait for a holder that has just locked to write its pid
_held: dict[str, tuple[int, int]] = {}  # lock file -> (descriptor, opens in this process)
_guard = threading.Lock()


def tighten(fd: int) -> None:
    """Make an open file readable by its owner only, if it is wider (older versions made it
    0644); a file of another user is left as it is."""
    with contextlib.suppress(OSError):
        if os.fstat(fd).st_mode & 0o077:
            os.fchmod(fd, PRIVATE)


def acquire(state_path: str) -> None:
    """Hold the lock of the state file at ``state_path`` for this process.

    Raises:
        StateError: another process holds it.
        OSError: the lock file cannot be created or locked.
    """
    path = os.path.realpath(state_path) + ".lock"
    with _guard:
        if path in _held:
            fd, opens = _held[path]
            _held[path] = (fd, opens + 1)
            return
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, PRIVATE)
        try:
            tighten(fd)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise StateHeldError(
                    f"another pass holds the state ({_holder(fd)}): {state_path}"
                ) from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()} {time.time():.0f}\n".encode(), 0)
        except BaseException:
            os.close(fd)
            raise
        _held[path] = (fd, 1)


def release(state_path: str) -> None:
    """Undo one :func:`acquire`; the last one of the process unlocks the file."""
    path = os.path.realpath(state_path) + ".lock"
    with _guard:
        if path not in _held:
            return
        fd, opens = _held.pop(path)
        if opens > 1:
            _held[path] = (fd, opens - 1)
        else:
            os.close(fd)  # the lock goes with the descriptor; the file stays, harmless


def _holder(fd: int) -> str:
    """``pid N, since T`` of the process holding the lock, as it wrote them."""
    deadline = time.monotonic() + _WAIT_FOR_HOLDER
    while True:
        fields = os.pread(fd, 64, 0).split()
        if len(fields) == 2 and fields[0].isdigit() and fields[1].isdigit():
            since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(int(fields[1])))
            return f"pid {int(fields[0])}, since {since}"
        if time.monotonic() > deadline:
            return "pid unknown"
        time.sleep(0.02)
