"""Layer-wise representation similarity: linear CKA with the unbiased HSIC estimator.

Centred kernel alignment (Kornblith et al., 2019) compares two representations of the same ``n``
images, ``X`` ``[n, d1]`` and ``Y`` ``[n, d2]`` (a conv map is flattened per image):

    CKA(X, Y) = HSIC(K, L) / sqrt(HSIC(K, K) * HSIC(L, L)),   K = X Xᵀ,  L = Y Yᵀ  (linear kernels)

- ``unbiased=True`` (the default, what the Contrast page shows) uses the unbiased HSIC estimator of
  Song et al. (2012), as used for CKA by Nguyen et al. (2021). It is computed as the Frobenius inner
  product of *U-centred* Gram matrices (zero diagonal, rows and columns re-centred with the
  ``1/(n-2)`` and ``1/((n-1)(n-2))`` corrections), scaled by ``1/(n(n-3))``; the scale cancels in
  CKA. Needs ``n >= 4``. Two independent representations score about 0 (it may be slightly
  negative); the biased estimator is pushed upwards when ``d`` is large relative to ``n``.
- ``unbiased=False``: the original biased estimator ``tr(K H L H) / (n-1)²`` (``H`` the centring
  matrix). Needs ``n >= 2``.

Both estimators are unchanged by adding any constant vector to every row of ``X`` (or ``Y``), so
features are centred over the images first; that keeps float64 Gram matrices free of
cancellation. Everything is computed in float64. CKA is 1 for ``X`` against itself, invariant to
orthogonal transforms and to isotropic scaling of either side, and lies in [-1, 1]. It is NaN when
either side has no variance across the images (e.g. a dead ReLU layer).

Cost. :func:`linear_cka` takes whichever route is cheaper for the shapes: ``n x n`` Gram matrices
(about ``n² (d1 + d2)`` multiply-adds) or feature-space products ``XᵀY``, ``XᵀX``, ``YᵀY`` (about
``n (d1² + d2² + d1 d2)``). The layer-wise functions always go through Gram matrices: a layer's
Gram matrix depends on one model and one image subset only, so it is computed once per (model,
subset, layer), cached on the :class:`~mucomp.evaluation.Evaluation` (``Evaluation.grams``), and
reused against both references and every later comparison; each CKA is then one ``O(n²)`` inner
product. :func:`precompute_grams` fills that cache and can drop the raw activations, which cuts a
CIFAR ResNet-18 evaluation from about 1.2 MB per kept image to ``8 n²`` bytes per layer and subset.

Vision transformers. A ViT layer's output is every token: ViT-B/16 keeps ``conv_proj`` (768 x 14
x 14) and twelve encoder blocks (197 tokens x 768) per image, about 151,000 floats (0.6 MB in
float32) per layer and 7.9 MB per image over the 13, so the feature route (``d x d`` products,
``d`` = 151,296) is out of reach and the Gram route is the only one: an ``n x n`` Gram matrix
costs ``n² d`` multiply-adds (250 images: 9.5 G per layer and subset, 0.3-1.7 s measured on
one core of the development machine) and 8 n² bytes (0.5 MB). Memory: the raw activations of the 500 kept images of
one split are 3.9 GB (both splits of one model 7.9 GB) until :func:`precompute_grams` replaces
them by 14 layers x 2 subsets x 0.5 MB = 14 MB per split; the conversion to float64 runs in
column blocks of ``_CHUNK_BYTES`` (64 MB), so it adds at most that. ``vit_digits``: 17 tokens x 64
per block, 6.6 kB per layer and image.

Threads: the matrix products run with at most :data:`BLAS_THREADS` numpy BLAS threads (1 by
default; the cap is process-wide while a product runs, see :mod:`mucomp.blas`).

Nothing here runs a model: every function reads :class:`~mucomp.evaluation.Evaluation` objects.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from mucomp.blas import limited_blas
from mucomp.forget_sets import MIN_SET_IMAGES

if TYPE_CHECKING:
    from mucomp.evaluation import Evaluation

#: numpy BLAS threads while Gram matrices and feature products are computed; ``None`` leaves the
#: process setting alone. 1 by default: on 2 shared cores a 2-thread OpenBLAS call waits for a
#: worker with no free core and runs 8-15x slower (see :mod:`mucomp.blas`).
BLAS_THREADS: int | None = 1

#: The four CKA subsets, as keys of :attr:`mucomp.data.Scenario.cka_indices` (``<split>_<part>``).
SUBSET_KEYS = ("train_forget", "train_retain", "test_forget", "test_retain")
#: The reference models CKA is measured against.
REFERENCE_KINDS = ("original", "retrained")

# Features are converted to float64 in column blocks of at most this many bytes.
_CHUNK_BYTES = 64 * 2**20


# ---------------------------------------------------------------------------------------------
# Validation


def _as_matrix(x: object, name: str) -> np.ndarray:
    """``x`` as an ``[n, d]`` array (``[n, ...]`` flattened per sample), finite, d >= 1."""
    array = np.asarray(x)
    if array.dtype == object or not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise ValueError(f"{name} must be a numeric array, got dtype {array.dtype}")
    if array.ndim < 2:
        raise ValueError(f"{name} must have shape [n, d] (one row per image), got shape {array.shape}")
    array = array.reshape(array.shape[0], -1)
    if array.shape[1] == 0:
        raise ValueError(f"{name} has no features (shape {array.shape})")
    if np.issubdtype(array.dtype, np.complexfloating):
        raise ValueError(f"{name} must be real, got dtype {array.dtype}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return array


def _min_samples(unbiased: bool) -> int:
    return MIN_SET_IMAGES if unbiased else 2  # the unbiased estimator's n(n-3): forget sets are sized by it


def _check_n(n: int, unbiased: bool, what: str = "CKA") -> None:
    need = _min_samples(unbiased)
    if n < need:
        estimator = "the unbiased HSIC estimator" if unbiased else "the biased HSIC estimator"
        raise ValueError(f"{what} with {estimator} needs at least {need} images, got {n}")


def _as_indices(indices: object, name: str = "indices") -> np.ndarray:
    array = np.asarray(indices)
    if array.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of dataset indices, got shape {array.shape}")
    if array.size and not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{name} must hold integers, got dtype {array.dtype}")
    array = array.astype(np.int64, copy=False)
    if np.unique(array).size != array.size:
        raise ValueError(f"{name} must not repeat an image")
    return array


# ---------------------------------------------------------------------------------------------
# Gram matrices and HSIC


def gram(x: object, *, chunk_bytes: int = _CHUNK_BYTES) -> np.ndarray:
    """Linear-kernel Gram matrix of the centred features: ``K = Xc Xcᵀ``, float64 ``[n, n]``.

    ``x`` is ``[n, d]`` (or ``[n, ...]``, flattened per row), any real dtype; ``Xc = X - mean(X,
    axis=0)``. Columns are converted to float64 in blocks of at most ``chunk_bytes`` so a float32
    ``[n, 65536]`` conv map never exists twice in float64. Both HSIC estimators give the same value
    on ``Xc Xcᵀ`` as on ``X Xᵀ``.
    """
    x = _as_matrix(x, "x")
    n, d = x.shape
    mean = x.mean(axis=0, dtype=np.float64)
    step = max(1, int(chunk_bytes) // (8 * max(n, 1)))
    k = np.zeros((n, n), dtype=np.float64)
    with limited_blas(BLAS_THREADS):
        for lo in range(0, d, step):
            block = x[:, lo : lo + step].astype(np.float64)
            block -= mean[lo : lo + step]
            k += block @ block.T
    return k


def center_gram(k: np.ndarray, unbiased: bool = True) -> np.ndarray:
    """A centred copy of a symmetric Gram matrix ``k`` ``[n, n]``, float64.

    ``unbiased=True``: U-centring (Székely and Rizzo): the diagonal is set to 0, then
    ``U_ij = K_ij - r_i/(n-2) - r_j/(n-2) + s/((n-1)(n-2))`` for ``i != j`` with ``r`` the row sums
    and ``s`` the total of the zero-diagonal matrix; ``U_ii = 0``. Then
    ``HSIC_unbiased(K, L) = <U_K, U_L>_F / (n (n-3))`` (Song et al., 2012).
    ``unbiased=False``: double centring ``H K H`` with ``H = I - 11ᵀ/n``.
    """
    k = np.array(k, dtype=np.float64, copy=True)
    if k.ndim != 2 or k.shape[0] != k.shape[1]:
        raise ValueError(f"a Gram matrix must be square [n, n], got shape {k.shape}")
    n = k.shape[0]
    _check_n(n, unbiased, "centring a Gram matrix")
    if unbiased:
        np.fill_diagonal(k, 0.0)
        row = k.sum(axis=0) / (n - 2)
        row -= row.sum() / (2 * (n - 1))
        k -= row[:, None]
        k -= row[None, :]
        np.fill_diagonal(k, 0.0)
    else:
        k -= k.mean(axis=0, keepdims=True)
        k -= k.mean(axis=1, keepdims=True)
    return k


def hsic(k: np.ndarray, l: np.ndarray, unbiased: bool = True) -> float:  # noqa: E741
    """HSIC of two (uncentred or centred) Gram matrices ``[n, n]`` of the same images.

    Unbiased: ``<U_K, U_L>_F / (n (n-3))`` (see :func:`center_gram`). Biased:
    ``tr(K H L H) / (n-1)²``.
    """
    k = np.asarray(k, dtype=np.float64)
    l = np.asarray(l, dtype=np.float64)  # noqa: E741
    if k.shape != l.shape:
        raise ValueError(f"Gram matrices of different shapes: {k.shape} and {l.shape}")
    n = k.shape[0]
    product = _inner(center_gram(k, unbiased), center_gram(l, unbiased))
    return product / (n * (n - 3)) if unbiased else product / (n - 1) ** 2


def _inner(a: np.ndarray, b: np.ndarray) -> float:
    """Frobenius inner product. numpy's own loop, not BLAS: no thread hand-off for an O(n²) sum."""
    return float(np.einsum("ij,ij->", a, b))


