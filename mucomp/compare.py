"""The computations behind the Screen, Contrast and Attack pages, read from stored results.

Every function here takes stored result dicts (``Experiment.result``, the schema documented in
:mod:`mucomp.runner`) or :class:`~mucomp.store.Experiment` objects, and returns plain pandas /
numpy values that a page draws (through :mod:`mucomp.ui.figures`), a test checks and the CLI can
print. Nothing here runs a model, recomputes an embedding or imports a UI library.

- Screen: :func:`experiment_table` (one row per experiment, :data:`COLUMN_HELP` tooltips,
  :data:`METRIC_DIRECTIONS` for colour scales, :func:`compact_count` for the Cost column),
  :func:`cost_summary`, :func:`pareto_front`, :func:`epoch_curves`.
- Contrast: :func:`class_accuracy` / :func:`retain_gap`, :func:`stored_prediction_matrix`,
  :func:`twin_embedding` (both stored UMAP layouts, B aligned onto A), :func:`cka_frame_for`.
- Attack: :func:`attack_view` (one model against the Retrained model for one strategy) and
  :func:`instance_probabilities`.

Inputs are validated at this boundary: two results must belong to the same scenario (data set,
forget class, seed), and a result that lacks a block a view needs (for example one stored by an
older mucomp) raises :class:`MissingBlockError` naming the experiment and what to do.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mucomp import privacy
from mucomp.embedding import points_frame, procrustes_align
from mucomp.metrics import retemper

# ---------------------------------------------------------------------------------------------
# Errors and validation


class IncompatibleResultsError(ValueError):
    """Two results that can't be compared (different scenarios, different attack samples...)."""


class MissingBlockError(ValueError):
    """A stored result lacks a block (or a field of a block) a view needs."""


ResultLike = Any  # a stored result dict or an object with a ``.result`` dict (an Experiment)

SPLITS = ("train", "test")


def as_result(item: ResultLike, name: str = "result") -> dict:
    """The result dict of ``item``: a stored result dict itself, or ``item.result`` (an Experiment)."""
    result = getattr(item, "result", item)
    if not isinstance(result, Mapping):
        raise TypeError(f"{name} must be a stored result dict or an Experiment, got {type(item).__name__}")
    if "id" not in result or "config" not in result:
        raise MissingBlockError(f"{name} has no 'id' or 'config': it is not a stored mucomp result")
    return dict(result)


def _describe(result: Mapping) -> str:
    return f"experiment {result.get('id', '?')} ({result.get('kind', '?')})"


def block(result: Mapping, key: str, fields: Sequence[str] = ()) -> Mapping:
    """``result[key]`` with the given ``fields`` present, else a :class:`MissingBlockError`."""
    value = result.get(key)
    if not isinstance(value, Mapping):
        raise MissingBlockError(
            f"{_describe(result)} has no '{key}' block: it was stored by an older or different mucomp "
            f"(code version {result.get('code_version', 'unknown')}). Re-run the experiment to see this view."
        )
    missing = [f for f in fields if f not in value]
    if missing:
        raise MissingBlockError(
            f"{_describe(result)}: its '{key}' block lacks {missing} (stored by code version "
            f"{result.get('code_version', 'unknown')}). Re-run the experiment to see this view."
        )
    return value


def scenario_of(result: ResultLike) -> tuple[str, str, int, int, str | None]:
    """``(dataset, forget set text, training seed, data seed, arch)`` of a stored result.

    Reads a current-schema config (``forget``, ``train_seed``, ...) and, for hand-made or older
    dicts, the single ``forget_class`` and ``seed`` they had instead.
    """
    result = as_result(result)
    config = result["config"]
    try:
        seed = int(config.get("seed", 0))
        forget = config.get("forget") or f"class:{int(config['forget_class'])}"
        return (str(config["dataset"]), str(forget), int(config.get("train_seed", seed)),
                int(config.get("data_seed", seed)), config.get("arch"))
    except (KeyError, TypeError, ValueError) as err:
        raise MissingBlockError(f"{_describe(result)}: its config lacks the dataset or forget set") from err


def _scenario_words(scenario: tuple) -> str:
    dataset, forget, train_seed, data_seed, arch = scenario
    return f"{dataset} / forget {forget} / training seed {train_seed} / data seed {data_seed}" + (f" / {arch}" if arch else "")


