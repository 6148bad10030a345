"""Embedding space: seeded UMAP of penultimate features, twin layouts for Model A and Model B.

- :func:`embed` lays out ``[n, d]`` features in 2-D with umap-learn (``n_neighbors=9``,
  ``min_dist=0.45``, ``random_state=seed``, so single-threaded and identical in every process on
  the same machine and library versions). The exact Euclidean k-nearest-neighbour graph is
  computed here in float64 with numpy and handed to UMAP (``precomputed_knn``): the neighbours are
  the ones UMAP's own exact small-data path finds, without its per-pair Python loop (about 2 s of
  the 3 s a warm 1,347-point fit takes otherwise).
- UMAP compiles its numba kernels on the first fit of every process (about 7-14 s on 2 cores).
  umap-learn does not ask numba to cache them on disk; :func:`_import_umap` does (numba's own
  cache, beside umap's sources or in the user's cache folder), so only the first process on a
  machine compiles and later ones load the machine code in well under a second (the same code,
  so the same layouts). :func:`warm_up` pays what is left once in a daemon thread at start-up of
  the app or CLI worker; :func:`embed` waits for a warm-up in progress instead of compiling again.
  The kernels of pynndescent, which umap-learn imports, compile only if called (never here):
  eagerly compiled they cost about 20 s of CPU on a machine's first import.
- Twin layouts: each model's layout is computed once, with the data seed, and stored with its
  result; :func:`mucomp.results.twin_embedding` aligns Model B's stored layout onto Model A's by
  orthogonal Procrustes (:func:`procrustes_align`: translation, one isotropic scale, rotation or
  reflection, fitted on the shared images). Model A's layout is never changed; a model against
  itself gives two identical layouts and the identity transform.
- :func:`points_frame` defines the per-point table the Contrast page draws: coordinates of both
  twins, true and predicted classes, forget flag, a status per model for the filters, and both
  models' softmax probabilities for the hover panel.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from mucomp.blas import limited_blas
from mucomp.layout_cache import layout_key, read_layout, write_layout
from mucomp.seeds import validate_seed

if TYPE_CHECKING:  # pragma: no cover - type hints only: importing mucomp.evaluation imports torch
    import pandas as pd


N_NEIGHBORS = 9
MIN_DIST = 0.45
N_COMPONENTS = 2
#: Temperature of the softmax probabilities shown in the hover panel.
PROBABILITY_TEMPERATURE = 2.0
#: numpy BLAS threads during a fit (kNN distances, spectral initialisation); ``None`` leaves the
#: process setting alone. UMAP with a seed is single-threaded anyway (see :mod:`mucomp.blas`).
BLAS_THREADS: int | None = 1
#: Fewest points :func:`embed` accepts (UMAP needs more points than neighbours).
MIN_POINTS = N_NEIGHBORS + 1

#: Per-model point status (mutually exclusive), see :func:`point_status`.
STATUSES = ("correctly_forgotten", "not_forgotten", "overly_forgotten", "retained")
#: The embedding filters (key -> label on the page), see :func:`filter_mask`.
FILTERS = {
    "all": "All",
    "target": "Target to forget",
    "correctly_forgotten": "Correctly forgotten",
    "not_forgotten": "Not forgotten",
    "overly_forgotten": "Overly forgotten",
}



# ---------------------------------------------------------------------------------------------
# Validation


def _check_features(features: object, name: str = "features") -> np.ndarray:
    array = np.asarray(features)
    if array.dtype == object or not np.issubdtype(array.dtype, np.number) or np.issubdtype(
        array.dtype, np.complexfloating
    ):
        raise ValueError(f"{name} must be a real numeric array, got dtype {array.dtype}")
    if array.ndim != 2:
        raise ValueError(f"{name} must have shape [n, d], got shape {array.shape}")
    if array.shape[0] < MIN_POINTS:
        raise ValueError(f"UMAP needs at least {MIN_POINTS} points (n_neighbors={N_NEIGHBORS}), got {array.shape[0]}")
    if array.shape[1] == 0:
        raise ValueError(f"{name} has no feature columns")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return array


def _check_layout(layout: object, name: str, n: int | None = None) -> np.ndarray:
    array = np.asarray(layout, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != N_COMPONENTS:
        raise ValueError(f"{name} must have shape [n, {N_COMPONENTS}], got {array.shape}")
    if n is not None and array.shape[0] != n:
        raise ValueError(f"{name} has {array.shape[0]} points, expected {n}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return array


# ---------------------------------------------------------------------------------------------
# UMAP


def exact_knn(features: np.ndarray, k: int = N_NEIGHBORS) -> tuple[np.ndarray, np.ndarray]:
    """Exact Euclidean k-nearest neighbours of every row, itself included first.

    Returns ``(indices, distances)``: int64 ``[n, k]`` and float32 ``[n, k]``, ascending by
    distance (ties by row number), ``indices[i, 0] == i`` with distance 0. Squared distances are
    computed in float64 as ``|a|² + |b|² - 2 a·b`` on centred features. Memory ``8 n²`` bytes.
    """
    x = np.asarray(features, dtype=np.float64)
    x = x - x.mean(axis=0)
    n = x.shape[0]
    if not 1 <= k <= n:
        raise ValueError(f"k must lie in [1, {n}], got {k}")
    sq = np.einsum("ij,ij->i", x, x)
    d2 = sq[:, None] + sq[None, :] - 2.0 * (x @ x.T)
    np.maximum(d2, 0.0, out=d2)
    np.fill_diagonal(d2, -1.0)  # self first, even among duplicates
    candidates = np.argpartition(d2, k - 1, axis=1)[:, :k] if k < n else np.tile(np.arange(n), (n, 1))
    values = np.take_along_axis(d2, candidates, axis=1)
    # Sort by distance, then by row number, so ties come out the same everywhere.
    order = np.lexsort((candidates, values), axis=1)
    indices = np.take_along_axis(candidates, order, axis=1)
    values = np.take_along_axis(values, order, axis=1)
    values[:, 0] = 0.0
    return indices.astype(np.int64), np.sqrt(np.maximum(values, 0.0)).astype(np.float32)


def umap_params(seed: int) -> dict:
    """The fixed UMAP settings of the embedding view for ``seed``."""
    return {
        "n_neighbors": N_NEIGHBORS,
        "min_dist": MIN_DIST,
        "n_components": N_COMPONENTS,
        "metric": "euclidean",
        "random_state": int(seed),
        "n_jobs": 1,
    }


#: The umap-learn modules whose numba kernels a fit compiles (umap 0.5: the layout's SGD epoch,
#: the fuzzy simplicial set); pynndescent caches its own.
_CACHED_UMAP_MODULES = ("umap.umap_", "umap.layouts")


_UMAP_CACHING = threading.Lock()
_umap_caching_on = False


@contextlib.contextmanager
def _pynndescent_kernels_compiled_when_called() -> Iterator[None]:
    """While it lasts, ``numba.njit`` drops the explicit signatures of pynndescent's kernels.

    umap-learn imports pynndescent, which compiles about 45 numba kernels with explicit
    signatures as it is imported: about 20 s of CPU the first time on a machine (then read back
    from numba's cache). mucomp never calls them (:func:`exact_knn` finds the neighbours), so they
    are declared lazily instead: a kernel that is called compiles then, for the types it is called
    with. umap-learn's own kernels keep their signatures (its random generator's int32 signature
    shapes the layouts). Measured on 2 cores with an empty numba cache: ``import umap`` 3.5 s
    instead of 23.2 s, the same layouts bit for bit (tests/test_embedding.py).
    """
    import numba

    if "pynndescent" in sys.modules:  # imported already: its kernels are compiled
        yield
        return
    eager = numba.njit

    def njit(*args, **kwargs):
        caller = sys._getframe(1).f_globals.get("__name__", "")
        if args and not callable(args[0]) and caller.partition(".")[0] == "pynndescent":
            args = args[1:]  # the signature (a string, a list or a Signature): compile when called
        return eager(*args, **kwargs)

    numba.njit = njit
    try:
        yield
    finally:
        numba.njit = eager


def _import_umap():
    """umap-learn, imported with pynndescent's kernels compiled only when called
    (:func:`_pynndescent_kernels_compiled_when_called`), and with numba's on-disk cache switched
    on, once per process, for the kernels of :data:`_CACHED_UMAP_MODULES` that are not compiled
    yet (a kernel numba cannot cache, or a cache folder that cannot be written, means compiling
    as before)."""
    global _umap_caching_on
    with _UMAP_CACHING:  # one thread at a time: numba.njit is swapped process-wide
        with _pynndescent_kernels_compiled_when_called():
            import umap

        if not _umap_caching_on:
            _umap_caching_on = True
            import importlib

            from numba.core.registry import CPUDispatcher

            for name in _CACHED_UMAP_MODULES:
                try:
                    module = importlib.import_module(name)
                except ImportError:
                    continue
                for kernel in list(vars(module).values()):
                    if isinstance(kernel, CPUDispatcher) and not kernel.overloads:
                        with contextlib.suppress(Exception):
                            kernel.enable_caching()
    return umap


def _fit_umap(features: np.ndarray, seed: int, init: np.ndarray | None) -> np.ndarray:
    """One UMAP fit; ``features`` validated ``[n, d]``; returns float64 ``[n, 2]``."""
    umap = _import_umap()

    x = np.ascontiguousarray(features, dtype=np.float32)
    with limited_blas(BLAS_THREADS):
        knn_indices, knn_distances = exact_knn(x, N_NEIGHBORS)
        reducer = umap.UMAP(
            **umap_params(seed),
            init="spectral" if init is None else np.asarray(init, dtype=np.float32),
            precomputed_knn=(knn_indices, knn_distances),
        )
        with warnings.catch_warnings():
            # umap-learn warns that transform() needs its own search index; we never transform.
            warnings.filterwarnings("ignore", message=r"precomputed_knn\[2\]", category=UserWarning)
            return np.asarray(reducer.fit_transform(x), dtype=np.float64)


_WARM_LOCK = threading.Lock()
_WARM_DONE = threading.Event()
_warm_thread: threading.Thread | None = None
_warm_error: BaseException | None = None


def _warm_up_data() -> np.ndarray:
    rng = np.random.default_rng(0)
    centres = np.repeat(np.arange(4), 16)[:, None] * 3.0
    return (rng.standard_normal((64, 8)) + centres).astype(np.float32)


def _warm_up_worker() -> None:
    global _warm_error
    try:
        _fit_umap(_warm_up_data(), 0, None)
    except BaseException as err:  # noqa: BLE001 - reported by warm_up_error(); embed() raises its own
        _warm_error = err
    finally:
        _WARM_DONE.set()


def warm_up(background: bool = True) -> threading.Thread | None:
    """Compile UMAP's numba kernels once per process by fitting a tiny data set (64 x 8).

    Idempotent and thread-safe: the first call starts a daemon thread (``mucomp-umap-warm-up``);
    later calls return that same thread (or ``None`` when a fit already warmed the process without
    it). ``background=False`` waits until the warm-up has finished. Call it at start-up of the app
    and of the CLI worker; :func:`embed` waits for a warm-up in progress rather than compiling
    again. A failure is kept in :func:`warm_up_error` (the next :func:`embed` raises its own).
    """
    global _warm_thread
    with _WARM_LOCK:
        if _warm_thread is None and not _WARM_DONE.is_set():
            _warm_thread = threading.Thread(target=_warm_up_worker, name="mucomp-umap-warm-up", daemon=True)
            _warm_thread.start()
        thread = _warm_thread
    if not background:
        _WARM_DONE.wait()
    return thread


def settle_warm_up() -> None:
    """Wait for a warm-up already in progress (started by :func:`warm_up`); start none.

    The runner calls it before the unlearning clock starts, so that numba's compilation in a
    background thread never runs during (and is never measured in) a method's RT."""
    with _WARM_LOCK:
        warming = _warm_thread is not None and not _WARM_DONE.is_set()
    if warming:
        _WARM_DONE.wait()