def _cka_value(cross: float, self_x: float, self_y: float, scale_x: float, scale_y: float) -> float:
    """CKA from the (unscaled) HSIC terms; NaN when one side has no variance.

    ``scale_*`` is the magnitude the self term is compared with (``trace(K)²``, which is
    ``||Xc||_F⁴`` for centred features): a self term at or below ``1e-12`` of it is rounding noise
    on a representation without variance.
    """
    if self_x <= 1e-12 * scale_x or self_y <= 1e-12 * scale_y or self_x <= 0 or self_y <= 0:
        return float("nan")
    value = cross / np.sqrt(self_x * self_y)
    return float(np.clip(value, -1.0, 1.0))


def cka_from_grams(k: np.ndarray, l: np.ndarray, unbiased: bool = True) -> float:  # noqa: E741
    """Linear CKA from two Gram matrices ``[n, n]`` of the same images (row ``i`` = image ``i``).

    Accepts raw (``X Xᵀ``) or feature-centred (:func:`gram`) Gram matrices. NaN if either side has
    no variance across the images.
    """
    k = np.asarray(k, dtype=np.float64)
    l = np.asarray(l, dtype=np.float64)  # noqa: E741
    if k.ndim != 2 or k.shape[0] != k.shape[1] or k.shape != l.shape:
        raise ValueError(f"need two square Gram matrices of the same shape, got {k.shape} and {l.shape}")
    _check_n(k.shape[0], unbiased)
    kc, lc = center_gram(k, unbiased), center_gram(l, unbiased)
    # trace(K)^2 = ||Xc||_F^4 for a feature-centred Gram matrix (what gram() returns).
    scale_x = float(np.trace(k)) ** 2
    scale_y = float(np.trace(l)) ** 2
    return _cka_value(_inner(kc, lc), _inner(kc, kc), _inner(lc, lc), scale_x, scale_y)


