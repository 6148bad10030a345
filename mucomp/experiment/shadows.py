"""U-LiRA's shadow models: trained, cached and scored (the audit's definitions are in
:mod:`mucomp.audits.ulira`).

A shadow pair of training seed s: the Original and the Retrained reference of the scenario
trained with seed s (the locally trained reference cache of :mod:`mucomp.references`), and the
Original unlearned by the experiment's method and hyper-parameters with unlearning seed
s + offset. Pairs are cached on disk per (scenario without its training seed, method config) and
training seed, under ``$MUCOMP_HOME/audits/ulira/<key>/``, so every experiment of one config (and
every K, M) reuses them.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mucomp import settings
from mucomp.audits.ulira import DEFAULT_HELD_OUT, DEFAULT_SHADOWS, phi, shadow_seeds, ulira_report
from mucomp.config import ExperimentConfig
from mucomp.data import Scenario
from mucomp.evaluation import evaluate
from mucomp.experiment.cache_files import save_npz, write_description
from mucomp.locks import locked
from mucomp.methods import get_method, run_unlearning
from mucomp.progress import CancelFn, ProgressFn, RunStopped, stop_if_cancelled
from mucomp.recipes import recipe_for, recipe_hash
from mucomp.references import load_reference

#: Bumped when what a cached shadow pair holds (or how it is made) changes.
SHADOW_FORMAT = 1
#: Shadow modes: the unlearned side is the method's output, the Original itself (no unlearning)
#: or the Retrained reference itself.
MODES = ("method", "original", "retrained")


def shadow_config(config: ExperimentConfig, seed: int, seed_offset: int = 0) -> ExperimentConfig:
    """The experiment config of shadow ``seed``: the same method and hyper-parameters with
    training seed ``seed`` and unlearning seed ``seed + seed_offset``."""
    return dataclasses.replace(config, train_seed=int(seed), unlearn_seed=int(seed) + int(seed_offset))


@dataclass(frozen=True)
class ShadowSpec:
    """What one family of shadow pairs is made of (picklable: it travels to worker processes).

    ``config``: the experiment's :class:`~mucomp.config.ExperimentConfig` (base ``"original"``);
    its training seed is replaced per shadow. ``mode``: ``"method"`` (unlearn each shadow Original
    with ``config``'s method and hyper-parameters), ``"original"`` (no unlearning: the unlearned
    side is the Original itself) or ``"retrained"`` (the Retrained reference itself).
    ``seed_offset``: unlearning seed = training seed + offset (0: the same seed, as in docs/definitions.md).
    """

    config: ExperimentConfig
    mode: str = "method"
    seed_offset: int = 0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.mode == "method" and getattr(self.config, "base", "original") != "original":
            raise ValueError("U-LiRA shadows start from the Original; an experiment based on another experiment "
                             "can't be re-made per training seed")

    @property
    def scenario(self) -> Scenario:
        """The experiment's scenario (its training seed is the target's)."""
        return Scenario.from_config(self.config)

    def hyper(self) -> dict:
        """The method's resolved hyper-parameters (empty unless ``mode == "method"``)."""
        if self.mode != "method":
            return {}
        return dict(get_method(self.config.method).resolve_for(self.scenario, self.config.hyper()))

    def description(self) -> dict:
        """Everything the shadows depend on except the training seed, as JSON-safe data."""
        scenario = self.scenario
        fields = {k: v for k, v in scenario.config_fields().items() if k != "train_seed"}
        spec = scenario.spec
        arch = scenario.arch
        return {
            "format": SHADOW_FORMAT,
            "scenario": {k: v if isinstance(v, (int, float, str, bool, list, type(None))) else str(v)
                         for k, v in fields.items()},
            "arch": arch,
            # The architecture's own recipe (fmnist_cnn's, vit_digits'), not the data set's default.
            "reference_recipe": recipe_hash(arch, recipe_for(spec.name, arch)),
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
    return settings.home() / "audits" / "ulira"


def pair_path(spec: ShadowSpec, seed: int) -> Path:
    """Where shadow pair ``seed`` of ``spec`` is cached."""
    return cache_root() / spec.key / f"pair-s{int(seed)}.npz"


def model_phi(model: Any, scenario: Any, indices: np.ndarray | None = None) -> np.ndarray:
    """φ of ``model`` on training images ``indices`` (default: the scenario's forget set), ``[n]``,
    from one forward pass (eval mode, no activations kept)."""
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

    Raises :class:`~mucomp.progress.RunStopped` when the shadow's unlearning does not complete.
    """
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
        write_description(path.parent, spec.description())
        save_npz(path, indices=pair.indices, unlearned=pair.unlearned, retrained=pair.retrained)
        return pair


def _make_pair(spec: ShadowSpec, seed: int, indices: np.ndarray, device: Any, cancel: CancelFn | None,
               progress: ProgressFn | None) -> ShadowPair:
    device = torch.device(device) if device is not None else settings.default_device()
    config = shadow_config(spec.config, seed, spec.seed_offset)
    scenario = Scenario.from_config(config)

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
        unlearned = copy.deepcopy(original)
        outcome = run_unlearning(config.method, unlearned, scenario, config.hyper(), config.unlearn_seed,
                                 device=device, cancelled=cancel)
        if not outcome.ok:
            raise RunStopped(outcome.status, f"the shadow model of training seed {seed} did not complete its "
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
    center: str = "median",
    variance: str | None = None,
) -> dict[str, Any]:
    """The U-LiRA block of one experiment.

    ``target_phi``: ``[n]`` φ of the experiment's model on ``spec.scenario.forget_indices``.
    ``shadows`` (K >= 1) pairs are fitted, ``held_out`` (M >= 1) more measure the accuracy; their
    training seeds come from :func:`shadow_seeds` without the target's own training seed.
    ``progress(done_pairs, total_pairs, seed=...)`` after each pair.

    ``center`` / ``variance``: the estimator (:func:`mucomp.audits.ulira.likelihood_ratio`).

    Returns ``{"accuracy", "accuracy_per_pair" [M], "auc", "balanced_accuracy_best",
    "tpr_at_fpr", "estimator", "shadows" K, "held_out" M, "fit_seeds",
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
    seeds = shadow_seeds(shadows + held_out, exclude=[scenario.train_seed])
    pairs, made_seconds, cached = [], 0.0, 0
    for position, seed in enumerate(seeds):
        stop_if_cancelled(cancel, "while making the U-LiRA shadow models")

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
    report = ulira_report(target, [p.unlearned for p in fit], [p.retrained for p in fit],
                          [p.unlearned for p in held], [p.retrained for p in held], center=center, variance=variance)
    return {
        **{key: report[key] for key in ("accuracy", "accuracy_per_pair", "auc", "balanced_accuracy_best",
                                        "tpr_at_fpr", "estimator")},
        "shadows": int(shadows),
        "held_out": int(held_out),
        "fit_seeds": [p.seed for p in fit],
        "held_out_seeds": [p.seed for p in held],
        "seed_offset": int(spec.seed_offset),
        "mode": spec.mode,
        "method": spec.config.method if spec.mode == "method" else None,
        "spec_key": spec.key,
        "indices": indices.tolist(),
        **{key: report[key] for key in ("phi", "lr", "mu_unlearned", "sigma_unlearned", "mu_retrained",
                                        "sigma_retrained", "share_flagged")},
        "seconds": time.perf_counter() - start,
        "shadow_seconds": made_seconds,
        "cached_pairs": int(cached),
    }
