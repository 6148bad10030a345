"""Relearning attack: does a "forgotten" class come back after a few steps of fine-tuning?

Source: "From Dormant to Deleted: Tamper-Resistant Unlearning Through Weight-Space
Regularization" (arXiv 2505.22310, 2025): after many unlearning methods, fine-tuning on a few
forget examples, or on the retain set alone, restores forget accuracy within a few steps, while a
model retrained without the forget set relearns only at the pace of learning from scratch.
Relearning attacks on LLMs: Hu et al., "Jogging the Memory of Unlearned LLMs Through Targeted
Relearning Attacks" (arXiv 2406.13356).

Protocol (also in SPEC › Audits and the README), for a model and, as the baseline, the Retrained
model of the same scenario, each from a private copy:

- the relearn set: k forget training images (default 5 % of the forget set, at least 1, drawn
  with the seed); the *other* forget images are the evaluation set;
- (a) "forget + retain": S optimiser steps (default 50) of SGD (momentum 0.9, weight decay 5e-4,
  :func:`mucomp.training.sgd`) at the given learning rate, each on one batch of
  ``min(k, batch_size // 2)`` relearn images plus retain images up to ``batch_size``;
  (b) "retain only": the same steps on retain images only (the same retain draws);
- forget accuracy (top-1, true labels, eval mode) on the evaluation set at step 0 and every
  ``every`` steps;
- summary: the first recorded step at which forget accuracy reaches half of the Original's on the
  evaluation set, for the model and for the Retrained model under (a); ``relative`` = model steps /
  Retrained steps (a curve that never reaches it counts as the budget S). 1 = relearns like
  retraining; < 1 = the class comes back faster than after retraining (hidden, not removed).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from typing import Any

import numpy as np

DEFAULT_STEPS = 50
DEFAULT_SHARE = 0.05
CURVES = ("forget", "retain_only")

CancelFn = Callable[[], bool]
ProgressFn = Callable[..., None]


def relearn_split(forget_indices: Any, share: float = DEFAULT_SHARE, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(relearn [k], evaluation [n - k])``: ``k = max(1, round(share * n))`` forget indices drawn
    with ``seed`` (sorted), and the others. ValueError when the forget set has fewer than 2 images."""
    from mucomp.data import seeded_rng

    forget = np.asarray(forget_indices, dtype=np.int64)
    if not 0 < share < 1:
        raise ValueError(f"share must be in (0, 1), got {share}")
    if forget.size < 2:
        raise ValueError("the relearning attack needs at least 2 forget images (some to relearn, some to evaluate)")
    k = min(max(1, int(round(share * forget.size))), forget.size - 1)
    relearn = np.sort(seeded_rng(seed, "relearn").choice(forget, size=k, replace=False))
    return relearn, np.setdiff1d(forget, relearn)


def steps_to_reach(steps: Any, accuracy: Any, target: float) -> int | None:
    """The first recorded step whose accuracy is >= ``target``; None when none is."""
    steps, accuracy = np.asarray(steps), np.asarray(accuracy, dtype=np.float64)
    if steps.shape != accuracy.shape:
        raise ValueError("steps and accuracy must have the same length")
    hit = np.flatnonzero(accuracy >= target)
    return int(steps[hit[0]]) if hit.size else None


def relative_steps(model_steps: int | None, retrained_steps: int | None, budget: int) -> float | None:
    """Model steps / Retrained steps to the target; a curve that never got there counts as
    ``budget``. None when the Retrained model is there at step 0 (no baseline to compare with)."""
    m = budget if model_steps is None else model_steps
    r = budget if retrained_steps is None else retrained_steps
    if r <= 0:
        return None
    return float(m) / float(r)


def forget_accuracy(model: Any, split: Any, indices: np.ndarray, batch_size: int = 512) -> float:
    """Top-1 accuracy (true labels) of ``model`` on ``split[indices]``, eval mode; the model's mode
    is restored."""
    import torch

    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    correct = 0
    with torch.inference_mode():
        for start in range(0, len(indices), batch_size):
            pick = torch.as_tensor(indices[start:start + batch_size], dtype=torch.int64)
            images = split.normalize(split.images[pick]).to(device)
            correct += int((model(images).argmax(dim=1).cpu() == split.labels[pick]).sum())
    model.train(was_training)
    return correct / max(len(indices), 1)