def _centred_float64(x: np.ndarray) -> np.ndarray:
    out = x.astype(np.float64)
    out -= out.mean(axis=0)
    return out


def _hsic_features(x: np.ndarray, y: np.ndarray, xty_sq: float, unbiased: bool) -> float:
    """Unscaled HSIC (times ``n(n-3)`` or ``(n-1)²``) from centred features and ``||XᵀY||_F²``.

    Unbiased (Song et al., 2012) with ``K~``, ``L~`` the zero-diagonal Gram matrices::

        tr(K~L~) + (1ᵀK~1)(1ᵀL~1) / ((n-1)(n-2)) - 2/(n-2) · 1ᵀK~L~1

    where ``tr(K~L~) = ||XᵀY||² - Σ_i |x_i|²|y_i|²``, ``K~1 = X(Xᵀ1) - diag(K)``.
    """
    if not unbiased:
        return xty_sq
    n = x.shape[0]
    kd = np.einsum("ij,ij->i", x, x)
    ld = np.einsum("ij,ij->i", y, y)
    sx, sy = x.sum(axis=0), y.sum(axis=0)
    k1 = x @ sx - kd  # K~ 1
    l1 = y @ sy - ld
    trace_term = xty_sq - float(kd @ ld)
    sums_term = float(k1.sum()) * float(l1.sum()) / ((n - 1) * (n - 2))
    cross_term = 2.0 / (n - 2) * float(k1 @ l1)
    return trace_term + sums_term - cross_term


