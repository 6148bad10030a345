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
