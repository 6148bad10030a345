"""Locks that hold across threads AND processes, waited for cancellably.

:func:`locked` guards one piece of once-only work (train a reference, store a reference's
figures) keyed by a lock-file path: a per-path thread lock for the threads of this process, then a
per-path :class:`filelock.FileLock` for other processes (``mucomp references`` started three times
at once, the app and a CLI run sharing ``$MUCOMP_HOME``). We use ``filelock`` because it is
well kept, cross-platform (``fcntl.flock`` on POSIX, ``msvcrt.locking`` on Windows; the OS drops
the lock when a holder dies, so a killed process never leaves a stale lock) and already installed:
huggingface_hub and torch use it for the same job on their own caches.

Both waits poll every :data:`POLL_S` seconds and check the ``cancelled`` callback in between, so
a user can still stop a run that is waiting for another process.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock, Timeout

from mucomp.progress import CancelFn, stop_if_cancelled

POLL_S = 0.5

_LOCKS: dict[str, tuple[threading.RLock, FileLock]] = {}
_LOCKS_GUARD = threading.Lock()


def _locks_for(path: Path) -> tuple[threading.RLock, FileLock]:
    """The one (thread lock, FileLock) pair of this process for ``path`` (made on first use)."""
    key = str(Path(path).absolute())
    with _LOCKS_GUARD:
        pair = _LOCKS.get(key)
        if pair is None:
            pair = _LOCKS[key] = (threading.RLock(), FileLock(key))
        return pair


@contextlib.contextmanager
def locked(path: str | Path, *, cancelled: CancelFn | None = None, waiting_for: str = "another run") -> Iterator[None]:
    """Hold the thread lock and the file lock at ``path`` (its folder is created) for a block.

    While another thread or process holds them, waits in :data:`POLL_S` steps and raises
    :class:`~mucomp.progress.RunStopped` (``"cancelled"``) once ``cancelled()`` is true;
    ``waiting_for`` completes its message ("cancelled by the user while waiting for ...").
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    thread_lock, file_lock = _locks_for(path)
    while not thread_lock.acquire(timeout=POLL_S):
        stop_if_cancelled(cancelled, f"while waiting for {waiting_for}")
    try:
        while True:
            try:
                file_lock.acquire(timeout=POLL_S)
                break
            except Timeout:
                stop_if_cancelled(cancelled, f"while waiting for {waiting_for}")
        try:
            yield
        finally:
            file_lock.release()
    finally:
        thread_lock.release()
