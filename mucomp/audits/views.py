"""What the pages draw from the stored audits (pure functions on stored results)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd


def stored_audit(result: Mapping[str, Any], name: str) -> dict | None:
    """``result["audits"][name]`` (``"leakage"`` or ``"probes"``), or None for results stored
    before the audits existed (or without them)."""
    audits = result.get("audits")
    block = audits.get(name) if isinstance(audits, Mapping) else None
    return dict(block) if isinstance(block, Mapping) else None


def probe_frame(results: Mapping[str, Mapping[str, Any]], layers: Sequence[str]) -> pd.DataFrame:
    """Long frame ``model, layer, layer_index, auc, excess`` of the stored probe AUCs.

    ``results``: ``{legend name: stored result}``, the Retrained reference under ``"retrained"``
    (its AUCs give ``excess`` = AUC minus the Retrained model's at the same layer; NaN without
    it). Models without stored probes are left out.
    """
    retrained = stored_audit(results.get("retrained", {}), "probes") or {}
    rows = []
    for model, result in results.items():
        probes = stored_audit(result, "probes")
        if probes is None:
            continue
        for index, layer in enumerate(layers):
            auc = float(probes.get(layer, float("nan")))
            rows.append({"model": model, "layer": layer, "layer_index": index, "auc": auc,
                         "excess": auc - float(retrained.get(layer, float("nan")))})
    return pd.DataFrame(rows, columns=["model", "layer", "layer_index", "auc", "excess"])


#: Every audit block :func:`stored_audits` reads, in the order the CLI prints them.
AUDIT_BLOCKS = ("leakage", "probes", "ulira", "relearn")


def stored_audits(result: Mapping[str, Any]) -> dict[str, dict | None]:
    """``{name: block or None}`` for every name in :data:`AUDIT_BLOCKS`."""
    return {name: stored_audit(result, name) for name in AUDIT_BLOCKS}


def _steps(value: Any, budget: Any) -> str:
    return f"{value}" if value is not None else f"> {budget}"


def audit_text(experiment_id: str, audits: Mapping[str, Mapping[str, Any] | None]) -> str:
    """The stored audits of one experiment as lines of text (what ``mucomp audit ID`` prints)."""
    lines = [f"audits of {experiment_id}"]
    leak = audits.get("leakage")
    if leak is not None:
        lines.append(f"class leakage: JS divergence to the Retrained model {leak['js_mean']:.4f}; mean rank of "
                     f"the forgotten class {leak['mean_rank']:.2f} (Retrained {leak['retrained_mean_rank']:.2f})")
    probes = audits.get("probes")
    if probes is not None:
        lines.append("probe ROC AUC (forget vs retain) per layer: "
                     + "  ".join(f"{layer} {auc:.3f}" for layer, auc in probes.items()))
    ulira = audits.get("ulira")
    if ulira is not None:
        lines.append(f"U-LiRA accuracy {ulira['accuracy']:.3f} (0.5 = like retraining) over {ulira['held_out']} "
                     f"held-out shadow pairs, Gaussians fitted on {ulira['shadows']}; "
                     f"{ulira['share_flagged']:.1%} of this model's forget images have LR > 0")
    relearn = audits.get("relearn")
    if relearn is not None:
        reached, budget = relearn["steps_to_target"], relearn["steps"]
        relative = relearn.get("relative")
        lines.append(
            f"relearning ({relearn['k']} forget images + retain, lr {relearn['lr']:g}, {budget} steps): half the "
            f"Original's forget accuracy ({relearn['target']:.2f}) after {_steps(reached['model'], budget)} steps, "
            f"Retrained after {_steps(reached['retrained'], budget)}; relative "
            + ("-" if relative is None else f"{relative:.2f}")
            + f"; retain only: {_steps(reached['model_retain_only'], budget)} "
              f"(Retrained {_steps(reached['retrained_retain_only'], budget)})")
    if len(lines) == 1:
        lines.append("no audits stored")
    return "\n".join(lines)


ULIRA_COLUMNS = ("rank", "index", "lr", "phi", "mu_unlearned", "mu_retrained", "flagged")


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
    relative = block.get("relative")
    ratio = "—" if relative is None else f"{relative:.2f}"
    return (f"Half the Original's forget accuracy ({block['target']:.0%}) is back after "
            f"{_steps(reached['model'], budget)} steps for this model and {_steps(reached['retrained'], budget)} for "
            f"the Retrained model (relative {ratio}; 1 = like retraining, lower = the class comes back faster). "
            f"From retain images alone: {_steps(reached['model_retain_only'], budget)} steps "
            f"(Retrained {_steps(reached['retrained_retain_only'], budget)}).")