def is_warm() -> bool:
    """Whether UMAP has finished compiling in this process (by :func:`warm_up` or a fit)."""
    return _WARM_DONE.is_set() and _warm_error is None


def warm_up_error() -> BaseException | None:
    """The exception of a failed :func:`warm_up`, if any."""
    return _warm_error


def embed(features: object, seed: int, init: object | None = None) -> np.ndarray:
    """2-D UMAP layout of ``features``, reproducible for a given ``seed``.

    Parameters
    ----------
    features:
        ``[n, d]`` real, finite, ``n >= 10`` (e.g. penultimate features of the embedding subset).
        Used as float32.
    seed:
        UMAP's ``random_state`` (non-negative int): the same features and seed give the same
        coordinates, bit for bit, in every process on the same machine and library versions.
    init:
        ``None`` for UMAP's spectral initialisation, or an ``[n, 2]`` starting layout (e.g. another
        model's layout of the same images).

    Returns
    -------
    numpy.ndarray
        float64 ``[n, 2]`` coordinates, row ``i`` for ``features[i]`` (arbitrary units): read from
        :mod:`mucomp.layout_cache` when exactly these inputs were fitted before on this machine.
    """
    x = _check_features(features)
    seed = validate_seed(seed)
    start = None if init is None else _check_layout(init, "init", x.shape[0])
    key = layout_key(x, seed, start, umap_params(seed))
    cached = read_layout(key, x.shape[0])
    if cached is not None:
        return cached
    with _WARM_LOCK:
        warming = _warm_thread is not None and not _WARM_DONE.is_set()
    if warming:
        _WARM_DONE.wait()
    layout = _fit_umap(x, seed, start)
    if _warm_error is None:
        _WARM_DONE.set()
    write_layout(key, layout)
    return layout