def relearn_curve(
    model: Any,
    split: Any,
    relearn_indices: np.ndarray,
    retain_indices: np.ndarray,
    eval_indices: np.ndarray,
    *,
    steps: int = DEFAULT_STEPS,
    lr: float,
    batch_size: int,
    include_forget: bool = True,
    every: int = 2,
    seed: int = 0,
    cancel: CancelFn | None = None,
) -> dict[str, list]:
    """Fine-tune a deep copy of ``model`` for ``steps`` steps and record forget accuracy.

    Each step: one batch of ``min(k, batch_size // 2)`` images drawn from ``relearn_indices``
    (when ``include_forget``) plus retain images up to ``batch_size``, both drawn with ``seed`` (the
    retain draws are the same with and without forget images). Returns ``{"steps": [...],
    "forget_accuracy": [...]}`` (step 0, then every ``every`` steps and the last step). ``model``
    itself is not changed.
    """
    import torch
    import torch.nn.functional as F

    from mucomp.data import derive_seed
    from mucomp.training import RunStopped, make_generator, sgd

    if steps < 1 or every < 1 or batch_size < 2 or not lr > 0:
        raise ValueError(f"steps, every >= 1, batch_size >= 2 and lr > 0 needed (got {steps}, {every}, {batch_size}, {lr})")
    copy_ = copy.deepcopy(model)
    device = next(copy_.parameters()).device
    optimizer = sgd(copy_, float(lr))
    retain = torch.as_tensor(np.asarray(retain_indices), dtype=torch.int64)
    relearn = torch.as_tensor(np.asarray(relearn_indices), dtype=torch.int64)
    per_batch = min(relearn.numel(), batch_size // 2) if include_forget else 0
    retain_gen = make_generator(derive_seed(seed, "relearn-retain"))
    forget_gen = make_generator(derive_seed(seed, "relearn-forget"))
    eval_indices = np.asarray(eval_indices, dtype=np.int64)
    record = {"steps": [0], "forget_accuracy": [forget_accuracy(copy_, split, eval_indices)]}
    copy_.train()
    with torch.enable_grad():
        for step in range(1, steps + 1):
            if cancel is not None and cancel():
                raise RunStopped("cancelled", "cancelled by the user during the relearning attack")
            drawn = retain[torch.randint(retain.numel(), (batch_size,), generator=retain_gen)]
            forget_pick = relearn[torch.randperm(relearn.numel(), generator=forget_gen)[:per_batch]]
            batch = torch.cat([forget_pick, drawn[: batch_size - per_batch]]) if per_batch else drawn
            images = split.normalize(split.images[batch]).to(device)
            labels = split.labels[batch].to(device)
            loss = F.cross_entropy(copy_(images), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if step % every == 0 or step == steps:
                record["steps"].append(step)
                record["forget_accuracy"].append(forget_accuracy(copy_, split, eval_indices))
    return record


def relearn_audit(
    model: Any,
    retrained: Any,
    original_forget_accuracy: float,
    scenario: Any,
    *,
    lr: float,
    batch_size: int,
    steps: int = DEFAULT_STEPS,
    share: float = DEFAULT_SHARE,
    every: int | None = None,
    seed: int = 0,
    cancel: CancelFn | None = None,
    progress: ProgressFn | None = None,
    original_eval: Callable[[np.ndarray], float] | None = None,
) -> dict[str, Any]:
    """The relearning block of one model against the Retrained model of ``scenario``.

    ``original_forget_accuracy``: the Original's forget accuracy on the evaluation images (or pass
    ``original_eval(indices) -> accuracy`` to compute it on the split drawn here). ``every``
    defaults to ``max(1, steps // 25)``. Returns ``{"steps", "lr", "batch_size", "share", "k",
    "every", "seed", "relearn_indices", "original_forget_accuracy", "target", "curves":
    {"model" | "retrained": {"forget" | "retain_only": {"steps", "forget_accuracy"}}},
    "steps_to_target": {"model", "retrained", "model_retain_only", "retrained_retain_only"} (int
    or None), "relative" (float or None), "seconds": {"model", "retrained"}}``.
    """
    every = max(1, steps // 25) if every is None else int(every)
    relearn, evaluation = relearn_split(scenario.forget_indices, share, seed)
    split = scenario.data.train
    if original_eval is not None:
        original_forget_accuracy = float(original_eval(evaluation))
    target = 0.5 * float(original_forget_accuracy)
    curves: dict[str, dict[str, dict]] = {}
    seconds = {}
    jobs = [(who, curve) for who in ("model", "retrained") for curve in CURVES]
    for position, (who, curve) in enumerate(jobs):
        start = time.perf_counter()
        curves.setdefault(who, {})[curve] = relearn_curve(
            model if who == "model" else retrained, split, relearn, scenario.retain_indices, evaluation,
            steps=steps, lr=lr, batch_size=batch_size, include_forget=curve == "forget", every=every, seed=seed,
            cancel=cancel,
        )
        seconds[who] = seconds.get(who, 0.0) + time.perf_counter() - start
        if progress is not None:
            progress(position + 1, len(jobs))
    reached = {
        "model": steps_to_reach(**_curve_args(curves["model"]["forget"]), target=target),
        "retrained": steps_to_reach(**_curve_args(curves["retrained"]["forget"]), target=target),
        "model_retain_only": steps_to_reach(**_curve_args(curves["model"]["retain_only"]), target=target),
        "retrained_retain_only": steps_to_reach(**_curve_args(curves["retrained"]["retain_only"]), target=target),
    }
    return {
        "steps": int(steps), "lr": float(lr), "batch_size": int(batch_size), "share": float(share),
        "k": int(relearn.size), "every": every, "seed": int(seed), "relearn_indices": relearn.tolist(),
        "original_forget_accuracy": float(original_forget_accuracy), "target": target,
        "curves": curves, "steps_to_target": reached,
        "relative": relative_steps(reached["model"], reached["retrained"], steps),
        "seconds": seconds,
    }


def _curve_args(curve: dict) -> dict:
    return {"steps": curve["steps"], "accuracy": curve["forget_accuracy"]}
