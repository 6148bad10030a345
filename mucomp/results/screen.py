"""The Screen page's data: the experiment table, cost counts, the Pareto front and per-epoch
curves, from stored results (plain pandas; :mod:`mucomp.ui` draws them)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from mucomp import catalogue
from mucomp.catalogue import method_label
from mucomp.groups import seed_pair, train_seed_of
from mucomp.results.access import (
    IncompatibleResultsError,
    MissingBlockError,
    ResultLike,
    as_result,
    base_label,
    check_same_scenario,
    describe,
    floats,
    number,
)

_TYPE_ORDER = {"original": 0, "retrained": 1}

#: Columns of :func:`experiment_table`, in order.
TABLE_COLUMNS: tuple[str, ...] = (
    "ID", "Type", "Base", "Method", "Seeds", "Epochs", "Batch", "LR",
    "UA", "RA", "TUA", "TRA", "RT", "Cost", "PS", "MIA", "Avg. Gap", "U-LiRA", "Relearn", "Leak JS", "Created", "Owner",
)


#: How to read the privacy figures, shown on Screen and Attack (one text, one place).
PRIVACY_READING = (
    "**How to read the privacy columns.** Both attack only the forget images, and both compare with "
    "retraining, but they ask different questions, so they can disagree. **PS** (privacy score) pits the model "
    "against the *Retrained* model: the strongest threshold on one value per image (the entropy of its softmax "
    "at T = 2, or the log-odds of its top-1 probability) tries to tell which of the two models produced it; PS = 1 − that "
    "attack's score, so 1 means the attack cannot tell the model from retraining and 0 means it always can. "
    "**MIA** (MIA-Efficacy, SalUn's protocol) trains a classifier on the model's own retain (member) and test "
    "(non-member) outputs and reports the share of forget images it calls non-members: 1 means the forget "
    "images look unseen. A method can make the forget images look unseen (MIA near 1) while giving them a "
    "distribution of confidences that no retrained model shows (PS near 0), e.g. RL's confident wrong labels. "
    "Retraining itself scores PS 1 against itself."
)


#: The counts of a stored ``metrics["cost"]`` (see :class:`mucomp.methods.UnlearnResult`).
COST_KEYS = ("samples_forwarded", "samples_backpropagated", "optimizer_steps")


def cost_count(result: ResultLike, key: str = "samples_backpropagated") -> float:
    """One count of a result's ``metrics["cost"]`` (one of :data:`COST_KEYS`), as a float; NaN
    when the result has none (references, uploads, results stored before cost existed)."""
    cost = (as_result(result).get("metrics") or {}).get("cost")
    if not isinstance(cost, Mapping) or isinstance(cost.get(key), bool):
        return math.nan
    try:
        return number(cost.get(key))
    except (TypeError, ValueError):
        return math.nan


def compact_count(value: Any) -> str:
    """A count in three significant digits with a k / M / G / T suffix: ``950``, ``1.21k``,
    ``12.3k``, ``4.5M``; ``"—"`` for a missing or non-finite value."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        return "—"
    if not math.isfinite(x):
        return "—"
    if round(abs(x)) < 1000:
        return str(int(round(x)))
    for unit, scale in (("k", 1e3), ("M", 1e6), ("G", 1e9)):
        text = f"{x / scale:.3g}"
        if abs(float(text)) < 1000:  # 999.9k rounds to 1e+03: the next unit says it as 1M
            return text + unit
    return f"{x / 1e12:.3g}T"


def cost_summary(result: ResultLike) -> str:
    """One sentence with a result's cost counts for the Screen details, e.g. ``"Cost: 1.21k
    samples back-propagated, 2.42k forwarded, 38 optimiser steps."``; ``""`` when it has none."""
    counts = {key: cost_count(result, key) for key in COST_KEYS}
    if all(math.isnan(v) for v in counts.values()):
        return ""
    return (f"Cost: {compact_count(counts['samples_backpropagated'])} samples back-propagated, "
            f"{compact_count(counts['samples_forwarded'])} forwarded, "
            f"{compact_count(counts['optimizer_steps'])} optimiser steps.")


