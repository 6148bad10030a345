"""The Attack page's data, from stored results: one model's threshold attack against the Retrained
model for each strategy, the per-image views, and the stored U-LiRA and relearning audits (plain
pandas / numpy; :mod:`mucomp.privacy` holds the definitions)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mucomp import privacy
from mucomp.catalogue import imagewise
from mucomp.display_text import for_terminal
from mucomp.results.access import (
    IncompatibleResultsError,
    MissingBlockError,
    ResultLike,
    as_result,
    block,
    check_same_scenario,
    describe,
)
from mucomp.results.contrast import stored_audit
from mucomp.results.imported import is_comparator_retrained

#: Accepted strategy names -> the keys of :data:`mucomp.privacy.STRATEGIES`.
STRATEGY_ALIASES: dict[str, str] = {
    **{s: s for s in privacy.STRATEGIES},
    "custom_threshold": "custom",
    "common_threshold": "common",
}
#: Labels of the strategies on the Attack page.
STRATEGY_LABELS: dict[str, str] = {
    "custom": "Custom threshold",
    "max_attack_score": "Max attack score",
    "max_success_rate": "Max success rate",
    "common": "Common threshold (A and B)",
    "worst_case": "Worst case (both metrics)",
}
METRIC_LABELS: dict[str, str] = {"entropy": "Entropy", "confidence": "Confidence (top-1 log-odds)"}


@dataclass(frozen=True)
class FeatureControl:
    """What the Attack page's feature (metric) control shows, so that it names what is plotted.

    - ``value``: the metric the control shows selected, or None when no single metric is plotted
      (the worst case picked different ones for Model A and B, or no view could be computed).
    - ``editable``: whether the user's choice drives the attack (False under the worst case).
    - ``note``: why the control is locked and what each model's figures use (None when editable).
    """

    value: str | None
    editable: bool
    note: str | None = None


def feature_control(strategy: str, selected: str, plotted: Mapping[str, str]) -> FeatureControl:
    """The feature control for ``strategy``: every strategy but the worst case attacks with the
    ``selected`` metric; the worst case picks the metric itself, per model, so the control shows
    (locked) the metric the figures use. ``plotted``: model name (``"Model A"``) -> the metric
    its view uses (:attr:`AttackView.metric`); empty when no view could be computed."""
    key = STRATEGY_ALIASES.get(strategy)
    if key is None:
        raise ValueError(f"unknown strategy {strategy!r}; use one of {', '.join(privacy.STRATEGIES)}")
    if key != "worst_case":
        privacy.check_metric(selected)
        return FeatureControl(selected, True)
    used = sorted(set(plotted.values()))
    for metric in used:
        privacy.check_metric(metric)
    how = "Worst case uses the feature with the stronger attack"
    change = "; choose another strategy to pick the feature yourself."
    if len(used) == 1:
        who = " for both models" if len(plotted) > 1 else ""
        return FeatureControl(used[0], False, f"{how}: {METRIC_LABELS[used[0]]}{who}{change}")
    if not used:
        return FeatureControl(None, False, f"{how}, for each model{change}")
    each = ", ".join(f"{name}: {METRIC_LABELS[metric]}" for name, metric in plotted.items())
    return FeatureControl(None, False, f"{how}, for each model ({each}){change}")


@dataclass(frozen=True)
class AttackValues:
    """One model's stored attack features on the forget images (scenario order)."""

    indices: np.ndarray  # int64 [n] dataset indices
    entropy: np.ndarray  # float64 [n]
    confidence: np.ndarray  # float64 [n] (top-1 log-odds)

    def values(self, metric: str) -> np.ndarray:
        if metric not in privacy.METRICS:
            raise ValueError(f"unknown metric {metric!r}; use one of {', '.join(privacy.METRICS)}")
        return self.entropy if metric == "entropy" else self.confidence

    def as_mapping(self) -> dict[str, np.ndarray]:
        return {"entropy": self.entropy, "confidence": self.confidence}