def check_same_scenario(results: Sequence[ResultLike], names: Sequence[str] | None = None) -> tuple:
    """The common scenario (:func:`scenario_of`) of ``results``; :class:`IncompatibleResultsError`
    if they differ (an arch of None matches any: hand-made results may not say it)."""
    if not results:
        raise ValueError("no results given")
    names = list(names) if names is not None else [f"result {k + 1}" for k in range(len(results))]
    scenarios = [scenario_of(r) for r in results]
    first = scenarios[0]
    for name, result, scenario in zip(names, results, scenarios, strict=True):
        if scenario[:4] != first[:4] or None not in (scenario[4], first[4]) and scenario[4] != first[4]:
            raise IncompatibleResultsError(
                f"{names[0]} ({as_result(results[0])['id']}) belongs to {_scenario_words(first)} but {name} "
                f"({as_result(result)['id']}) to {_scenario_words(scenario)}; pick experiments of the same scenario"
            )
    return first


def forget_classes_of(forget: str) -> tuple[int, ...]:
    """The classes a canonical forget-set text forgets whole (``class:3`` -> (3,), ``classes:3,5``
    -> (3, 5)); () for random and index sets, which forget images."""
    kind, _, body = forget.partition(":")
    if kind in ("class", "classes"):
        return tuple(int(k) for k in body.split(","))
    return ()


def _forget_classes(results: Sequence[dict], forget_class: int | None, names: Sequence[str]) -> tuple[int, ...]:
    """The forget classes of the results' common scenario (given ``forget_class`` must match)."""
    stored = forget_classes_of(check_same_scenario(results, names)[1])
    if forget_class is None:
        return stored
    if isinstance(forget_class, bool) or not isinstance(forget_class, (int, np.integer)):
        raise ValueError(f"forget_class must be an int, got {forget_class!r}")
    if (int(forget_class),) != stored:
        raise IncompatibleResultsError(
            f"forget_class {forget_class} does not match the results' forget set {stored or 'of images'}"
        )
    return stored


