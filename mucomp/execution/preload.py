"""What the local backend's fork server loads once, so that every worker forked from it starts warm.

Spawning a worker costs about 10 s on 2 cores: importing torch (~4 s) and compiling UMAP's numba
kernels (~6 s). The local backend therefore starts its workers with multiprocessing's
``forkserver`` method: one server process imports this module, and each worker is a fork of that
server, ready in a fraction of a second (a worker replaced after a crash or a cancel included).

Fork safety, which is why this module does no more than it does:

- torch is imported but runs no operation here, so its OpenMP thread pool does not exist yet
  (a pool created before a fork hangs the child's first parallel operation).
- numba's threading layer is chosen as ``"forksafe"`` before the warm-up launches it (GNU OpenMP,
  numba's default here, is not fork-safe; the layer chosen instead gives the same layouts, since
  UMAP with a seed runs single-threaded).
- Nothing here reads the environment or registers plugins: the worker applies the environment of
  its parent at start (:func:`mucomp.execution.worker.main`), as a spawned process would get it.

Any failure here is swallowed: the worker then imports and compiles what it needs itself.
"""

from __future__ import annotations


def _load() -> None:
    try:
        import numba

        numba.config.THREADING_LAYER = "forksafe"
        import torch  # noqa: F401

        import mucomp.runner  # noqa: F401
        from mucomp.embedding import warm_up

        thread = warm_up(background=False)
        if thread is not None:
            thread.join()
    except Exception:  # noqa: BLE001 - a worker warms up by itself when the server could not
        pass


_load()
