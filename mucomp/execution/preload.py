"""What the local backend's fork server loads once, so that every worker forked from it starts warm.

Spawning a worker costs about 10 s on 2 cores: importing torch (~4 s) and compiling UMAP's numba
kernels (~6 s); its first experiment then imports ~5 s more (:data:`FIRST_USE_MODULES`). The
local backend therefore starts its workers with multiprocessing's ``forkserver`` method: one server
process imports this module, and each worker is a fork of that server, ready in a fraction of a
second (a worker replaced after a crash or a cancel included).

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

#: Modules a worker's first experiment would import (measured: ~5 s of its first run on 2 cores,
#: 2.4 s of it ``torch._dynamo``, which the first optimiser built pulls in). Imports only: none
#: of them starts a thread or initialises CUDA when imported.
FIRST_USE_MODULES = (
    "torch._dynamo", "torch.optim", "sklearn.datasets", "sklearn.linear_model", "sklearn.metrics",
    "sklearn.decomposition", "scipy.stats", "safetensors.torch", "mucomp.schema", "mucomp.store",
    "mucomp.methods", "mucomp.audits", "mucomp.privacy", "mucomp.similarity",
)


def _import_first_use_modules() -> None:
    import contextlib
    import importlib

    for name in FIRST_USE_MODULES:
        with contextlib.suppress(Exception):  # the worker imports it itself if it needs it
            importlib.import_module(name)


def _load() -> None:
    try:
        import numba

        numba.config.THREADING_LAYER = "forksafe"
        import torch  # noqa: F401

        import mucomp.execution.execute  # noqa: F401
        from mucomp.embedding import warm_up

        _import_first_use_modules()

        thread = warm_up(background=False)
        if thread is not None:
            thread.join()
    except Exception:  # noqa: BLE001 - a worker warms up by itself when the server could not
        pass


_load()