def _cka_features(x: np.ndarray, y: np.ndarray, unbiased: bool) -> float:
    xc, yc = _centred_float64(x), _centred_float64(y)
    with limited_blas(BLAS_THREADS):
        cross = _hsic_features(xc, yc, float(np.sum((xc.T @ yc) ** 2)), unbiased)
        self_x = _hsic_features(xc, xc, float(np.sum((xc.T @ xc) ** 2)), unbiased)
        self_y = _hsic_features(yc, yc, float(np.sum((yc.T @ yc) ** 2)), unbiased)
    scale_x = float(np.sum(xc * xc)) ** 2
    scale_y = float(np.sum(yc * yc)) ** 2
    return _cka_value(cross, self_x, self_y, scale_x, scale_y)


def cka_route(n: int, d1: int, d2: int) -> str:
    """``"gram"`` or ``"features"``: the cheaper way to compute CKA for these shapes.

    Gram route about ``n² (d1 + d2)`` multiply-adds, feature route about ``n (d1² + d2² + d1 d2)``.
    """
    gram_cost = n * n * (d1 + d2)
    feature_cost = n * (d1 * d1 + d2 * d2 + d1 * d2)
    return "features" if feature_cost < gram_cost else "gram"


def linear_cka(x: object, y: object, unbiased: bool = True, *, route: str = "auto") -> float:
    """Linear CKA between two representations of the same ``n`` images.

    Parameters
    ----------
    x, y:
        ``[n, d1]`` and ``[n, d2]`` arrays (``[n, C, H, W]`` conv maps are flattened per image);
        row ``i`` of both is image ``i``. Any real dtype; computed in float64.
    unbiased:
        Unbiased HSIC estimator (default; needs ``n >= 4``) or the biased one (``n >= 2``).
    route:
        ``"auto"`` (default: the cheaper of the two for the shapes, see :func:`cka_route`),
        ``"gram"`` (``n x n`` Gram matrices) or ``"features"`` (``d x d`` products). Both give the
        same value up to rounding.

    Returns
    -------
    float
        CKA in [-1, 1]; 1 for ``x`` against itself; NaN if ``x`` or ``y`` is constant over the
        images.
    """
    x = _as_matrix(x, "x")
    y = _as_matrix(y, "y")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x and y must describe the same images: {x.shape[0]} rows vs {y.shape[0]}")
    _check_n(x.shape[0], unbiased)
    if route == "auto":
        route = cka_route(x.shape[0], x.shape[1], y.shape[1])
    if route == "features":
        return _cka_features(x, y, unbiased)
    if route == "gram":
        return cka_from_grams(gram(x), gram(y), unbiased)
    raise ValueError(f"route must be 'auto', 'gram' or 'features', got {route!r}")


# ---------------------------------------------------------------------------------------------
# Layer-wise CKA on Evaluations


def _fingerprint(indices: np.ndarray) -> str:
    return hashlib.blake2b(np.ascontiguousarray(indices, dtype=np.int64).tobytes(), digest_size=12).hexdigest()


def recorded_layers(evaluation: Evaluation) -> list[str]:
    """The layers of ``evaluation`` CKA can read: kept activations, then precomputed Grams only."""
    layers = list(evaluation.activations)
    for layer, _ in evaluation.grams:
        if layer not in layers:
            layers.append(layer)
    return layers