# ---------------------------------------------------------------------------------------------
# Procrustes alignment


@dataclass(frozen=True)
class ProcrustesTransform:
    """``p -> scale * (p - moving_center) @ rotation + fixed_center`` for ``[n, 2]`` points.

    ``rotation`` is a 2x2 orthogonal matrix (a rotation, or a reflection when its determinant is
    -1); ``scale`` > 0.
    """

    rotation: np.ndarray
    scale: float
    moving_center: np.ndarray
    fixed_center: np.ndarray

    def apply(self, points: object) -> np.ndarray:
        p = _check_layout(points, "points")
        return self.scale * (p - self.moving_center) @ self.rotation + self.fixed_center


def procrustes_align(
    moving: object,
    fixed: object,
    pairs: tuple[object, object] | None = None,
    *,
    scale: bool | str = True,
) -> tuple[np.ndarray, ProcrustesTransform]:
    """Align the 2-D layout ``moving`` onto ``fixed`` by orthogonal Procrustes.

    Fitted on corresponding points (the shared images): ``pairs = (moving_rows, fixed_rows)``
    (equal-length row indices), or, by default, row ``i`` of ``moving`` with row ``i`` of
    ``fixed`` (then both need the same number of rows). Both point sets are centred on their
    centroids over the pairs; the rotation/reflection ``R`` maximises ``tr(Rᵀ Mᵀ F)`` (SVD of
    ``Mᵀ F``); with ``scale=True`` the isotropic scale is ``trace(Σ) / ||M||²``, the
    least-squares optimum, which shrinks ``moving`` towards the centre the less the two layouts
    agree; ``scale="spread"`` instead gives ``moving`` the spread of ``fixed`` (RMS distance to the
    centroid over the pairs: both in one frame, nothing squeezed; the same as the least-squares
    scale when the layouts differ by a similarity); ``False``: no scaling. The transform is
    applied to every row of ``moving``.

    Returns ``(aligned moving [n_moving, 2] float64, transform)``. ``fixed`` is not modified.
    """
    moving = _check_layout(moving, "moving")
    fixed = _check_layout(fixed, "fixed")
    if pairs is None:
        if moving.shape[0] != fixed.shape[0]:
            raise ValueError(
                f"moving has {moving.shape[0]} points and fixed {fixed.shape[0]}; pass pairs=(moving_rows, fixed_rows)"
            )
        m, f = moving, fixed
    else:
        rows_m = np.asarray(pairs[0], dtype=np.int64)
        rows_f = np.asarray(pairs[1], dtype=np.int64)
        if rows_m.ndim != 1 or rows_m.shape != rows_f.shape:
            raise ValueError("pairs must be two 1-D row-index arrays of the same length")
        m, f = moving[rows_m], fixed[rows_f]
    if m.shape[0] < 2:
        raise ValueError("Procrustes alignment needs at least 2 shared points")
    m_center, f_center = m.mean(axis=0), f.mean(axis=0)
    m0, f0 = m - m_center, f - f_center
    norm = float(np.sum(m0 * m0))
    if norm == 0.0:
        raise ValueError("the moving layout has all shared points in one place; nothing to align")
    u, sigma, vt = np.linalg.svd(m0.T @ f0)
    rotation = u @ vt
    if scale == "spread":
        factor = float(np.sqrt(np.sum(f0 * f0) / norm))
    elif scale is True:
        factor = float(sigma.sum() / norm)
    elif scale is False:
        factor = 1.0
    else:
        raise ValueError(f"scale must be True, False or 'spread', got {scale!r}")
    transform = ProcrustesTransform(rotation, factor, m_center, f_center)
    return transform.apply(moving), transform


