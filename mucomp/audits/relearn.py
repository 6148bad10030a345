"""Relearning attack: does a "forgotten" class come back after a few steps of fine-tuning?

Source: "From Dormant to Deleted: Tamper-Resistant Unlearning Through Weight-Space
Regularization" (arXiv 2505.22310, 2025): after many unlearning methods, fine-tuning on a few
forget examples, or on the retain set alone, restores forget accuracy within a few steps, while a
model retrained without the forget set relearns only at the pace of learning from scratch.
Relearning attacks on LLMs: Hu et al., "Jogging the Memory of Unlearned LLMs Through Targeted
Relearning Attacks" (arXiv 2406.13356).

The definitions are pure functions here; :mod:`mucomp.experiment.relearn` fine-tunes the copies.

Protocol (also in docs/definitions.md, "Audits"), for a model and, as the baseline, the Retrained
model of the same scenario, each from a private copy:

- the relearn set: k forget training images (default 5 % of the forget set, at least 1, drawn
  with the seed); the *other* forget images, at most 1,000 of them (:data:`EVALUATION_CAP`), are
  the evaluation set;
- (a) "forget + retain": S optimiser steps (default 50) of SGD (momentum 0.9, weight decay 5e-4,
  :func:`mucomp.training.sgd`) at the given learning rate, each on one batch of
  ``min(k, batch_size // 2)`` relearn images plus retain images up to ``batch_size``;
  (b) "retain only": the same steps on retain images only (the same retain draws);
- forget accuracy (top-1, true labels, eval mode) on the evaluation set at step 0 and every
  ``every`` steps;
- one protocol per data set and architecture, whatever method made the model (the learning rate
  and batch size are FT's defaults there, :func:`mucomp.experiment.audits.relearn_settings`), so
  every model of a scenario is attacked alike;
- summary: the first recorded step at which forget accuracy reaches half of the Original's on the
  evaluation set, for the model and for the Retrained model under (a); ``relative`` = model steps /
  Retrained steps. 1 = relearns like retraining; < 1 = the class comes back faster than after
  retraining (hidden, not removed). A curve that never reaches the target within S steps is
  **censored** (``censored``: "not reached in S steps"): ``relative`` is then null, never a ratio
  made from the budget.

For forgotten images (``random:`` and ``indices:`` sets) the Retrained model never saw the forget
images and still recognises most of them, so both curves usually start above the target: there
is no ratio, and the reading is the gap between the model's forget-accuracy curve and the
Retrained model's (the SalUn convention; the Attack tab says so, ``mucomp.results.attack.relearn_reading``).

The paper (and its code, RELEARN) also relearns from the retain set alone (k = 0; curve (b)
here). mucomp's differences: the attack targets a forgotten *class* (the paper forgets 10 % of one
class), S is short (50 steps by default, the paper's grid runs 10 epochs), the optimiser is
mucomp's SGD at FT's defaults rather than Adam at 1e-5, and the k relearn images sit in every
batch rather than once per epoch in the shuffled retain stream (a stronger attack per step).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mucomp.data import seeded_rng

DEFAULT_STEPS = 50
DEFAULT_SHARE = 0.05
#: At most this many forget images make the evaluation set: every curve re-evaluates it at about
#: 26 checkpoints, and an accuracy on 1,000 images has a standard error of at most 1.6 points (a
#: Fashion-MNIST class leaves 5,700 images: most of the attack's time was their evaluations).
EVALUATION_CAP = 1000
CURVES = ("forget", "retain_only")


def relearn_split(forget_indices: Any, share: float = DEFAULT_SHARE, seed: int = 0,
                  cap: int = EVALUATION_CAP) -> tuple[np.ndarray, np.ndarray]:
    """``(relearn [k], evaluation [m])``: ``k = max(1, round(share * n))`` forget indices drawn
    with ``seed`` (sorted), and the others, at most ``cap`` of them (a second seeded draw, sorted;
    all of them when ``n - k <= cap``). ValueError when the forget set has fewer than 2 images."""
    forget = np.asarray(forget_indices, dtype=np.int64)
    if not 0 < share < 1:
        raise ValueError(f"share must be in (0, 1), got {share}")
    if forget.size < 2:
        raise ValueError("the relearning attack needs at least 2 forget images (some to relearn, some to evaluate)")
    k = min(max(1, int(round(share * forget.size))), forget.size - 1)
    relearn = np.sort(seeded_rng(seed, "relearn").choice(forget, size=k, replace=False))
    evaluation = np.setdiff1d(forget, relearn)
    if evaluation.size > cap:
        evaluation = np.sort(seeded_rng(seed, "relearn-evaluation").choice(evaluation, size=cap, replace=False))
    return relearn, evaluation


def steps_to_reach(steps: Any, accuracy: Any, target: float) -> int | None:
    """The first recorded step whose accuracy is >= ``target``; None when none is."""
    steps, accuracy = np.asarray(steps), np.asarray(accuracy, dtype=np.float64)
    if steps.shape != accuracy.shape:
        raise ValueError("steps and accuracy must have the same length")
    hit = np.flatnonzero(accuracy >= target)
    return int(steps[hit[0]]) if hit.size else None


def relative_steps(model_steps: int | None, retrained_steps: int | None) -> float | None:
    """Model steps / Retrained steps to the target. None when either curve is censored (never
    reached the target within the budget: no ratio can be formed) or the Retrained model is there
    at step 0 (no baseline to compare with)."""
    if model_steps is None or retrained_steps is None or retrained_steps <= 0:
        return None
    return float(model_steps) / float(retrained_steps)


def relearn_summary(curves: dict[str, dict[str, dict]], target: float, steps: int) -> dict[str, Any]:
    """``{"steps_to_target": {"model", "retrained", "model_retain_only", "retrained_retain_only"},
    "censored": {the same keys: True where the curve never reached the target in ``steps``},
    "relative"}`` of the four curves (``{"model" | "retrained": {"forget" | "retain_only":
    {"steps", "forget_accuracy"}}}``) for a target forget accuracy and a step budget."""
    def reached(who: str, curve: str) -> int | None:
        record = curves[who][curve]
        return steps_to_reach(record["steps"], record["forget_accuracy"], target)

    found = {
        "model": reached("model", "forget"),
        "retrained": reached("retrained", "forget"),
        "model_retain_only": reached("model", "retain_only"),
        "retrained_retain_only": reached("retrained", "retain_only"),
    }
    del steps  # a censored curve stays censored: the budget is never taken for its step count
    return {"steps_to_target": found, "censored": {who: step is None for who, step in found.items()},
            "relative": relative_steps(found["model"], found["retrained"])}