def layer_gram(evaluation: Evaluation, layer: str, indices: object, *, cache: bool = True) -> np.ndarray:
    """The feature-centred Gram matrix (see :func:`gram`) of ``layer`` over ``indices``.

    Rows and columns follow ``indices`` (dataset indices of the evaluation's split). Read from
    ``evaluation.grams`` when present; otherwise computed from the kept activations and, with
    ``cache=True``, stored there (``8 n²`` bytes) for later comparisons. The cached matrix is
    returned as is: do not modify it.
    """
    indices = _as_indices(indices)
    key = (layer, _fingerprint(indices))
    cached = evaluation.grams.get(key)
    if cached is not None:
        return cached
    if layer not in evaluation.activations:
        if any(name == layer for name, _ in evaluation.grams):
            raise KeyError(
                f"the {evaluation.split} evaluation keeps only precomputed Gram matrices for layer {layer!r}, "
                f"none for these {indices.size} images; use the subsets given to precompute_grams, or "
                "keep the activations"
            )
        raise KeyError(
            f"layer {layer!r} was not recorded in the {evaluation.split} evaluation; recorded: "
            f"{recorded_layers(evaluation)}. Evaluate with layers=layer_names(arch)."
        )
    k = gram(evaluation.layer_activations(layer, indices))
    if cache:
        evaluation.grams[key] = k
    return k


def precompute_grams(
    evaluation: Evaluation,
    subsets: Mapping[str, object] | Iterable[object],
    layers: Sequence[str] | None = None,
    *,
    drop_activations: bool = False,
) -> Evaluation:
    """Compute and cache the Gram matrix of every layer on every subset; optionally free memory.

    ``subsets``: arrays of dataset indices, or a mapping of them. Mapping keys of the form
    ``<split>_<part>`` (as :attr:`mucomp.data.Scenario.cka_indices`) are filtered to this
    evaluation's split, so ``precompute_grams(train_eval, scenario.cka_indices)`` takes the two
    train subsets. ``layers``: default every recorded layer. With ``drop_activations=True`` the raw
    activations are released afterwards (``evaluation.activations`` becomes empty; CKA on these
    subsets keeps working, ``layer_activations`` no longer does). Returns ``evaluation``.
    """
    if isinstance(subsets, Mapping):
        prefix = f"{evaluation.split}_"
        keyed = {key: value for key, value in subsets.items() if str(key).startswith(prefix)}
        split_named = any(str(key).split("_", 1)[0] in ("train", "test") for key in subsets)
        chosen = list(keyed.values()) if split_named else list(subsets.values())
    else:
        chosen = list(subsets)
    layers = recorded_layers(evaluation) if layers is None else list(layers)
    for indices in chosen:
        if np.asarray(indices).size == 0:  # an empty subset has no Gram matrix (its CKA is undefined)
            continue
        for layer in layers:
            layer_gram(evaluation, layer, indices, cache=True)
    if drop_activations:
        evaluation.activations = {}
    return evaluation


def layerwise_cka(
    reference_eval: Evaluation,
    model_eval: Evaluation,
    indices: object | None = None,
    *,
    layers: Sequence[str] | None = None,
    unbiased: bool = True,
) -> dict[str, float]:
    """CKA between a reference model and a model at each named layer, on the same images.

    Parameters
    ----------
    reference_eval, model_eval:
        Evaluations of the two models on the same split, with layer activations (or precomputed
        Grams, see :func:`precompute_grams`) kept for ``indices``.
    indices:
        Dataset indices of the images to compare (e.g. ``scenario.cka_indices["train_forget"]``),
        no repeats. Default: every image whose activations both evaluations kept, ascending.
    layers:
        Default: the layers recorded in both, in the reference's order (``layer_names(arch)``
        order when evaluated through :func:`mucomp.evaluation.evaluate_scenario`).
    unbiased:
        HSIC estimator (see :func:`linear_cka`).

    Returns
    -------
    dict
        ``{layer: CKA}`` in layer order; a value is NaN where a layer has no variance over the
        images. Gram matrices are cached on both evaluations (see :func:`layer_gram`).
    """
    if reference_eval.split != model_eval.split:
        raise ValueError(
            f"the evaluations are of different splits ({reference_eval.split!r} vs {model_eval.split!r}); "
            "CKA compares the same images"
        )
    if indices is None:
        indices = np.intersect1d(reference_eval.activation_indices, model_eval.activation_indices)
    indices = _as_indices(indices)
    _check_n(indices.size, unbiased, "layer-wise CKA")
    if layers is None:
        theirs = set(recorded_layers(model_eval))
        layers = [layer for layer in recorded_layers(reference_eval) if layer in theirs]
        if not layers:
            raise ValueError(
                "no layer activations were recorded in both evaluations; evaluate both models with "
                "layers=layer_names(arch) (evaluate_scenario does so by default)"
            )
    return {
        layer: cka_from_grams(
            layer_gram(reference_eval, layer, indices), layer_gram(model_eval, layer, indices), unbiased
        )
        for layer in layers
    }