def layout_spread(layout: object) -> float:
    """Root-mean-square distance of the points from their centroid (the layout's size)."""
    p = _check_layout(layout, "layout")
    return float(np.sqrt(np.mean(np.sum((p - p.mean(axis=0)) ** 2, axis=1))))


def mean_displacement(a: object, b: object) -> float:
    """Mean Euclidean distance between corresponding rows of two ``[n, 2]`` layouts."""
    a = _check_layout(a, "a")
    b = _check_layout(b, "b", a.shape[0])
    return float(np.mean(np.linalg.norm(a - b, axis=1)))


# ---------------------------------------------------------------------------------------------
# Per-point table


def forget_mask(true_class: np.ndarray, forget: object) -> np.ndarray:
    """Boolean ``[n]``: which points are forget images. ``forget`` is a forget class, a sequence
    of forget classes, or already a boolean ``[n]`` mask (random and index forget sets)."""
    value = np.asarray(forget)
    if value.dtype == bool:
        if value.shape != true_class.shape:
            raise ValueError("a forget mask needs one entry per point")
        return value
    return np.isin(true_class, np.atleast_1d(value).astype(np.int64))


def point_status(true_class: object, predicted: object, forget: object) -> np.ndarray:
    """Status of each point under one model, one of :data:`STATUSES` (object array ``[n]``).

    ``forget``: the forget class(es), or a boolean ``[n]`` mask of the forget images.

    - ``correctly_forgotten``: a forget image the model no longer gives its true class;
    - ``not_forgotten``: a forget image the model still classifies correctly;
    - ``overly_forgotten``: a retained image the model misclassifies (whatever the Original did);
    - ``retained``: a retained image the model classifies correctly.
    """
    true_class = np.asarray(true_class, dtype=np.int64)
    predicted = np.asarray(predicted, dtype=np.int64)
    if true_class.shape != predicted.shape:
        raise ValueError("true_class and predicted must have the same shape")
    correct = predicted == true_class
    status = np.where(
        forget_mask(true_class, forget),
        np.where(correct, "not_forgotten", "correctly_forgotten"),
        np.where(correct, "retained", "overly_forgotten"),
    )
    return status.astype(object)