def attack_values(result: ResultLike, name: str = "result") -> AttackValues:
    """The stored ``attack`` block of ``result`` as arrays (validated: equal lengths, finite)."""
    result = as_result(result, name)
    attack = block(result, "attack", ("indices", "entropy", "confidence"))
    indices = np.asarray(attack["indices"], dtype=np.int64)
    arrays = {}
    for metric in privacy.METRICS:
        try:
            values = np.asarray(attack[metric], dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise MissingBlockError(f"{describe(result)}: attack.{metric} must be numbers (null found?)") from err
        if values.shape != indices.shape:
            raise MissingBlockError(f"{describe(result)}: attack.{metric} and attack.indices differ in length")
        if not np.isfinite(values).all():
            raise MissingBlockError(f"{describe(result)}: attack.{metric} holds non-finite values")
        arrays[metric] = values
    if indices.size == 0:
        raise MissingBlockError(f"{describe(result)}: its attack block holds no forget images")
    return AttackValues(indices, arrays["entropy"], arrays["confidence"])


def _check_same_samples(first: AttackValues, second: AttackValues, names: tuple[str, str]) -> None:
    if first.indices.shape != second.indices.shape or not np.array_equal(first.indices, second.indices):
        raise IncompatibleResultsError(
            f"{names[0]} and {names[1]} stored attack values for different forget images (or in a different "
            "order); the attack compares the same images through both models"
        )


@dataclass(frozen=True)
class AttackView:
    """Everything the Attack page shows for one model against the Retrained model.

    - ``strategy``: the normalised strategy key (:data:`STRATEGY_LABELS`); ``metric``: the metric
      the attack uses (for ``worst_case`` the one it picked).
    - ``choice``: the :class:`mucomp.privacy.AttackChoice` (threshold on clipped values,
      direction, FPR, FNR, attack score, success rate).
    - ``sweep``: the display sweep of ``metric`` (:func:`mucomp.privacy.threshold_sweep`,
      ``2 * n_thresholds`` rows, columns threshold, direction, fpr, fnr, attack_score).
    - ``attribution``: :meth:`mucomp.privacy.Attribution.to_frame` with ``id`` = dataset index
      (one row per (image, model), unlearned-model rows first).
    - ``indices``: dataset indices of the forget images; ``values_model`` /
      ``values_retrained``: the raw (unclipped) ``metric`` values, aligned with ``indices``.
    - ``high_risk``: dataset indices whose model value the attack attributes correctly (the
      success grid); ``low_risk``: the other forget images (the failure grid).
    - ``privacy_score``: ``1 - attack_score`` at the chosen threshold.
    """

    strategy: str
    metric: str
    choice: privacy.AttackChoice
    sweep: pd.DataFrame
    attribution: pd.DataFrame
    indices: np.ndarray
    values_model: np.ndarray
    values_retrained: np.ndarray
    high_risk: np.ndarray
    low_risk: np.ndarray
    privacy_score: float

    @property
    def threshold(self) -> float:
        return self.choice.threshold

    @property
    def direction(self) -> str:
        return self.choice.direction

    @property
    def attack_score(self) -> float:
        return self.choice.attack_score

    @property
    def success_rate(self) -> float:
        return self.choice.success_rate


def attack_view(
    result_model: ResultLike,
    result_retrained: ResultLike,
    metric: str,
    strategy: str,
    threshold: float | None = None,
    other: ResultLike | None = None,
    n_thresholds: int = 51,
    *,
    direction: str | None = None,
    grid_search: bool = True,
) -> AttackView:
    """One threshold attack of a model against the Retrained model on the forget images.

    Parameters
    ----------
    result_model, result_retrained:
        Stored results of one scenario; ``result_retrained`` must be the Retrained reference.
        Their ``attack`` blocks must cover the same forget images in the same order.
    metric:
        ``"entropy"`` or ``"confidence"``. Ignored by ``"worst_case"``, which picks the metric.
    strategy:
        ``"custom"`` (alias ``"custom_threshold"``): :func:`mucomp.privacy.custom_threshold` at
        ``threshold`` (default the middle of the range) and ``direction`` (default the stronger);
        ``"max_attack_score"``; ``"max_success_rate"``; ``"common"`` (alias
        ``"common_threshold"``): one threshold shared with ``other`` (the other model's result),
        :func:`mucomp.privacy.common_threshold`, this model's half; ``"worst_case"``: the
        strongest attack over both metrics (on the 51-point grid its privacy score is the
        table's PS).
    threshold:
        The custom threshold (clipped-value units of ``metric``).
    other:
        The other model's result, needed by ``"common"``.
    n_thresholds:
        Points of the display sweep (51 as published).
    grid_search:
        Search the strategies' threshold on the ``n_thresholds`` grid the page draws (the
        default, as the published system does; with 51 points the worst case is ``PS``), or,
        when False, over every distinct clipped value (the exact search).
    """
    key = STRATEGY_ALIASES.get(strategy)
    if key is None:
        raise ValueError(f"unknown strategy {strategy!r}; use one of {', '.join(privacy.STRATEGIES)}")
    model = as_result(result_model, "the model")
    retrained = as_result(result_retrained, "the Retrained model")
    if retrained.get("kind") != "retrained" and not is_comparator_retrained(retrained):
        raise IncompatibleResultsError(
            f"the attack compares a model with the Retrained reference, but {describe(retrained)} is not it"
        )
    check_same_scenario([model, retrained], ["the model", "the Retrained model"])
    u, r = attack_values(model, "the model"), attack_values(retrained, "the Retrained model")
    _check_same_samples(u, r, ("the model", "the Retrained model"))
    if key != "worst_case":
        privacy.check_metric(metric)
    search = n_thresholds if grid_search else None
    choice = _choose(key, u, r, metric, threshold, direction, search, other, model)
    used = choice.metric
    sweep = privacy.threshold_sweep(u.values(used), r.values(used), used, n_thresholds)
    attribution = privacy.attribute_samples(u.values(used), r.values(used), used, choice.threshold, choice.direction)
    return AttackView(
        strategy=key,
        metric=used,
        choice=choice,
        sweep=sweep,
        attribution=attribution.to_frame(ids=u.indices),
        indices=u.indices,
        values_model=u.values(used),
        values_retrained=r.values(used),
        high_risk=u.indices[attribution.high_risk],
        low_risk=u.indices[~attribution.high_risk],
        privacy_score=float(choice.privacy_score),
    )


def _choose(key: str, u: AttackValues, r: AttackValues, metric: str, threshold: float | None,
            direction: str | None, search: int | None, other: ResultLike | None, model: dict) -> privacy.AttackChoice:
    """The attack strategy ``key`` picks (see :func:`attack_view`)."""
    if key == "custom":
        return privacy.custom_threshold(u.values(metric), r.values(metric), metric, threshold, direction)
    if key == "max_attack_score":
        return privacy.max_attack_score(u.values(metric), r.values(metric), metric, search)
    if key == "max_success_rate":
        return privacy.max_success_rate(u.values(metric), r.values(metric), metric, search)
    if key == "common":
        if other is None:
            raise ValueError("the common threshold needs the other model's result (other=...)")
        o = as_result(other, "the other model")
        check_same_scenario([model, o], ["the model", "the other model"])
        ov = attack_values(o, "the other model")
        _check_same_samples(u, ov, ("the model", "the other model"))
        return privacy.common_threshold(u.values(metric), ov.values(metric), r.values(metric), metric, search)[0]
    return privacy.worst_case(u.as_mapping(), r.as_mapping(), search)


def clearest_first(view: AttackView, indices: np.ndarray, limit: int) -> np.ndarray:
    """Up to ``limit`` of the dataset ``indices`` (forget images of ``view``), the one whose value
    lies farthest from the attack's threshold (the most clearly attributed) first."""
    position = {int(i): k for k, i in enumerate(view.indices)}
    distance = np.array([abs(view.values_model[position[int(i)]] - view.threshold) for i in indices])
    return np.asarray(indices)[np.argsort(-distance, kind="stable")][:limit]


def instance_probabilities(result_a: ResultLike, result_b: ResultLike, dataset_index: int) -> tuple[np.ndarray, np.ndarray]:
    """Both models' class probabilities (softmax at T = 1, ``[C]`` each) for one forget image,
    read from the stored ``attack.probs``. ``dataset_index`` must be a forget-class training image."""
    out = []
    for name, item in (("Model A", result_a), ("Model B", result_b)):
        result = as_result(item, name)
        attack = block(result, "attack", ("indices", "probs"))
        indices = np.asarray(attack["indices"], dtype=np.int64)
        hits = np.flatnonzero(indices == int(dataset_index))
        if hits.size == 0:
            raise ValueError(
                f"image {dataset_index} is not one of {name}'s forget images; the instance panel shows forget images only"
            )
        probs = np.asarray(attack["probs"][int(hits[0])], dtype=np.float64)
        if probs.ndim != 1:
            raise MissingBlockError(f"{describe(result)}: attack.probs must be [n][C]")
        out.append(probs)
    check_same_scenario([result_a, result_b], ["Model A", "Model B"])
    if out[0].shape != out[1].shape:
        raise IncompatibleResultsError("Model A and Model B have different numbers of classes")
    return out[0], out[1]


# ---------------------------------------------------------------------------------------------
# The on-demand audits

#: Every audit block :func:`stored_audits` reads, in the order the CLI prints them.
AUDIT_BLOCKS = ("leakage", "probes", "ulira", "relearn")


def stored_audits(result: Mapping[str, Any]) -> dict[str, dict | None]:
    """``{name: block or None}`` for every name in :data:`AUDIT_BLOCKS`."""
    return {name: stored_audit(result, name) for name in AUDIT_BLOCKS}


def _steps(value: Any, budget: Any) -> str:
    """Steps to the target, or the censored reading: "not reached in S"."""
    return f"{value}" if value is not None else f"not reached in {budget}"


def _relative_text(block: Mapping[str, Any]) -> str:
    """The relative figure, or why there is none (a censored curve gives no ratio)."""
    relative = block.get("relative")
    if relative is not None:
        return f"{relative:.2f}"
    reached = block["steps_to_target"]
    if reached["model"] is None:
        return "none: this model's curve is censored"
    if reached["retrained"] is None:
        return "none: the Retrained model's curve is censored"
    return "none: the Retrained model is there at step 0"


def audit_text(experiment_id: str, audits: Mapping[str, Mapping[str, Any] | None], forget: str | None = None) -> str:
    """The stored audits of one experiment as lines of text (what ``mucomp audit ID`` prints), in
    the words of its forget set ``forget`` (canonical text; None: a class set)."""
    lines = [f"audits of {experiment_id}"]
    leak = audits.get("leakage")
    if leak is not None:
        ranked = "each forget image's true class" if imagewise(forget) else "the forgotten class"
        lines.append(f"class leakage: JS divergence to the Retrained model {leak['js_mean']:.4f}; mean rank of "
                     f"{ranked} {leak['mean_rank']:.2f} (Retrained {leak['retrained_mean_rank']:.2f})")
    probes = audits.get("probes")
    if probes is not None:
        lines.append("probe ROC AUC (forget vs retain) per layer: "
                     + "  ".join(f"{layer} {'-' if auc is None else format(auc, '.3f')}"  # null: no AUC
                                 for layer, auc in probes.items()))
    ulira = audits.get("ulira")
    if ulira is not None:
        lines.append(f"U-LiRA accuracy {ulira['accuracy']:.3f} (0.5 = like retraining) over {ulira['held_out']} "
                     f"held-out shadow pairs, Gaussians fitted on {ulira['shadows']}; "
                     f"{ulira['share_flagged']:.1%} of this model's forget images have LR > 0")
        if "auc" in ulira:  # blocks stored before LiRA's figures have the accuracy alone
            lines.append("  " + ulira_roc_text(ulira))
    relearn = audits.get("relearn")
    if relearn is not None:
        reached, budget = relearn["steps_to_target"], relearn["steps"]
        head = f"relearning ({relearn['k']} forget images + retain, lr {relearn['lr']:g}, {budget} steps): "
        if imagewise(forget):
            lines.append(head + relearn_reading(relearn, forget))
        else:
            lines.append(
                f"{head}half the Original's forget accuracy ({relearn['target']:.2f}) after "
                f"{_steps(reached['model'], budget)} steps, Retrained after {_steps(reached['retrained'], budget)}; "
                f"relative {_relative_text(relearn)}; retain only: {_steps(reached['model_retain_only'], budget)} "
                f"(Retrained {_steps(reached['retrained_retain_only'], budget)})")
    if len(lines) == 1:
        lines.append("no audits stored")
    # Layer names and estimator words are stored text: a line break or escape in one shows as such.
    return "\n".join(for_terminal(line) for line in lines)


def relearn_reading(block: Mapping[str, Any], forget: str | None) -> str:
    """One sentence summarising a stored relearning block for the forget set ``forget`` (its
    canonical text): steps to half the Original's forget accuracy for a class set
    (:func:`relearn_summary_text`); for images, where each forget-accuracy
    curve starts and ends beside the Retrained model's (closer = like retraining)."""
    if not imagewise(forget):
        return relearn_summary_text(block)
    curves = block["curves"]

    def ends(who: str) -> tuple[float, float]:
        values = [float(v) for v in curves[who]["forget"]["forget_accuracy"]]
        return values[0], values[-1]

    (m0, m1), (r0, r1) = ends("model"), ends("retrained")
    return (f"Forget accuracy on the other forget images, from step 0 to step {block['steps']}: this model "
            f"{m0:.0%} → {m1:.0%}, the Retrained model {r0:.0%} → {r1:.0%} (a gap of {(m1 - r1) * 100:+.1f} points at "
            "the end). For forgotten images the reading is the gap to the Retrained model (0 = like retraining; "
            "well above it = the images are remembered), not the steps to a target.")


ULIRA_COLUMNS = ("rank", "index", "lr", "phi", "mu_unlearned", "mu_retrained", "flagged")


def ulira_roc_text(block: Mapping[str, Any]) -> str:
    """LiRA's threshold-free figures of a U-LiRA block in words: AUC, best balanced accuracy, TPR
    at 1 % and 0.1 % FPR (``not resolved`` where the held-out sample is too small), the estimator."""
    rates = block.get("tpr_at_fpr") or {}
    tpr = [f"TPR {'not resolved' if rates.get(key) is None else format(rates[key], '.3f')} at {label} FPR"
           for key, label in (("0.01", "1 %"), ("0.001", "0.1 %"))]
    estimator = block.get("estimator") or {}
    return (f"AUC {block['auc']:.3f}, best balanced accuracy {block['balanced_accuracy_best']:.3f}, {', '.join(tpr)} "
            f"(Gaussians: {estimator.get('center', 'mean')} centre, {estimator.get('variance', 'per_image').replace('_', '-')} "
            "variance)")


def ulira_ranking(block: Mapping[str, Any]) -> pd.DataFrame:
    """The experiment's forget images ranked by U-LiRA likelihood ratio, most exposed first.

    Columns :data:`ULIRA_COLUMNS`: ``rank`` (1 = the highest LR), ``index`` (dataset index of the
    training image), ``lr``, ``phi`` (the model's φ), ``mu_unlearned`` / ``mu_retrained`` (the
    shadows' mean φ of that image), ``flagged`` (LR > 0: the attack says "unlearned by the method",
    not "retrained"). Ties keep the forget-set order.
    """
    frame = pd.DataFrame({
        "index": [int(i) for i in block["indices"]],
        "lr": [float(v) for v in block["lr"]],
        "phi": [float(v) for v in block["phi"]],
        "mu_unlearned": [float(v) for v in block["mu_unlearned"]],
        "mu_retrained": [float(v) for v in block["mu_retrained"]],
    })
    frame = frame.sort_values("lr", ascending=False, kind="stable").reset_index(drop=True)
    frame.insert(0, "rank", range(1, len(frame) + 1))
    frame["flagged"] = frame["lr"] > 0
    return frame[list(ULIRA_COLUMNS)]


RELEARN_LABELS = {
    ("model", "forget"): "this model, forget + retain images",
    ("model", "retain_only"): "this model, retain images only",
    ("retrained", "forget"): "Retrained, forget + retain images",
    ("retrained", "retain_only"): "Retrained, retain images only",
}


def relearn_frame(block: Mapping[str, Any]) -> pd.DataFrame:
    """Long frame ``model`` (``"model"`` / ``"retrained"``), ``curve`` (``"forget"`` /
    ``"retain_only"``), ``label``, ``step``, ``forget_accuracy`` of a stored relearning block."""
    rows = []
    for who, curves in block.get("curves", {}).items():
        for curve, record in curves.items():
            for step, accuracy in zip(record["steps"], record["forget_accuracy"], strict=True):
                rows.append({"model": who, "curve": curve, "label": RELEARN_LABELS.get((who, curve), f"{who} {curve}"),
                             "step": int(step), "forget_accuracy": float(accuracy)})
    return pd.DataFrame(rows, columns=["model", "curve", "label", "step", "forget_accuracy"])


def relearn_summary_text(block: Mapping[str, Any]) -> str:
    """One sentence summarising a relearning block (steps to half the Original's forget accuracy,
    for the model and the Retrained model, and their ratio)."""
    reached, budget = block["steps_to_target"], block["steps"]
    ratio = _relative_text(block)
    return (f"Half the Original's forget accuracy ({block['target']:.0%}) is back after "
            f"{_steps(reached['model'], budget)} steps for this model and {_steps(reached['retrained'], budget)} for "
            f"the Retrained model (relative {ratio}; 1 = like retraining, lower = relearnt faster than after retraining). "
            f"From retain images alone: {_steps(reached['model_retain_only'], budget)} steps "
            f"(Retrained {_steps(reached['retrained_retain_only'], budget)}).")