def _check_split(split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    return split


def _floats(values: Any, what: str) -> np.ndarray:
    """A float64 array of stored numbers (``None`` / null -> NaN)."""
    try:
        return np.asarray([math.nan if v is None else v for v in values], dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise MissingBlockError(f"{what} must be a list of numbers") from err


def _number(value: Any) -> float:
    return math.nan if value is None else float(value)


# ---------------------------------------------------------------------------------------------
# Screen: the experiment table

TYPE_LABELS: dict[str, str] = {
    "original": "Original",
    "retrained": "Retrained",
    "unlearned": "Unlearned",
    "custom": "Custom",
    "published": "Published",
}
_TYPE_ORDER = {"original": 0, "retrained": 1}

#: Columns of :func:`experiment_table`, in order.
TABLE_COLUMNS: tuple[str, ...] = (
    "ID", "Type", "Base", "Method", "Epochs", "Batch", "LR",
    "UA", "RA", "TUA", "TRA", "RT", "Cost", "PS", "MIA", "Avg. Gap", "U-LiRA", "Relearn", "Leak JS", "Created", "Owner",
)
#: Metric columns and their stored metric keys.
METRIC_KEYS: dict[str, str] = {
    "UA": "UA", "RA": "RA", "TUA": "TUA", "TRA": "TRA", "RT": "RT", "PS": "PS",
    "MIA": "MIA_efficacy", "Avg. Gap": "avg_gap",
    "U-LiRA": "ulira_acc", "Relearn": "relearn_steps", "Leak JS": "leakage_js",  # audits (mucomp.audits)
}
#: Which direction is better for each numeric column ("higher" / "lower"), for colour scales.
METRIC_DIRECTIONS: dict[str, str] = {
    "UA": "lower",
    "RA": "higher",
    "TUA": "lower",
    "TRA": "higher",
    "RT": "lower",
    "PS": "higher",
    "MIA": "higher",
    "Avg. Gap": "lower",
    "UA (SalUn)": "higher",
    "U-LiRA": "lower",
    "Relearn": "higher",
    "Leak JS": "lower",
}
#: One plain-words sentence per column: what it measures and which direction is better.
COLUMN_HELP: dict[str, str] = {
    "ID": "The experiment's short id; the same id names its stored results and weights.",
    "Type": "Original = trained on every class; Retrained = trained without the forget class (the gold "
            "standard); Unlearned = made by a method; Custom = uploaded; Published = a published unlearned model.",
    "Base": "The model the unlearning method started from (the Original or an earlier experiment).",
    "Method": "The unlearning method that produced the model.",
    "Epochs": "How many passes over the data the unlearning method made.",
    "Batch": "How many images the method used per update step.",
    "LR": "Learning rate: how large each update step of the method was.",
    "UA": "Unlearning accuracy: share of forget-class training images the model still recognises "
          "(lower is better; the Retrained model scores 0).",
    "RA": "Remaining accuracy: mean training accuracy over the other classes (higher is better).",
    "TUA": "Test unlearning accuracy: share of forget-class test images still recognised (lower is better).",
    "TRA": "Test remaining accuracy: mean test accuracy over the other classes (higher is better).",
    "RT": "Run time: seconds the unlearning itself took, without evaluation (lower is better).",
    "Cost": "Hardware-independent cost of the unlearning: samples back-propagated (forwarded samples and "
            "optimiser steps in the details). RT varies on shared machines; these counts do not.",
    "PS": "Privacy score, 51-point threshold grid (published): 1 = no threshold attack tells the model from "
          "retraining (higher is better). PS_exact (in Details) tries every value: PS_exact ≤ PS.",
    "MIA": "MIA-Efficacy: share of forget images a membership attack calls 'not trained on' (higher is better).",
    "Avg. Gap": "Average distance to the Retrained model over forget accuracy, RA, TRA and MIA-Efficacy "
                "(lower is better; 0 = behaves like retraining).",
    "Created": "When the experiment was stored (UTC).",
    "Owner": "The browser session that made the experiment; only it can delete the experiment.",
    "UA (SalUn)": "The literature's unlearning accuracy, 1 - forget-class training accuracy (higher is better).",
    "U-LiRA": "Per-example attack accuracy against shadow models: 0.5 = no image tells the method from retraining "
              "(lower is better, down to 0.5). Run it on Attack.",
    "Relearn": "Steps to relearn half the Original's forget accuracy, relative to the Retrained model (higher is "
               "better; 1 = like retraining). Run it on Attack.",
    "Leak JS": "Mean Jensen-Shannon divergence of the forget images' predictions from the Retrained model's (lower "
               "is better; 0 = the same).",
}
#: The README section every column's definition points to (written there, with how the figures
#: differ from the published system's and from the literature's).
DEFINITIONS_ANCHOR = "README.md#definitions-and-differences"
DEFINITIONS_POINTER = "See README › Definitions and differences."

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


def _base_label(base: Any) -> str:
    if base is None:
        return "—"
    return "Original" if base == "original" else str(base)


def _method_label(result: Mapping) -> str:
    label = result.get("method_label")
    if label:
        return str(label)
    kind = result.get("kind")
    if kind in ("original", "retrained"):
        return TYPE_LABELS[kind]
    return str(result.get("config", {}).get("method") or kind or "?")


def experiment_label(result: ResultLike) -> str:
    """A short human label for pickers and legends: ``"Original"``, ``"Retrained"`` or
    ``"<method label> · <id>"``."""
    result = as_result(result)
    if result.get("kind") in ("original", "retrained"):
        return TYPE_LABELS[result["kind"]]
    return f"{_method_label(result)} · {result['id']}"


#: The counts of a stored ``metrics["cost"]`` (see :class:`mucomp.methods.UnlearnResult`).
COST_KEYS = ("samples_forwarded", "samples_backpropagated", "optimizer_steps")


def cost_count(result: ResultLike, key: str = "samples_backpropagated") -> float:
    """One count of a result's ``metrics["cost"]`` (one of :data:`COST_KEYS`), as a float; NaN
    when the result has none (references, uploads, results stored before cost existed)."""
    cost = (as_result(result).get("metrics") or {}).get("cost")
    if not isinstance(cost, Mapping) or isinstance(cost.get(key), bool):
        return math.nan
    try:
        return _number(cost.get(key))
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
    rows = []
    for result in items:
        config, metrics = result.get("config") or {}, result.get("metrics") or {}
        row: dict[str, Any] = {
            "ID": str(result["id"]),
            "Type": TYPE_LABELS.get(result.get("kind"), str(result.get("kind"))),
            "Base": _base_label(config.get("base")),
            "Method": _method_label(result),
            "Epochs": _int_or_none(config.get("epochs")),
            "Batch": _int_or_none(config.get("batch_size")),
            "LR": _number(config.get("lr")),
        }
        for column, key in METRIC_KEYS.items():
            row[column] = _number(metrics.get(key))
        row["Cost"] = cost_count(result)
        row["Created"] = result.get("created_at")
        row["Owner"] = result.get("owner")
        if class_names is not None and metrics.get("accs") is not None:
            accs = _floats(metrics["accs"], f"{_describe(result)}: metrics.accs")
            if accs.size != len(class_names):
                raise IncompatibleResultsError(
                    f"{_describe(result)} has {accs.size} per-class accuracies but {len(class_names)} class names were given"
                )
            if per_class:
                row.update({f"Acc {name}": float(a) for name, a in zip(class_names, accs, strict=True)})
        row["_order"] = _TYPE_ORDER.get(result.get("kind"), 2)
        rows.append(row)
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
    for column in ("LR", *METRIC_KEYS, "Cost"):
        table[column] = table[column].astype(float)
    table["_undated"] = table["Created"].isna()  # undated rows last within their group
    table = table.sort_values(["_order", "_undated", "Created", "ID"], kind="stable", na_position="last")
    return table.drop(columns=["_order", "_undated"]).reset_index(drop=True)


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
            raise MissingBlockError(f"{_describe(result)}: per-epoch records must be objects with an 'epoch'")
        rows.append({
            "epoch": int(record["epoch"]),
            "forget_accuracy": _number(record.get("forget_accuracy")),
            "loss": _number(record.get("loss")),
            "seconds": _number(record.get("seconds")),
        })
    return pd.DataFrame(rows, columns=columns).sort_values("epoch").reset_index(drop=True)


# ---------------------------------------------------------------------------------------------
# Contrast: class-wise accuracy and prediction matrices


def class_accuracies(result: ResultLike, split: str = "train") -> np.ndarray:
    """Stored per-class accuracies ``[C]`` (``accs`` or ``t_accs``), NaN for a class without samples."""
    result = as_result(result)
    key = "accs" if _check_split(split) == "train" else "t_accs"
    metrics = block(result, "metrics", (key,))
    return _floats(metrics[key], f"{_describe(result)}: metrics.{key}")


def class_accuracy(
    result_a: ResultLike,
    result_b: ResultLike,
    forget_class: int | None = None,
    split: str = "train",
    *,
    class_names: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Per-class accuracy of Model A and Model B on one split.

    ``forget_class`` defaults to the results' own (given, it must match). Returns one row per
    class: ``class`` (int), ``name`` (``class_names[k]`` or ``str(k)``), ``acc_a``, ``acc_b``
    (fractions in [0, 1], NaN for a class without samples), ``diff = acc_a - acc_b`` and
    ``is_forget``.
    """
    a, b = as_result(result_a, "Model A"), as_result(result_b, "Model B")
    forget = _forget_classes([a, b], forget_class, ["Model A", "Model B"])
    acc_a, acc_b = class_accuracies(a, split), class_accuracies(b, split)
    if acc_a.size != acc_b.size:
        raise IncompatibleResultsError(f"Model A has {acc_a.size} classes and Model B {acc_b.size}")
    if class_names is not None and len(class_names) != acc_a.size:
        raise ValueError(f"{len(class_names)} class names given for {acc_a.size} classes")
    classes = np.arange(acc_a.size)
    names = [str(n) for n in class_names] if class_names is not None else [str(k) for k in classes]
    return pd.DataFrame({
        "class": classes,
        "name": names,
        "acc_a": acc_a,
        "acc_b": acc_b,
        "diff": acc_a - acc_b,
        "is_forget": np.isin(classes, forget),
    })


def retain_gap_of(table: pd.DataFrame) -> float:
    """Mean absolute ``diff`` over the retain classes of a :func:`class_accuracy` table (NaN
    classes skipped; NaN if none is left)."""
    retain = table.loc[~table["is_forget"].astype(bool), "diff"].to_numpy(dtype=np.float64)
    retain = np.abs(retain[~np.isnan(retain)])
    return float(retain.mean()) if retain.size else math.nan


def retain_gap(result_a: ResultLike, result_b: ResultLike, forget_class: int | None = None, split: str = "train") -> float:
    """Average absolute per-class accuracy difference between A and B over the retain classes
    (a fraction in [0, 1]; 0 = same accuracy on every retain class)."""
    return retain_gap_of(class_accuracy(result_a, result_b, forget_class, split))


def stored_prediction_matrix(result: ResultLike, split: str = "train", kind: str = "label") -> np.ndarray:
    """The stored prediction matrix ``[C, C]`` (rows: true class, columns: predicted class).

    ``kind="label"``: share of true-class-t images predicted p (rows sum to 1); ``kind="conf"``:
    mean softmax probability (T = 1) given to p. NaN rows for classes without samples.
    """
    result = as_result(result)
    if kind not in ("label", "conf"):
        raise ValueError(f"kind must be 'label' or 'conf', got {kind!r}")
    key = ("" if _check_split(split) == "train" else "t_") + f"{kind}_dist"
    metrics = block(result, "metrics", (key,))
    try:
        matrix = np.asarray([[math.nan if v is None else v for v in row] for row in metrics[key]], dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise MissingBlockError(f"{_describe(result)}: metrics.{key} must be a [C][C] list of numbers") from err
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise MissingBlockError(f"{_describe(result)}: metrics.{key} must be square, got shape {matrix.shape}")
    return matrix


# ---------------------------------------------------------------------------------------------
# Contrast: twin embedding

_EMBEDDING_FIELDS = ("indices", "x", "y", "pred", "probs_t2")
#: The softmax temperature of the stored ``embedding.probs_t2``.
STORED_EMBEDDING_TEMPERATURE = 2.0


def _embedding_arrays(result: dict) -> dict[str, np.ndarray]:
    emb = block(result, "embedding", _EMBEDDING_FIELDS)
    arrays = {
        "indices": np.asarray(emb["indices"], dtype=np.int64),
        "layout": np.column_stack([np.asarray(emb["x"], dtype=np.float64), np.asarray(emb["y"], dtype=np.float64)]),
        "pred": np.asarray(emb["pred"], dtype=np.int64),
        "probs": np.asarray(emb["probs_t2"], dtype=np.float64),
    }
    n = arrays["indices"].size
    if (
        arrays["indices"].ndim != 1
        or arrays["layout"].shape != (n, 2)
        or arrays["pred"].shape != (n,)
        or arrays["probs"].ndim != 2
        or arrays["probs"].shape[0] != n
    ):
        raise MissingBlockError(f"{_describe(result)}: its embedding block has fields of different lengths")
    if np.unique(arrays["indices"]).size != n:
        raise MissingBlockError(f"{_describe(result)}: its embedding repeats an image index")
    return arrays


def _positions(indices: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Row of each ``wanted`` dataset index inside ``indices`` (all present, no repeats)."""
    order = np.argsort(indices, kind="stable")
    return order[np.searchsorted(indices, wanted, sorter=order)]


def _train_labels(result: dict) -> np.ndarray:
    from mucomp.data import Scenario

    return Scenario(scenario_of(result)[0]).data.train.labels_np  # the split is the data set's alone


def twin_embedding(
    result_a: ResultLike,
    result_b: ResultLike,
    forget_class: int | None = None,
    labels: Any = None,
    *,
    temperature: float = 1.0,
) -> pd.DataFrame:
    """The table behind the twin embedding scatter, from both models' stored UMAP layouts.

    Neither layout is recomputed: the images both results embedded (A's order) are kept, and B's
    stored layout is mapped onto A's with :func:`mucomp.embedding.procrustes_align` over those
    shared images (translation, isotropic scale, rotation or reflection). A against itself gives
    ``x_b == x_a`` and ``y_b == y_a`` (up to rounding).

    Parameters
    ----------
    result_a, result_b:
        Stored results of one scenario, each with an ``embedding`` block.
    forget_class:
        Defaults to the results' own; given, it must match.
    labels:
        True labels of the whole **train** split indexed by dataset index, ``[N]`` ints, e.g.
        ``scenario.data.train.labels_np``. ``None`` loads the results' data set to read them
        (the embedded digits set is in memory; other data sets must be on disk).
    temperature:
        Softmax temperature of the probability columns. The stored block holds softmax(z / 2)
        (``probs_t2``); the default 1 gives the probabilities every page displays (the same as
        the Attack page's ``attack.probs``), via :func:`mucomp.metrics.retemper`.

    Returns
    -------
    pandas.DataFrame
        One row per shared image, the columns of :func:`mucomp.embedding.points_frame`:
        ``index`` (dataset index), ``true_class``, ``pred_a``, ``pred_b``, ``is_forget``, ``x_a``,
        ``y_a``, ``x_b``, ``y_b`` (arbitrary UMAP units; B aligned onto A), ``status_a``,
        ``status_b`` (:func:`mucomp.embedding.point_status`), ``conf_a``, ``conf_b`` (probability
        of the predicted class at ``temperature``), ``prob_a_0`` .. and ``prob_b_0`` .. (softmax at
        ``temperature``, T = 1 by default).
    """
    a, b = as_result(result_a, "Model A"), as_result(result_b, "Model B")
    forget_classes = _forget_classes([a, b], forget_class, ["Model A", "Model B"])
    ea, eb = _embedding_arrays(a), _embedding_arrays(b)
    if ea["probs"].shape[1] != eb["probs"].shape[1]:
        raise IncompatibleResultsError("Model A and Model B have different numbers of classes")
    shared = ea["indices"][np.isin(ea["indices"], eb["indices"])]
    if shared.size < 2:
        raise IncompatibleResultsError(
            f"Model A and Model B embedded {shared.size} common images; the twin view needs at least 2"
        )
    rows_a, rows_b = _positions(ea["indices"], shared), _positions(eb["indices"], shared)
    layout_a = ea["layout"][rows_a]
    layout_b, _ = procrustes_align(eb["layout"][rows_b], layout_a, scale="spread")  # one frame, not squeezed
    label_array = _train_labels(a) if labels is None else np.asarray(labels)
    if label_array.ndim != 1 or not np.issubdtype(label_array.dtype, np.integer):
        raise ValueError("labels must be a 1-D integer array: the train labels indexed by dataset index")
    if shared.min() < 0 or shared.max() >= label_array.size:
        raise ValueError(
            f"labels has {label_array.size} entries but the embedding uses dataset index {int(shared.max())}; "
            "pass the labels of the whole train split (scenario.data.train.labels_np)"
        )
    true_class = label_array[shared].astype(np.int64)
    if forget_classes:
        is_forget = np.isin(true_class, forget_classes)
    else:  # a random or index set: its images are the attack block's
        is_forget = np.isin(shared, np.asarray(block(a, "attack", ("indices",))["indices"], dtype=np.int64))
    return points_frame(
        shared,
        true_class,
        is_forget,
        layout_a,
        layout_b,
        ea["pred"][rows_a],
        eb["pred"][rows_b],
        retemper(ea["probs"][rows_a], STORED_EMBEDDING_TEMPERATURE, temperature),
        retemper(eb["probs"][rows_b], STORED_EMBEDDING_TEMPERATURE, temperature),
    )


# ---------------------------------------------------------------------------------------------
# Contrast: layer-wise similarity

CKA_REFERENCES = ("original", "retrained")
CKA_COLUMNS = ("model", "subset", "split", "part", "layer", "layer_index", "cka")


def cka_layers(result: ResultLike) -> list[str]:
    """The layer names of a result's CKA block, input to output."""
    result = as_result(result)
    return [str(layer) for layer in block(result, "cka", ("layers",))["layers"]]


def cka_frame_for(
    result_a: ResultLike,
    result_b: ResultLike | None,
    reference: str = "original",
    *,
    model_names: tuple[str, str] = ("A", "B"),
) -> pd.DataFrame:
    """Layer-wise CKA of Model A (and Model B) against one reference, in long form.

    ``reference`` is ``"original"`` or ``"retrained"``; ``result_b`` may be None (A only).
    Returns columns ``model`` (``model_names[0]`` / ``[1]``), ``subset`` (``train_forget``,
    ``train_retain``, ``test_forget``, ``test_retain``), ``split``, ``part`` (forget / retain),
    ``layer``, ``layer_index`` (position in the stored layer order, input first), ``cka``
    (in [0, 1] in practice; NaN where undefined). Both models must share the layer list.
    """
    if reference not in CKA_REFERENCES:
        raise ValueError(f"reference must be 'original' or 'retrained', got {reference!r}")
    from mucomp.similarity import cka_frame

    pairs = [(model_names[0], as_result(result_a, "Model A"))]
    if result_b is not None:
        pairs.append((model_names[1], as_result(result_b, "Model B")))
        check_same_scenario([r for _, r in pairs], ["Model A", "Model B"])
    frames, layers = [], None
    for name, result in pairs:
        cka = block(result, "cka", ("layers", reference))
        order = [str(layer) for layer in cka["layers"]]
        if layers is not None and order != layers:
            raise IncompatibleResultsError(f"Model A and Model B record different CKA layers: {layers} vs {order}")
        layers = order
        frame = cka_frame({reference: cka[reference]}, model=name)
        frame["cka"] = frame["cka"].astype(float)
        unknown = sorted(set(frame["layer"]) - set(order))
        if unknown:
            raise MissingBlockError(f"{_describe(result)}: CKA values for layers {unknown} not in its layer list")
        frame["layer_index"] = frame["layer"].map({layer: k for k, layer in enumerate(order)}).astype(int)
        frames.append(frame.drop(columns=["reference"]))
    out = pd.concat(frames, ignore_index=True)[list(CKA_COLUMNS)]
    return out.sort_values(["model", "subset", "layer_index"], kind="stable").reset_index(drop=True)


# ---------------------------------------------------------------------------------------------
# Attack

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
            raise MissingBlockError(f"{_describe(result)}: attack.{metric} must be numbers (null found?)") from err
        if values.shape != indices.shape:
            raise MissingBlockError(f"{_describe(result)}: attack.{metric} and attack.indices differ in length")
        if not np.isfinite(values).all():
            raise MissingBlockError(f"{_describe(result)}: attack.{metric} holds non-finite values")
        arrays[metric] = values
    if indices.size == 0:
        raise MissingBlockError(f"{_describe(result)}: its attack block holds no forget images")
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
    if retrained.get("kind") != "retrained":
        raise IncompatibleResultsError(
            f"the attack compares a model with the Retrained reference, but {_describe(retrained)} is not it"
        )
    check_same_scenario([model, retrained], ["the model", "the Retrained model"])
    u, r = attack_values(model, "the model"), attack_values(retrained, "the Retrained model")
    _check_same_samples(u, r, ("the model", "the Retrained model"))
    if key != "worst_case":
        privacy._check_metric(metric)
    search = n_thresholds if grid_search else None
    if key == "custom":
        choice = privacy.custom_threshold(u.values(metric), r.values(metric), metric, threshold, direction)
    elif key == "max_attack_score":
        choice = privacy.max_attack_score(u.values(metric), r.values(metric), metric, search)
    elif key == "max_success_rate":
        choice = privacy.max_success_rate(u.values(metric), r.values(metric), metric, search)
    elif key == "common":
        if other is None:
            raise ValueError("the common threshold needs the other model's result (other=...)")
        o = as_result(other, "the other model")
        check_same_scenario([model, o], ["the model", "the other model"])
        ov = attack_values(o, "the other model")
        _check_same_samples(u, ov, ("the model", "the other model"))
        choice, _ = privacy.common_threshold(u.values(metric), ov.values(metric), r.values(metric), metric, search)
    else:
        choice = privacy.worst_case(u.as_mapping(), r.as_mapping(), search)
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
            raise MissingBlockError(f"{_describe(result)}: attack.probs must be [n][C]")
        out.append(probs)
    check_same_scenario([result_a, result_b], ["Model A", "Model B"])
    if out[0].shape != out[1].shape:
        raise IncompatibleResultsError("Model A and Model B have different numbers of classes")
    return out[0], out[1]


def failed_reference_check(result: ResultLike) -> str | None:
    """The plain-words warning of a reference (or a published unlearned model) whose Hub file did
    not reproduce the test accuracy its publishers measured (its stored ``reference_check`` /
    ``published_check`` block says ``matches: false``), else None: local references, your own
    experiments and older stores carry no check."""
    stored = as_result(result, "a stored result")
    for key in ("reference_check", "published_check"):  # a Hub reference; a published unlearned model
        check = stored.get(key)
        if isinstance(check, dict) and check.get("matches") is False and isinstance(check.get("message"), str):
            return check["message"]
    return None


def reference_check_warnings(results: Iterable[ResultLike]) -> list[str]:
    """:func:`failed_reference_check`'s warning of every such reference in ``results``, in input
    order."""
    return [message for message in map(failed_reference_check, results) if message is not None]


def unreproduced_references(results: Iterable[ResultLike]) -> dict[str, str]:
    """``{experiment id: warning}`` of the references in ``results`` whose Hub file did not
    reproduce its published accuracy (:func:`failed_reference_check`), in input order."""
    found = {}
    for item in results:
        message = failed_reference_check(item)
        if message is not None:
            found[str(as_result(item, "a stored result")["id"])] = message
    return found
