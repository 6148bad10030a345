"""U-LiRA: a per-example likelihood-ratio membership attack against an unlearned model.

Source: J. Hayes, I. Shumailov, E. Triantafillou, A. Khalifa, N. Papernot, "Inexact Unlearning
Needs More Careful Evaluations to Avoid a False Sense of Privacy", SaTML 2025 (arXiv 2403.01218),
the U-LiRA attack built on LiRA (Carlini et al., "Membership Inference Attacks From First
Principles", IEEE S&P 2022). A population attack (:mod:`mucomp.privacy`) uses one threshold for
every image; U-LiRA fits, *per forget image*, how that image's score is distributed under models
unlearned by the method and under models retrained without the forget set, so it sees what a
population attack averages away.

Definitions (also in SPEC › Audits and the README):

- feature, per image with true class y: φ = log p_y − log(1 − p_y), p = softmax(z) at T = 1,
  computed from the logits as ``z_y − logsumexp(z_{j≠y})`` (exact, never inf for finite logits);
- K shadow pairs k: the Original trained with training seed s_k and unlearned by the
  experiment's method and hyper-parameters with unlearning seed s_k, and the Retrained model of
  training seed s_k. Per image a Gaussian over the K unlearned φ and one over the K retrained φ
  (mean; standard deviation with ddof 0, floored at :data:`MIN_STD`);
- LR = log N(φ; μ_u, σ_u) − log N(φ; μ_r, σ_r): > 0 says "unlearned by the method", <= 0 says
  "retrained";
- U-LiRA accuracy on M further pairs j (held out of the fit): the mean over images and pairs of
  ½·[LR(unlearned_j) > 0] + ½·[LR(retrained_j) ≤ 0]. 0.5 = the method is indistinguishable from
  retraining; 1 = every image gives it away.

The pure functions (:func:`phi`, :func:`gaussian_fit`, :func:`likelihood_ratio`,
:func:`ulira_accuracy`) take arrays; :func:`shadow_pair` and :func:`run_ulira` build the shadow
models. Shadows are cached on disk per (scenario without its training seed, method config) and
training seed, under ``$MUCOMP_HOME/audits/ulira/<key>/``, so every experiment of one config (and
every K, M) reuses them; the reference models they start from are the locally trained reference
cache of :mod:`mucomp.references`.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import os
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

#: Floor of the per-image standard deviations (Hayes et al. fit Gaussians that can collapse when
#: every shadow gives one image the same score).
MIN_STD = 1e-3
#: Default numbers of fitted and held-out shadow pairs on digits.
DEFAULT_SHADOWS = 8
DEFAULT_HELD_OUT = 4
#: Training seeds of the shadow models: SHADOW_SEED_BASE, SHADOW_SEED_BASE + 1, ... (skipping the
#: experiment's own training seed), far from the seeds people pick, so no shadow is the target.
SHADOW_SEED_BASE = 1000
#: Bumped when what a cached shadow pair holds (or how it is made) changes.
SHADOW_FORMAT = 1
#: Shadow modes: the unlearned side is the method's output, the Original itself (no unlearning)
#: or the Retrained reference itself.
MODES = ("method", "original", "retrained")

ProgressFn = Callable[..., None]
CancelFn = Callable[[], bool]


# ---------------------------------------------------------------------------------------------
# Pure definitions


def phi(values: Any, labels: Any, *, kind: str = "auto") -> np.ndarray:
    """The U-LiRA feature φ = log p_y − log(1 − p_y) per image, float64 ``[n]``.

    ``values``: ``[n, C]`` logits (``kind="logits"``) or softmax probabilities at T = 1
    (``kind="probs"``); ``"auto"`` takes rows of non-negative values summing to 1 (within 1e-4) as
    probabilities. ``labels``: ``[n]`` true classes y.

    From logits: ``z_y − logsumexp(z_{j≠y})`` (exact and finite for finite logits). From
    probabilities: ``log p_y − log sum_{j≠y} p_j`` with both clipped at 1e-300 (probabilities
    stored at float precision lose the far tails; pass logits where you have them).
    """
    z = np.asarray(values, dtype=np.float64)
    y = np.asarray(labels)
    if z.ndim != 2 or z.shape[1] < 2:
        raise ValueError(f"values must be [n, C] with C >= 2, got shape {z.shape}")
    if y.shape != (z.shape[0],) or (y.size and not np.issubdtype(y.dtype, np.integer)):
        raise ValueError(f"labels must be [n] integer classes for {z.shape[0]} rows, got shape {y.shape}")
    if y.size and (y.min() < 0 or y.max() >= z.shape[1]):
        raise ValueError(f"labels must lie in 0..{z.shape[1] - 1}")
    if not np.isfinite(z).all():
        raise ValueError("values must be finite")
    if kind == "auto":
        kind = "probs" if z.size and (z >= 0).all() and np.allclose(z.sum(axis=1), 1.0, atol=1e-4) else "logits"
    if kind not in ("logits", "probs"):
        raise ValueError(f"kind must be 'auto', 'logits' or 'probs', got {kind!r}")
    n = z.shape[0]
    if n == 0:
        return np.zeros(0)
    rows = np.arange(n)
    others = np.ones_like(z, dtype=bool)
    others[rows, y] = False
    if kind == "probs":
        rest = np.where(others, z, 0.0).sum(axis=1)
        return np.log(np.maximum(z[rows, y], 1e-300)) - np.log(np.maximum(rest, 1e-300))
    other = z[others].reshape(n, -1)
    top = other.max(axis=1, keepdims=True)
    lse = top[:, 0] + np.log(np.exp(other - top).sum(axis=1))
    return z[rows, y] - lse


def _matrix(values: Any, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 2 or array.shape[0] < 1:
        raise ValueError(f"{name} must be [K, n] with K >= 1 shadow models, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} must hold finite φ values")
    return array


def gaussian_fit(shadows: Any, min_std: float = MIN_STD) -> tuple[np.ndarray, np.ndarray]:
    """Per image (column) mean and standard deviation (ddof 0, floored at ``min_std``) of ``[K, n]``
    φ values; ``([n], [n])``."""
    values = _matrix(shadows, "shadows")
    return values.mean(axis=0), np.maximum(values.std(axis=0, ddof=0), min_std)


def gaussian_logpdf(x: Any, mu: Any, sigma: Any) -> np.ndarray:
    """log N(x; μ, σ) elementwise (broadcasting)."""
    x, mu, sigma = (np.asarray(v, dtype=np.float64) for v in (x, mu, sigma))
    return -0.5 * np.log(2.0 * np.pi) - np.log(sigma) - 0.5 * ((x - mu) / sigma) ** 2


def likelihood_ratio(target: Any, unlearned_shadows: Any, retrained_shadows: Any) -> np.ndarray:
    """Per-image log likelihood ratio LR = log N(φ; μ_u, σ_u) − log N(φ; μ_r, σ_r).

    ``target``: ``[n]`` φ of the model under attack (``[M, n]`` for M models at once);
    ``unlearned_shadows`` / ``retrained_shadows``: ``[K, n]`` φ of the K shadow unlearned and
    shadow Retrained models (K may differ between the two). Returns ``[n]`` (or ``[M, n]``);
    > 0 means the image looks unlearned by the method rather than retrained. Identical shadow
    sets give 0 everywhere.
    """
    u, r = _matrix(unlearned_shadows, "unlearned_shadows"), _matrix(retrained_shadows, "retrained_shadows")
    x = np.asarray(target, dtype=np.float64)
    n = u.shape[1]
    if r.shape[1] != n or x.ndim not in (1, 2) or x.shape[-1] != n:
        raise ValueError(f"shapes differ: target {x.shape}, unlearned_shadows {u.shape}, retrained_shadows {r.shape}; "
                         "every array must hold the same n images")
    if not np.isfinite(x).all():
        raise ValueError("target must hold finite φ values")
    (mu_u, sd_u), (mu_r, sd_r) = gaussian_fit(u), gaussian_fit(r)
    # The normalising constants cancel; written out for clarity.
    return gaussian_logpdf(x, mu_u, sd_u) - gaussian_logpdf(x, mu_r, sd_r)


def ulira_accuracy(lr_unlearned: Any, lr_retrained: Any) -> float:
    """U-LiRA accuracy: mean over images and held-out pairs of ½·[LR(unlearned_j) > 0] +
    ½·[LR(retrained_j) ≤ 0]. ``lr_unlearned`` / ``lr_retrained``: ``[M, n]`` (``[n]`` for one
    pair). 0.5 = indistinguishable from retraining, 1 = always told apart."""
    u, r = np.asarray(lr_unlearned, dtype=np.float64), np.asarray(lr_retrained, dtype=np.float64)
    if u.shape != r.shape or u.size == 0 or u.ndim not in (1, 2):
        raise ValueError(f"lr_unlearned {u.shape} and lr_retrained {r.shape} must both be [M, n] and non-empty")
    if np.isnan(u).any() or np.isnan(r).any():
        raise ValueError("likelihood ratios must not be NaN")
    return float(np.mean(0.5 * (u > 0) + 0.5 * (r <= 0)))


def shadow_seeds(count: int, exclude: Sequence[int] = (), base: int = SHADOW_SEED_BASE) -> list[int]:
    """The first ``count`` training seeds from ``base`` up, skipping ``exclude`` (the target's)."""
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    seeds, candidate, skip = [], base, set(int(s) for s in exclude)
    while len(seeds) < count:
        if candidate not in skip:
            seeds.append(candidate)
        candidate += 1
    return seeds


# ---------------------------------------------------------------------------------------------
# Shadow models


class ShadowError(RuntimeError):
    """A shadow model could not be made (its unlearning diverged, was cancelled or failed);
    ``status`` as in :class:`~mucomp.runner.ExperimentStopped`."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status


def shadow_config(config: Any, seed: int, seed_offset: int = 0) -> Any:
    """The experiment config of shadow ``seed``: the same method and hyper-parameters with
    training seed ``seed`` and unlearning seed ``seed + seed_offset``.

    A config with a ``train_seed`` (the seed that trains the references; ``seed`` is then the
    unlearning seed) gets ``train_seed=seed, seed=seed + offset``; an older config whose ``seed``
    is both gets ``seed=seed`` (the unlearning seed is then passed to the method separately, see
    :func:`unlearning_seed`).
    """
    if hasattr(config, "train_seed"):
        return dataclasses.replace(config, train_seed=int(seed), seed=int(seed) + int(seed_offset))
    return dataclasses.replace(config, seed=int(seed))


def unlearning_seed(config: Any, seed: int, seed_offset: int = 0) -> int:
    """The unlearning seed of shadow ``seed``: ``seed + seed_offset`` (``config.seed`` of a
    :func:`shadow_config` that has a ``train_seed``, which holds exactly that)."""
    return int(config.seed) if hasattr(config, "train_seed") else int(seed) + int(seed_offset)


@dataclass(frozen=True)
class ShadowSpec:
    """What one family of shadow pairs is made of (picklable: it travels to worker processes).

    ``config``: the experiment's :class:`~mucomp.runner.ExperimentConfig` (base ``"original"``);
    its training seed is replaced per shadow. ``mode``: ``"method"`` (unlearn each shadow Original
    with ``config``'s method and hyper-parameters), ``"original"`` (no unlearning: the unlearned
    side is the Original itself) or ``"retrained"`` (the Retrained reference itself).
    ``seed_offset``: unlearning seed = training seed + offset (0: the same seed, as in the SPEC).
    """

    config: Any
    mode: str = "method"
    seed_offset: int = 0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.mode == "method" and getattr(self.config, "base", "original") != "original":
            raise ValueError("U-LiRA shadows start from the Original; an experiment based on another experiment "
                             "can't be re-made per training seed")

    @property
    def scenario(self) -> Any:
        """The experiment's scenario (its training seed is the target's)."""
        return self.config.scenario

    def hyper(self) -> dict:
        """The method's resolved hyper-parameters (empty unless ``mode == "method"``)."""
        if self.mode != "method":
            return {}
        from mucomp.methods import get_method

        return dict(get_method(self.config.method).resolve_for(self.scenario, self.config.hyper()))

    def description(self) -> dict:
        """Everything the shadows depend on except the training seed, as JSON-safe data."""
        from mucomp.references import RECIPES, _recipe_hash

        scenario = self.scenario
        if hasattr(scenario, "config_fields"):
            fields = dict(scenario.config_fields())
        else:  # a scenario of (dataset, forget class, seed) only
            fields = {f.name: getattr(scenario, f.name) for f in dataclasses.fields(scenario)}
        fields = {k: v for k, v in fields.items() if k not in ("seed", "train_seed")}
        spec = scenario.spec
        arch = getattr(scenario, "arch", None) or spec.arch
        return {
            "format": SHADOW_FORMAT,
            "scenario": {k: v if isinstance(v, (int, float, str, bool, list, type(None))) else str(v)
                         for k, v in fields.items()},
            "arch": arch,
            "reference_recipe": _recipe_hash(arch, RECIPES[spec.name]) if spec.name in RECIPES else None,
            "mode": self.mode,
            "method": self.config.method if self.mode == "method" else None,
            "hyper": self.hyper(),
            "seed_offset": int(self.seed_offset),
        }

    @property
    def key(self) -> str:
        """A short hash of :meth:`description` (the cache folder's name)."""
        text = json.dumps(self.description(), sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class ShadowPair:
    """φ of one shadow pair on the experiment's forget images (``indices``, train split):
    ``unlearned`` and ``retrained`` ``[n]``; ``seconds`` it took to make (0 when cached)."""

    seed: int
    indices: np.ndarray
    unlearned: np.ndarray
    retrained: np.ndarray
    seconds: float = 0.0
    cached: bool = False


def cache_root() -> Path:
    """``$MUCOMP_HOME/audits/ulira``."""
    from mucomp import settings

    return settings.home() / "audits" / "ulira"


def pair_path(spec: ShadowSpec, seed: int) -> Path:
    """Where shadow pair ``seed`` of ``spec`` is cached."""
    return cache_root() / spec.key / f"pair-s{int(seed)}.npz"


def model_phi(model: Any, scenario: Any, indices: np.ndarray | None = None) -> np.ndarray:
    """φ of ``model`` on training images ``indices`` (default: the scenario's forget set), ``[n]``,
    from one forward pass (eval mode, no activations kept)."""
    from mucomp.evaluation import evaluate

    indices = scenario.forget_indices if indices is None else np.asarray(indices)
    split = scenario.data.train
    evaluation = evaluate(model, split, indices, layers=())
    return phi(evaluation.logits, split.labels_np[indices], kind="logits")


def _load_pair(path: Path, seed: int, indices: np.ndarray) -> ShadowPair | None:
    try:
        with np.load(path) as data:
            stored = data["indices"]
            pair = ShadowPair(seed, stored, data["unlearned"].astype(np.float64), data["retrained"].astype(np.float64),
                              0.0, True)
    except (OSError, KeyError, ValueError):
        return None  # damaged: made again
    if stored.shape != indices.shape or not np.array_equal(stored, indices):
        return None
    return pair


def shadow_pair(
    spec: ShadowSpec,
    seed: int,
    *,
    device: Any = None,
    cancel: CancelFn | None = None,
    progress: ProgressFn | None = None,
) -> ShadowPair:
    """Shadow pair ``seed`` of ``spec``: from the cache, or made now and cached.

    Made: the Original and the Retrained reference of the scenario with training seed ``seed``
    (:func:`mucomp.references.load_reference`, ``source="train"``: trained once and cached like
    every locally trained reference), the Original unlearned by the method (``mode="method"``)
    with unlearning seed ``seed + seed_offset``, then φ of both on the forget images. One process
    makes a pair at a time (a file lock per pair): others wait and then read it.

    Raises :class:`ShadowError` when the shadow's unlearning does not complete.
    """
    from mucomp.locks import locked

    scenario = spec.scenario
    indices = np.asarray(scenario.forget_indices)
    path = pair_path(spec, seed)
    with locked(path.with_suffix(".lock"), cancelled=cancel, waiting_for=f"another process making shadow pair {seed}"):
        if path.exists():
            pair = _load_pair(path, seed, indices)
            if pair is not None:
                return pair
        start = time.perf_counter()
        pair = _make_pair(spec, seed, indices, device, cancel, progress)
        pair.seconds = time.perf_counter() - start
        _write_description(path.parent, spec)
        tmp = path.with_name(f".{path.stem}-{secrets.token_hex(3)}.npz")
        np.savez(tmp, indices=pair.indices, unlearned=pair.unlearned, retrained=pair.retrained)
        os.replace(tmp, path)
        return pair


def _write_description(folder: Path, spec: ShadowSpec) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "spec.json"
    if not target.exists():
        tmp = folder / f".spec-{secrets.token_hex(3)}.json"
        tmp.write_text(json.dumps(spec.description(), indent=1, sort_keys=True, default=str))
        os.replace(tmp, target)


def _make_pair(spec: ShadowSpec, seed: int, indices: np.ndarray, device: Any, cancel: CancelFn | None,
               progress: ProgressFn | None) -> ShadowPair:
    import torch

    from mucomp import settings
    from mucomp.references import load_reference

    device = torch.device(device) if device is not None else settings.default_device()
    config = shadow_config(spec.config, seed, spec.seed_offset)
    scenario = config.scenario

    def report(step: str, done: float) -> None:
        if progress is not None:
            progress(step, done)

    report("original", 0.0)
    original = load_reference(scenario, "original", source="train", device=device, cancelled=cancel).model
    report("retrained", 0.4)
    retrained = load_reference(scenario, "retrained", source="train", device=device, cancelled=cancel).model
    report("unlearning", 0.8)
    if spec.mode == "original":
        unlearned = original
    elif spec.mode == "retrained":
        unlearned = retrained
    else:
        from mucomp.methods import run_unlearning

        unlearned = copy.deepcopy(original)
        outcome = run_unlearning(config.method, unlearned, scenario, config.hyper(),
                                 unlearning_seed(config, seed, spec.seed_offset), device=device, cancelled=cancel)
        if not outcome.ok:
            raise ShadowError(outcome.status, f"the shadow model of training seed {seed} did not complete its "
                                              f"unlearning ({outcome.status}): {outcome.message}")
    report("phi", 1.0)
    return ShadowPair(seed, indices, model_phi(unlearned, scenario, indices), model_phi(retrained, scenario, indices))


# ---------------------------------------------------------------------------------------------
# The audit of one experiment


def run_ulira(
    spec: ShadowSpec,
    target_phi: np.ndarray,
    *,
    shadows: int = DEFAULT_SHADOWS,
    held_out: int = DEFAULT_HELD_OUT,
    device: Any = None,
    cancel: CancelFn | None = None,
    progress: ProgressFn | None = None,
) -> dict[str, Any]:
    """The U-LiRA block of one experiment.

    ``target_phi``: ``[n]`` φ of the experiment's model on ``spec.scenario.forget_indices``.
    ``shadows`` (K >= 1) pairs are fitted, ``held_out`` (M >= 1) more measure the accuracy; their
    training seeds come from :func:`shadow_seeds` without the target's own training seed.
    ``progress(done_pairs, total_pairs, seed=...)`` after each pair.

    Returns ``{"accuracy", "accuracy_per_pair" [M], "shadows" K, "held_out" M, "fit_seeds",
    "held_out_seeds", "mode", "method", "spec_key", "indices" [n], "phi" [n], "lr" [n] (the
    experiment's per-image LR), "mu_unlearned", "sigma_unlearned", "mu_retrained",
    "sigma_retrained" [n], "share_flagged" (share of images with LR > 0), "seconds",
    "shadow_seconds" (making the pairs not cached yet), "cached_pairs"}``.
    """
    if shadows < 1 or held_out < 1:
        raise ValueError(f"U-LiRA needs at least one fitted and one held-out shadow pair (got K={shadows}, M={held_out})")
    start = time.perf_counter()
    scenario = spec.scenario
    indices = np.asarray(scenario.forget_indices)
    target = np.asarray(target_phi, dtype=np.float64)
    if target.shape != indices.shape:
        raise ValueError(f"target_phi has shape {target.shape}; expected one φ per forget image ({indices.size})")
    seeds = shadow_seeds(shadows + held_out, exclude=[scenario.seed])
    pairs, made_seconds, cached = [], 0.0, 0
    for position, seed in enumerate(seeds):
        if cancel is not None and cancel():
            raise ShadowError("cancelled", "cancelled by the user while making the U-LiRA shadow models")

        def pair_progress(step: str, done: float, position: int = position, seed: int = seed) -> None:
            if progress is not None:
                progress(position + done, len(seeds), seed=seed, step=step)

        pair = shadow_pair(spec, seed, device=device, cancel=cancel, progress=pair_progress)
        pairs.append(pair)
        made_seconds += pair.seconds
        cached += pair.cached
        if progress is not None:
            progress(position + 1, len(seeds), seed=seed)
    fit, held = pairs[:shadows], pairs[shadows:]
    u = np.stack([p.unlearned for p in fit])
    r = np.stack([p.retrained for p in fit])
    lr_u = likelihood_ratio(np.stack([p.unlearned for p in held]), u, r)
    lr_r = likelihood_ratio(np.stack([p.retrained for p in held]), u, r)
    per_pair = [ulira_accuracy(lr_u[j], lr_r[j]) for j in range(len(held))]
    lr = likelihood_ratio(target, u, r)
    (mu_u, sd_u), (mu_r, sd_r) = gaussian_fit(u), gaussian_fit(r)
    return {
        "accuracy": ulira_accuracy(lr_u, lr_r),
        "accuracy_per_pair": per_pair,
        "shadows": int(shadows),
        "held_out": int(held_out),
        "fit_seeds": [p.seed for p in fit],
        "held_out_seeds": [p.seed for p in held],
        "seed_offset": int(spec.seed_offset),
        "mode": spec.mode,
        "method": spec.config.method if spec.mode == "method" else None,
        "spec_key": spec.key,
        "indices": indices.tolist(),
        "phi": target.tolist(),
        "lr": lr.tolist(),
        "mu_unlearned": mu_u.tolist(),
        "sigma_unlearned": sd_u.tolist(),
        "mu_retrained": mu_r.tolist(),
        "sigma_retrained": sd_r.tolist(),
        "share_flagged": float(np.mean(lr > 0)),
        "seconds": time.perf_counter() - start,
        "shadow_seconds": made_seconds,
        "cached_pairs": int(cached),
    }
