"""One table of an evaluation's stages for the benchmarks: every stage ``evaluate_model`` times
(``timings``), their sum, the measured total and how much of the total the rows account for.

    from stage_table import stage_table
    print(stage_table(runs, labels, published_s=259.9))

``runs``: one dict per repeat, ``{stage: seconds, ..., "total": seconds}``; the medians are over
the repeats (with two repeats a median is the mean, so the rows' medians add up exactly).
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence

#: What each stage of :func:`mucomp.experiment.figures.evaluate_model` does (its ``timings`` keys).
STAGE_LABELS = {
    "evaluation": "forward pass, train + test (one pass per split)",
    "accuracy": "accuracies, class-wise table, prediction matrices",
    "privacy": "privacy score, attack values, MIA-Efficacy, class leakage",
    "probes": "layer-wise decodability probes",
    "similarity": "CKA vs Original and Retrained",
    "embedding": "UMAP of the embedding subset (warm)",
}


def stage_table(runs: Sequence[Mapping[str, float]], labels: Mapping[str, str] | None = None,
                *, published_s: float | None = None) -> str:
    """A markdown table: one row per stage found in ``runs`` (in :data:`STAGE_LABELS` order, then
    any other), the sum of the rows, the total, the share of the total the rows cover and, with
    ``published_s``, the total's ratio to it and to the forward pass."""
    labels = {**STAGE_LABELS, **(labels or {})}
    stages = [k for k in labels if k in runs[0]] + [k for k in runs[0] if k not in labels and k != "total"]
    medians = {k: statistics.median(run[k] for run in runs) for k in [*stages, "total"]}
    lines = ["| stage | median s | runs |", "| --- | ---: | --- |"]
    for key in stages:
        values = ", ".join(f"{run[key]:.2f}" for run in runs)
        lines.append(f"| {labels.get(key, key)} | {medians[key]:.2f} | {values} |")
    rows_sum = sum(medians[k] for k in stages)
    total = medians["total"]
    lines.append(f"| sum of the rows | {rows_sum:.2f} | |")
    totals = ", ".join(f"{run['total']:.2f}" for run in runs)
    lines.append(f"| **total (measured around the call)** | **{total:.2f}** | {totals} |")
    lines.append("")
    lines.append(f"The rows cover {100 * rows_sum / total:.1f} % of the total.")
    if "evaluation" in medians and medians["evaluation"] > 0:
        lines.append(f"Total / forward pass: {total / medians['evaluation']:.3f}.")
    if published_s:
        lines.append(f"Total / published implementation ({published_s:.1f} s): {total / published_s:.3f}.")
    return "\n".join(lines)
