"""Locks that hold across threads AND processes, waited for cancellably.

:func:`locked` guards one piece of once-only work (train a reference, store a reference's
figures) keyed by a lock-file path: a per-path thread lock for the threads of this process, then a
per-path :class:`filelock.FileLock` for other processes (``mucomp references`` started three times
at once, the app and a CLI run sharing ``$MUCOMP_HOME``). We use ``filelock`` because it is
well kept, cross-platform (``fcntl.flock`` on POSIX, ``msvcrt.locking`` on Windows; the OS drops
the lock when a holder dies, so a killed process never leaves a stale lock) and already installed:
huggingface_hub and torch use it for the same job on their own caches.

Both waits poll every :data:`POLL_S` seconds and check the ``cancelled`` callback in between, so
a user can still stop a run that is waiting for another process. A folder this process can't
write (a read-only store) gets no lock file: there is nothing to guard (:func:`locked`).
"""

from __future__ import annotations

import contextlib
import os
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
    In a folder this process can't write (a read-only store or reference cache) only the thread
    lock is held: reading what is stored there needs no file lock, and any write fails anyway.
    """
    path = Path(path)
    with contextlib.suppress(OSError):  # a read-only folder: see _acquire_file_lock
        path.parent.mkdir(parents=True, exist_ok=True)
    thread_lock, file_lock = _locks_for(path)
    while not thread_lock.acquire(timeout=POLL_S):
        stop_if_cancelled(cancelled, f"while waiting for {waiting_for}")
    try:
        held = _acquire_file_lock(file_lock, path, cancelled, waiting_for)
        try:
            yield
        finally:
            if held:
                file_lock.release()
    finally:
        thread_lock.release()


def _acquire_file_lock(file_lock: FileLock, path: Path, cancelled: CancelFn | None, waiting_for: str) -> bool:
    """Acquire ``file_lock`` (waiting cancellably); False, without it, when its folder is read-only
    for this process (a read-only store or cache: this process writes nothing there, so there is
    no write to guard, and whatever is already there can still be read). Other errors are raised."""
    while True:
        try:
            file_lock.acquire(timeout=POLL_S)
            return True
        except Timeout:
            stop_if_cancelled(cancelled, f"while waiting for {waiting_for}")
        except OSError:
            if _writable(path.parent):
                raise
            return False


def _writable(folder: Path) -> bool:
    """Whether this process may create files in ``folder`` (False also when it does not exist and
    can't be made; ``os.access`` knows read-only mounts too)."""
    return folder.is_dir() and os.access(folder, os.W_OK | os.X_OK)
