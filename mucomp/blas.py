"""Temporarily cap numpy's BLAS threads for a block of small matrix products.

On a 2-core machine shared with torch's thread pool (or any other busy process), a multi-threaded
OpenBLAS call waits for a worker thread that has no free core: measured here, 60 Gram matrices of
digits size took 2.5 s with 2 BLAS threads and 0.3 s with 1, and one 250 x 65,536 float64 Gram
matrix 2.1 s against 0.16 s. :func:`limited_blas` caps the BLAS libraries (not torch, not OpenMP)
for the duration of a block.

The cap is process-wide while any block holds it (that is how BLAS thread counts work); blocks
are reference-counted, so nested and concurrent blocks in several threads restore the original
setting only when the last one ends. Without threadpoolctl (a scikit-learn dependency) it does
nothing.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

_lock = threading.Lock()
_depth = 0
_limiter = None
_controller = None


def _get_controller():
    global _controller
    if _controller is None:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:  # pragma: no cover - scikit-learn brings threadpoolctl
            _controller = False
        else:
            _controller = ThreadpoolController()
    return _controller


@contextlib.contextmanager
def limited_blas(threads: int | None) -> Iterator[None]:
    """Run the block with at most ``threads`` BLAS threads; ``None`` leaves the setting alone.

    While blocks with different caps overlap, the first one's cap stays in force.
    """
    global _depth, _limiter
    if threads is None:
        yield
        return
    with _lock:
        if _depth == 0:
            controller = _get_controller()
            _limiter = controller.limit(limits=int(threads), user_api="blas") if controller else None
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _limiter is not None:
                _limiter.restore_original_limits()
                _limiter = None