def _int_or_none(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def experiment_table(
    results: Sequence[ResultLike],
    class_names: Sequence[str] | None = None,
    *,
    per_class: bool = False,
    salun: bool = False,
    check_scenario: bool = True,
) -> pd.DataFrame:
    """One row per experiment, as the Screen page lists them.

    Parameters
    ----------
    results:
        Stored results (dicts or Experiments) of one scenario.
    class_names:
        The data set's class names. Used with ``per_class=True`` to add one column per class
        (``"Acc <name>"``, training accuracy); when given, each result's per-class accuracies
        must have one entry per class.
    per_class:
        Add the per-class training accuracy columns (needs ``class_names``).
    salun:
        Add ``"UA (SalUn)"`` = 1 - UA right after ``UA`` (the literature's convention).
    check_scenario:
        Refuse results of different scenarios (:class:`IncompatibleResultsError`).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`TABLE_COLUMNS`: ``ID`` (str), ``Type`` (Original / Retrained / Unlearned /
        Custom), ``Base`` (``"Original"``, a base experiment id, or ``"—"``), ``Method`` (label),
        ``Seeds`` (:func:`seeds_label`),
        ``Epochs`` and ``Batch`` (nullable Int64), ``LR`` (float), ``UA``, ``RA``, ``TUA``, ``TRA``,
        ``PS``, ``MIA`` (MIA-Efficacy), ``Avg. Gap`` (fractions in [0, 1]), ``RT`` (seconds),
        ``Cost`` (samples back-propagated by the method, float; show it with
        :func:`compact_count`), ``Created`` (UTC timestamp), ``Owner`` (str or None). Missing
        values (e.g. the Cost of references, uploads and results stored before it existed) are
        NaN / <NA>.
        Rows: the Original, then the Retrained, then the rest by creation time (then id); a
        fresh RangeIndex.
    """
    items = [as_result(r, f"results[{k}]") for k, r in enumerate(results)]
    if check_scenario and items:
        check_same_scenario(items, [f"results[{k}]" for k in range(len(items))])
    if per_class and class_names is None:
        raise ValueError("per_class=True needs class_names")
    rows = [_table_row(result, class_names, per_class) for result in items]
    columns = list(TABLE_COLUMNS)
    if salun:
        columns.insert(columns.index("UA") + 1, "UA (SalUn)")
    if per_class:
        columns += [f"Acc {name}" for name in class_names]  # type: ignore[union-attr]
    table = pd.DataFrame(rows, columns=[*columns, "_order"])
    if salun:
        table["UA (SalUn)"] = 1.0 - table["UA"].astype(float)
    table["Created"] = pd.to_datetime(table["Created"], utc=True, errors="coerce")
    for column in ("Epochs", "Batch"):
        table[column] = table[column].astype("Int64")
    for column in ("LR", *catalogue.METRIC_KEYS, "Cost"):
        table[column] = table[column].astype(float)
    table["_undated"] = table["Created"].isna()  # undated rows last within their group
    table = table.sort_values(["_order", "_undated", "Created", "ID"], kind="stable", na_position="last")
    return table.drop(columns=["_order", "_undated"]).reset_index(drop=True)


def seeds_label(result: dict) -> str:
    """The seeds that made a result, as Screen's Seeds column shows them: ``"t0 u1"`` (training
    seed of the references, unlearning seed of the run) for an unlearned model, ``"t0"`` for a
    reference, ``"—"`` for uploads and imports that recorded none. Two rows of one group with the
    same text are the same replicate."""
    config = result.get("config") or {}
    kind = result.get("kind")
    if kind in ("original", "retrained"):
        return f"t{train_seed_of(config)}"
    if kind == "unlearned":
        return "t{} u{}".format(*seed_pair(config))
    return "—"


def _table_row(result: dict, class_names: Sequence[str] | None, per_class: bool) -> dict[str, Any]:
    """One row of :func:`experiment_table` (plus its sort key ``_order``)."""
    config, metrics = result.get("config") or {}, result.get("metrics") or {}
    row: dict[str, Any] = {
        "ID": str(result["id"]),
        "Type": catalogue.TYPE_LABELS.get(result.get("kind"), str(result.get("kind"))),
        "Base": base_label(config.get("base")),
        "Method": method_label(result),
        "Seeds": seeds_label(result),
        "Epochs": _int_or_none(config.get("epochs")),
        "Batch": _int_or_none(config.get("batch_size")),
        "LR": number(config.get("lr")),
    }
    for column, key in catalogue.METRIC_KEYS.items():
        row[column] = number(metrics.get(key))
    row["Cost"] = cost_count(result)
    row["Created"] = result.get("created_at")
    row["Owner"] = result.get("owner")
    if class_names is not None and metrics.get("accs") is not None:
        accs = floats(metrics["accs"], f"{describe(result)}: metrics.accs")
        if accs.size != len(class_names):
            raise IncompatibleResultsError(
                f"{describe(result)} has {accs.size} per-class accuracies but {len(class_names)} class names were given"
            )
        if per_class:
            row.update({f"Acc {name}": float(a) for name, a in zip(class_names, accs, strict=True)})
    row["_order"] = _TYPE_ORDER.get(result.get("kind"), 2)
    return row


def pareto_front(
    table: pd.DataFrame,
    objectives: Sequence[tuple[str, str]] = (("UA", "min"), ("TRA", "max"), ("PS", "max")),
) -> pd.Series:
    """Which rows of ``table`` are Pareto-optimal (non-dominated) for ``objectives``.

    ``objectives`` are ``(column, "min" | "max")`` pairs. Row ``i`` is dominated when another row
    is at least as good in every objective and strictly better in one; identical rows do not
    dominate each other. A row with a missing (NaN) objective is never on the front and never
    dominates. Returns a bool Series aligned with ``table.index`` (name ``"pareto"``).
    """
    if not objectives:
        raise ValueError("give at least one objective, e.g. (('UA', 'min'), ('TRA', 'max'))")
    signs = []
    for column, sense in objectives:
        if column not in table.columns:
            raise ValueError(f"the table has no column {column!r}; objectives must name columns of it")
        if sense not in ("min", "max"):
            raise ValueError(f"objective {column!r}: sense must be 'min' or 'max', got {sense!r}")
        signs.append(1.0 if sense == "max" else -1.0)
    try:
        values = table[[c for c, _ in objectives]].to_numpy(dtype=np.float64, na_value=np.nan) * np.asarray(signs)
    except (TypeError, ValueError) as err:
        raise ValueError("Pareto objectives must be numeric columns") from err
    valid = ~np.isnan(values).any(axis=1)
    front = valid.copy()
    good = values[valid]
    positions = np.flatnonzero(valid)
    for k, row in zip(positions, good, strict=True):
        dominated = np.all(good >= row, axis=1) & np.any(good > row, axis=1)
        front[k] = not dominated.any()
    return pd.Series(front, index=table.index, name="pareto")


def epoch_curves(result: ResultLike) -> pd.DataFrame:
    """Per-epoch records of an experiment: columns ``epoch`` (int, from 1), ``forget_accuracy``
    (fraction of forget images still recognised), ``loss`` (the method's training loss, its own
    units) and ``seconds`` (cumulative unlearning time). Empty (same columns) when the
    experiment recorded none (references, uploads)."""
    result = as_result(result)
    records = result.get("epochs")
    columns = ["epoch", "forget_accuracy", "loss", "seconds"]
    if not isinstance(records, list) or not records:
        return pd.DataFrame({c: pd.Series(dtype=float) for c in columns}).astype({"epoch": "int64"})
    rows = []
    for record in records:
        if not isinstance(record, Mapping) or "epoch" not in record:
            raise MissingBlockError(f"{describe(result)}: per-epoch records must be objects with an 'epoch'")
        rows.append({
            "epoch": int(record["epoch"]),
            "forget_accuracy": number(record.get("forget_accuracy")),
            "loss": number(record.get("loss")),
            "seconds": number(record.get("seconds")),
        })
    return pd.DataFrame(rows, columns=columns).sort_values("epoch").reset_index(drop=True)




def front_of_experiments(table: pd.DataFrame, columns: Sequence[str], forget: str | None = None) -> np.ndarray:
    """Which rows of the experiment ``table`` are on the Pareto front of ``columns``, among the
    unlearned and uploaded models (bool ``[rows]``); the references are drawn for comparison but
    never on it (the Retrained model would dominate everything).

    Each column is minimised or maximised by its direction for the forget set ``forget``
    (:func:`mucomp.catalogue.direction`); a column read as "close to the Retrained model" (image
    forget sets) is scored by the absolute gap to the Retrained row's value.
    """
    objectives, frame = [], pd.DataFrame(index=table.index)
    retrained = table.loc[table["Type"] == catalogue.TYPE_LABELS["retrained"]]
    for column in dict.fromkeys(columns):
        way = catalogue.direction(column, forget)
        if way == "retrained":
            reference = float(retrained[column].iloc[0]) if len(retrained) else math.nan
            frame[column] = (table[column].astype(float) - reference).abs()
            objectives.append((column, "min"))
        else:
            frame[column] = table[column]
            objectives.append((column, "min" if way == "lower" else "max"))
    experiments = table["Type"].isin([catalogue.TYPE_LABELS["unlearned"], catalogue.TYPE_LABELS["custom"]])
    if not experiments.any():
        return np.zeros(len(table), dtype=bool)
    front = pareto_front(frame[experiments], objectives)
    return front.reindex(table.index, fill_value=False).to_numpy(dtype=bool)


#: Plain words for each stage of ``result["timings"]`` (run_experiment and evaluate_model).
TIMING_LABELS: dict[str, str] = {
    "references": "preparing the references (first run of the scenario in its process)",
    "base_model": "copying the base model",
    "umap_compile_wait": "waiting for UMAP's one-time compilation",
    "warmup": "method warm-up (outside RT)",
    "preparation": "method preparation, e.g. a saliency mask or a teacher copy (outside RT)",
    "unlearning": "unlearning (RT)",
    "epoch_checks": "per-epoch forget-accuracy checks (outside RT)",
    "evaluation": "forward pass over the train and test images",
    "accuracy": "accuracies and prediction matrices",
    "privacy": "privacy score, attack values, MIA-Efficacy",
    "probes": "layer-wise decodability probes",
    "similarity": "layer-wise CKA",
    "embedding": "UMAP embedding",
}


def timings_table(result: ResultLike) -> pd.DataFrame:
    """Where a stored run's time went: columns ``Stage``, ``Seconds`` (float), one row per stage
    of ``result["timings"]`` in the order they ran, then ``Total``; empty when none were stored.
    Unknown stage names (a newer version's) are shown as stored."""
    timings = as_result(result).get("timings") or {}
    rows = [(TIMING_LABELS.get(str(k), str(k)), float(v)) for k, v in timings.items()
            if isinstance(v, int | float) and math.isfinite(v)]
    if not rows:
        return pd.DataFrame({"Stage": pd.Series(dtype=str), "Seconds": pd.Series(dtype=float)})
    rows.append(("Total", sum(seconds for _, seconds in rows)))
    return pd.DataFrame(rows, columns=["Stage", "Seconds"])