def filter_mask(points, name: str, model: str = "a") -> np.ndarray:
    """Boolean ``[n]`` mask of the points one embedding filter shows for Model ``model``.

    ``name`` is a key of :data:`FILTERS` (``all``; ``target``: every forget-class image;
    ``correctly_forgotten`` / ``not_forgotten`` / ``overly_forgotten``: the points with that
    status under that model, see :func:`point_status`). ``model`` is ``"a"`` or ``"b"``.
    """
    if name not in FILTERS:
        raise ValueError(f"unknown filter {name!r}; choose one of {', '.join(FILTERS)}")
    if model not in ("a", "b"):
        raise ValueError(f"model must be 'a' or 'b', got {model!r}")
    if name == "all":
        return np.ones(len(points), dtype=bool)
    if name == "target":
        return points["is_forget"].to_numpy(dtype=bool)
    return (points[f"status_{model}"] == name).to_numpy(dtype=bool)


def probability_columns(num_classes: int, model: str) -> list[str]:
    """Names of one model's probability columns in :func:`embedding_points`: ``prob_a_0`` ..."""
    return [f"prob_{model}_{k}" for k in range(num_classes)]


def points_frame(
    indices: np.ndarray,
    true_class: np.ndarray,
    forget: object,
    layout_a: np.ndarray,
    layout_b: np.ndarray,
    pred_a: np.ndarray,
    pred_b: np.ndarray,
    prob_a: np.ndarray,
    prob_b: np.ndarray,
) -> pd.DataFrame:
    """The twin-embedding point table, one row per image; its columns are defined here only.

    Inputs are row-aligned: ``indices`` (dataset indices), ``true_class`` and ``pred_a`` /
    ``pred_b`` ``[n]`` ints, ``layout_a`` / ``layout_b`` ``[n, 2]`` (B already aligned onto A),
    ``prob_a`` / ``prob_b`` ``[n, C]`` probabilities. They are not validated here (the callers do).
    ``forget``: the forget class(es) or a boolean ``[n]`` mask (see :func:`forget_mask`).

    Columns: ``index``, ``true_class``, ``pred_a``, ``pred_b``, ``is_forget``, ``x_a``, ``y_a``,
    ``x_b``, ``y_b``, ``status_a``, ``status_b`` (:func:`point_status`), ``conf_a``, ``conf_b``
    (probability of the predicted class), then ``prob_a_0`` .. ``prob_a_{C-1}`` and ``prob_b_0`` ..
    """
    import pandas as pd

    rows = np.arange(len(indices))
    columns = {
        "index": indices,
        "true_class": true_class,
        "pred_a": pred_a,
        "pred_b": pred_b,
        "is_forget": forget_mask(true_class, forget),
        "x_a": layout_a[:, 0],
        "y_a": layout_a[:, 1],
        "x_b": layout_b[:, 0],
        "y_b": layout_b[:, 1],
        "status_a": point_status(true_class, pred_a, forget),
        "status_b": point_status(true_class, pred_b, forget),
        "conf_a": prob_a[rows, pred_a],
        "conf_b": prob_b[rows, pred_b],
    }
    num_classes = prob_a.shape[1]
    columns.update(dict(zip(probability_columns(num_classes, "a"), prob_a.T, strict=True)))
    columns.update(dict(zip(probability_columns(num_classes, "b"), prob_b.T, strict=True)))
    return pd.DataFrame(columns)


def probabilities(points, model: str = "a") -> np.ndarray:
    """Model ``model``'s softmax probabilities from a :func:`mucomp.results.twin_embedding` table (at the temperature it was built with: T = 1 for
    the twin table the pages show), ``[n, C]``."""
    columns = [c for c in points.columns if c.startswith(f"prob_{model}_")]
    return points[columns].to_numpy(dtype=np.float64)