def _split_of(subset_key: str) -> str:
    split = str(subset_key).split("_", 1)[0]
    if split not in ("train", "test"):
        raise ValueError(
            f"subset key {subset_key!r} must start with 'train_' or 'test_' (as Scenario.cka_indices keys)"
        )
    return split


def _split_eval(evals: Mapping[str, Evaluation], split: str, whose: str) -> Evaluation:
    try:
        evaluation = evals[split]
    except (KeyError, TypeError):
        raise KeyError(f"{whose} has no {split!r} evaluation; pass {{'train': ..., 'test': ...}}") from None
    if evaluation.split != split:
        raise ValueError(f"{whose}[{split!r}] is an evaluation of the {evaluation.split!r} split")
    return evaluation


def cka_report(
    reference_evals: Mapping[str, Mapping[str, Evaluation]],
    model_evals: Mapping[str, Evaluation],
    subsets: Mapping[str, object],
    *,
    layers: Sequence[str] | None = None,
    unbiased: bool = True,
) -> dict[str, dict[str, dict[str, float]]]:
    """Everything the layer-wise similarity chart draws for one model.

    Parameters
    ----------
    reference_evals:
        ``{"original": {"train": Evaluation, "test": Evaluation}, "retrained": {...}}`` (any
        reference names; order kept).
    model_evals:
        ``{"train": Evaluation, "test": Evaluation}`` of the model being compared.
    subsets:
        ``{subset key: dataset indices}``, keys ``<split>_<part>``; normally
        ``scenario.cka_indices`` (train_forget, train_retain, test_forget, test_retain).
    layers, unbiased:
        As in :func:`layerwise_cka`.

    Returns
    -------
    dict
        ``report[reference][subset][layer] = CKA`` (float, NaN where undefined, e.g. on an empty
        subset such as ``test_forget`` of a random forget set). Reference Gram
        matrices are cached on the reference evaluations, so the second model compared against
        the same references pays only its own Gram matrices.
    """
    if not reference_evals:
        raise ValueError("no reference evaluations given; pass {'original': {...}, 'retrained': {...}}")
    report: dict[str, dict[str, dict[str, float]]] = {}
    for reference, ref_evals in reference_evals.items():
        report[reference] = {}
        for subset, indices in subsets.items():
            split = _split_of(subset)
            if np.asarray(indices).size == 0:  # e.g. test_forget of a random forget set: undefined
                names = recorded_layers(_split_eval(model_evals, split, "model_evals")) if layers is None else layers
                report[reference][subset] = {layer: math.nan for layer in names}
                continue
            report[reference][subset] = layerwise_cka(
                _split_eval(ref_evals, split, f"reference_evals[{reference!r}]"),
                _split_eval(model_evals, split, "model_evals"),
                indices,
                layers=layers,
                unbiased=unbiased,
            )
    return report


def cka_frame(report: Mapping[str, Mapping[str, Mapping[str, float]]], model: str | None = None):
    """A :func:`cka_report` as a long pandas DataFrame, one row per (reference, subset, layer).

    Columns: ``reference``, ``subset``, ``split`` (train / test), ``part`` (forget / retain),
    ``layer``, ``layer_index`` (0-based position in the layer order), ``cka``; plus ``model`` when
    given (concatenate the frames of Model A and Model B to draw both on one chart).
    """
    import pandas as pd

    rows = []
    for reference, by_subset in report.items():
        for subset, by_layer in by_subset.items():
            split, _, part = str(subset).partition("_")
            for position, (layer, value) in enumerate(by_layer.items()):
                row = {
                    "reference": reference,
                    "subset": subset,
                    "split": split,
                    "part": part,
                    "layer": layer,
                    "layer_index": position,
                    "cka": math.nan if value is None else float(value),  # stored JSON has null for NaN
                }
                if model is not None:
                    row = {"model": model, **row}
                rows.append(row)
    columns = (["model"] if model is not None else []) + [
        "reference", "subset", "split", "part", "layer", "layer_index", "cka",
    ]
    return pd.DataFrame(rows, columns=columns)
