"""The relearning attack's fine-tuning (the definitions are in :mod:`mucomp.audits.relearn`):
private copies of a model and of the Retrained model are fine-tuned for a few steps and their
forget accuracy is recorded."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from mucomp.audits.relearn import CURVES, DEFAULT_SHARE, DEFAULT_STEPS, relearn_split, relearn_summary
from mucomp.data import derive_seed
from mucomp.progress import CancelFn, ProgressFn, stop_if_cancelled
from mucomp.training import make_generator, sgd


def forget_accuracy(model: Any, split: Any, indices: np.ndarray, batch_size: int = 512) -> float:
    """Top-1 accuracy (true labels) of ``model`` on ``split[indices]``, eval mode; the model's mode
    is restored."""
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
            stop_if_cancelled(cancel, "during the relearning attack")
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
    summary = relearn_summary(curves, target, steps)
    return {
        "steps": int(steps), "lr": float(lr), "batch_size": int(batch_size), "share": float(share),
        "k": int(relearn.size), "every": every, "seed": int(seed), "relearn_indices": relearn.tolist(),
        "original_forget_accuracy": float(original_forget_accuracy), "target": target,
        "curves": curves, **summary, "seconds": seconds,
    }
