"""Many-model evaluation from stored ensemble records (torch-free): Screen's F, challenge score and
KLoM columns, and the data of the Attack page's "Many models" tab.

An ensemble record (:class:`mucomp.store.ensembles.EnsembleResult`) belongs to a method
configuration and its Original, not to one experiment: every experiment of that configuration
(any unlearning seed) shows the same values. Everything here reads the stored numbers; nothing is
recomputed (the metrics are :mod:`mucomp.audits.challenge`'s, run when the ensemble is made).

- :func:`with_ensemble_columns`: the experiment table plus ``F``, ``Score``, ``KLoM`` and
  ``Ensemble N`` (empty where the configuration has no ensemble); :func:`ensemble_column_help`.
- :func:`epsilon_buckets`, :func:`epsilon_ranking`, :func:`confidence_distributions`,
  :func:`klom_frame`, :func:`method_scores`: the tab's figure data.
- The texts: :data:`F_TEXT`, :data:`SCORE_TEXT`, :data:`KLOM_TEXT`, :func:`resolution_text`,
  :func:`no_ensemble_text`, :func:`ensemble_command` (the estimate said before a job starts is
  :func:`mucomp.execution.ensembles.eta_text`'s).
"""

from __future__ import annotations

import math
import shlex
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from mucomp import catalogue
from mucomp.catalogue import method_label
from mucomp.results.access import ResultLike, as_result
from mucomp.specs import DATASETS
from mucomp.store.ensembles import (
    EnsembleResult,
    ensemble_key,
    retrained_ensemble_key,
    retrained_result_for,
)

#: The Screen columns an ensemble fills (F, Score, KLoM) and the hidden one that holds its N.
ENSEMBLE_COLUMNS = catalogue.ENSEMBLE_COLUMNS
N_COLUMN = "Ensemble N"
#: Ensemble sizes the app offers and its default per data set (a digits model trains in seconds).
ENSEMBLE_SIZES = (4, 8, 16, 32, 64, 128, 256, 512)

F_TEXT = (
    "**Forgetting quality F** (NeurIPS 2023 unlearning challenge). For every forget image, N unlearned models "
    "(one method configuration, one Original, N unlearning seeds) and N Retrained models (N training seeds) each "
    "give a confidence, log p_y − log Σ_{j≠y} p_j. The strongest threshold attack on those two sets of N numbers "
    "yields a privacy loss ε for the image (0: the sets can't be told apart). ε falls in a bucket of width 0.5; an "
    "image in bucket k earns 2^−k points, one past the resolution (below) earns none. F is the mean over the "
    "forget images: 1 = no image gives the method away, 0 = every image does (higher is better)."
)
SCORE_TEXT = (
    "**Challenge score** = F × (mean retain accuracy of the unlearned models / of the Retrained models) × (the same "
    "for test accuracy): forgetting that costs accuracy scores lower (higher is better)."
)
KLOM_TEXT = (
    "**KLoM** (EasyDUB). Per image, the margin z_y − logsumexp_{j≠y} z_j of every unlearned and every Retrained "
    "model, binned into 20 shared bins; KLoM is KL(unlearned ‖ retrained) between the two histograms (nats; 0 = the "
    "same distribution, lower is better). The table shows the 95th percentile over the forget images."
)
F_VS_PS = (
    "F and KLoM compare *distributions over many models* per image; PS and U-LiRA look at one model. A method can "
    "rank differently under them: F punishes images a method treats consistently unlike retraining, even when one "
    "model's attack values look ordinary."
)


def default_ensemble_size(dataset: str) -> int:
    """The ensemble size the app proposes: 32 on digits (a model takes seconds), 8 elsewhere."""
    return 32 if dataset == "digits" else 8


# --- Screen -----------------------------------------------------------------------------------
def ensemble_values(record: EnsembleResult | None) -> dict[str, float]:
    """``{"F", "Score", "KLoM", "Ensemble N"}`` of one record (NaN where none or not stored)."""
    if record is None:
        return {**dict.fromkeys(ENSEMBLE_COLUMNS, math.nan), N_COLUMN: math.nan}
    return {"F": _float(record.forget_quality), "Score": _float(record.score), "KLoM": _float(record.klom_p95.forget),
            N_COLUMN: float(record.n_models)}


def _float(value: float | None) -> float:
    return math.nan if value is None else float(value)


def _key_or_none(config: Any) -> str | None:
    try:
        return ensemble_key(config) if isinstance(config, Mapping) else None
    except (TypeError, ValueError):
        return None


def with_ensemble_columns(table: pd.DataFrame, results: Sequence[ResultLike],
                          records: Sequence[EnsembleResult]) -> pd.DataFrame:
    """``table`` (:func:`mucomp.results.experiment_table` of ``results``) with the ensemble columns
    appended: ``F``, ``Score``, ``KLoM`` (floats) and ``Ensemble N`` (nullable Int64) of the
    unlearned ensemble of each experiment's configuration and Original
    (:func:`mucomp.store.ensembles.ensemble_result_for`); NaN / <NA> for the references, uploads and
    configurations without an ensemble. A new frame; ``table``'s rows and order are kept."""
    by_key = {r.key: r for r in records if r.kind == "unlearned"}
    record_of: dict[str, EnsembleResult | None] = {}
    for item in results:
        result = as_result(item)
        key = _key_or_none(result.get("config")) if result.get("kind") == "unlearned" else None
        record_of[str(result.get("id"))] = by_key.get(key) if key else None
    rows = [ensemble_values(record_of.get(str(i))) for i in table["ID"]]
    out = table.copy()
    for column in (*ENSEMBLE_COLUMNS, N_COLUMN):
        out[column] = pd.Series([row[column] for row in rows], index=table.index, dtype=float)
    out[N_COLUMN] = out[N_COLUMN].round().astype("Int64")
    return out


def has_ensembles(table: pd.DataFrame) -> bool:
    """Whether any row of ``table`` (:func:`with_ensemble_columns`) has an ensemble value."""
    return N_COLUMN in table.columns and bool(table[N_COLUMN].notna().any())


def ensemble_column_help(column: str, table: pd.DataFrame, retrained: EnsembleResult | None = None) -> str:
    """The tooltip of an ensemble column: what it measures (the catalogue's sentence), the ensemble
    sizes N behind the shown values (``"N = 32 models (3 rows), 8 (1)"``) and, for F, the Retrained
    ensemble's self-score (the noise floor)."""
    text = catalogue.COLUMN_HELP[column]
    if N_COLUMN in table.columns:
        sizes = table[N_COLUMN].dropna().astype(int).value_counts().sort_index(ascending=False)
        if len(sizes):
            parts = [f"{n} ({count} row{'s' if count != 1 else ''})" for n, count in sizes.items()]
            text += f" Ensembles here: N = {', '.join(parts)} unlearned models each, against the Retrained ensemble."
    if column == "F" and retrained is not None and retrained.self_score is not None:
        text += (f" Retraining scores F = {retrained.self_score:.3f} against itself (two halves of its "
                 f"{retrained.n_models} models): the noise floor.")
    return text + " One value per method configuration, not per run; see Attack → Many models."


# --- Attack: the per-example figures --------------------------------------------------------
def _bucket_of(points: np.ndarray, buckets: int) -> np.ndarray:
    """The bucket k of each image from its stored points 2^-k (0 points: past the resolution,
    bucket ``buckets``); reading the points keeps the chart consistent with the stored F."""
    with np.errstate(divide="ignore"):
        k = np.where(points > 0, np.rint(-np.log2(np.maximum(points, 1e-300))), buckets)
    return np.clip(k, 0, max(buckets, 0)).astype(int)


def epsilon_buckets(record: EnsembleResult) -> pd.DataFrame:
    """How many forget images fall in each ε bucket and the points each earns.

    One row per bucket k = 0 .. B-1 (ε in [k·w, (k+1)·w), w = max_epsilon / B, usually 0.5) and a
    last row k = B for ε ≥ max_epsilon (no points). Columns: ``bucket`` (int), ``low``, ``high``
    (ε; ``high`` inf for the last), ``label`` (text), ``images`` (count), ``share`` (of the forget
    images), ``points`` (per image: 2^-k, 0 for the last), ``contribution`` (share × points; the
    column sums to F).
    """
    buckets = int(record.resolution.buckets)
    width = record.resolution.max_epsilon / buckets if buckets else 0.5
    points = np.asarray(record.points, dtype=float)
    counts = np.bincount(_bucket_of(points, buckets), minlength=buckets + 1)[: buckets + 1]
    rows = []
    for k in range(buckets + 1):
        low = k * width
        last = k == buckets
        high = math.inf if last else (k + 1) * width
        label = f"ε ≥ {low:g}" if last else f"[{low:g}, {high:g})"
        share = counts[k] / max(1, points.size)
        earned = 0.0 if last else 2.0 ** -k
        rows.append({"bucket": k, "low": low, "high": high, "label": label, "images": int(counts[k]),
                     "share": float(share), "points": earned, "contribution": float(share * earned)})
    return pd.DataFrame(rows)


def epsilon_ranking(record: EnsembleResult) -> pd.DataFrame:
    """The forget images ranked by ε, most exposed first (ties: higher KLoM first, then forget-set
    order). Columns: ``rank`` (1 = highest ε), ``index`` (train-split index), ``epsilon``,
    ``points``, ``klom``, ``unlearned_median``, ``retrained_median`` (the median confidence over
    each ensemble; NaN when the record stores no confidences)."""
    frame = pd.DataFrame({"index": record.forget_indices, "epsilon": record.epsilons, "points": record.points,
                          "klom": record.klom.forget})
    for side in ("unlearned", "retrained"):
        rows = getattr(record.confidences, side)
        frame[f"{side}_median"] = np.median(np.asarray(rows, dtype=float), axis=0) if rows else math.nan
    frame = frame.sort_values(["epsilon", "klom"], ascending=False, kind="stable").reset_index(drop=True)
    frame.insert(0, "rank", range(1, len(frame) + 1))
    return frame


def confidence_distributions(record: EnsembleResult, index: int) -> dict[str, Any] | None:
    """The two distributions the challenge paper draws for one forget image (train index
    ``index``): ``{"unlearned": [N], "retrained": [N_r]}`` confidences (logit-scaled, log p_y −
    log Σ_{j≠y} p_j) plus the image's ``epsilon``, ``points`` and ``klom``; None when the record
    stores no confidences. ValueError when ``index`` is not one of its forget images."""
    try:
        k = record.forget_indices.index(int(index))
    except ValueError:
        raise ValueError(f"image #{index} is not a forget image of this ensemble") from None
    if not record.confidences.unlearned or not record.confidences.retrained:
        return None
    return {"index": int(index),
            "unlearned": np.asarray([row[k] for row in record.confidences.unlearned], dtype=float),
            "retrained": np.asarray([row[k] for row in record.confidences.retrained], dtype=float),
            "epsilon": float(record.epsilons[k]), "points": float(record.points[k]), "klom": float(record.klom.forget[k])}


def klom_frame(record: EnsembleResult) -> pd.DataFrame:
    """Per-example KLoM of the forget images, largest first: ``rank``, ``index``, ``klom`` (nats),
    ``epsilon``; ``attrs["p95"]`` is the stored 95th percentile."""
    frame = pd.DataFrame({"index": record.forget_indices, "klom": record.klom.forget, "epsilon": record.epsilons})
    frame = frame.sort_values("klom", ascending=False, kind="stable").reset_index(drop=True)
    frame.insert(0, "rank", range(1, len(frame) + 1))
    frame.attrs["p95"] = record.klom_p95.forget
    return frame


# --- Attack: method against method ----------------------------------------------------------
def _scenario_key(config: Mapping[str, Any]) -> str | None:
    try:
        return retrained_ensemble_key(dict(config))
    except (KeyError, TypeError, ValueError):
        return None


def record_labels(records: Sequence[EnsembleResult], listing: Sequence[ResultLike] = ()) -> dict[str, str]:
    """A legend label per record key: the method's label (from a stored experiment of that
    configuration when ``listing`` has one, else its name), with the settings that tell two
    configurations of one method apart and the Original's training seed when those differ."""
    names: dict[str, str] = {}
    for item in listing:
        result = as_result(item)
        key = _key_or_none(result.get("config")) if result.get("kind") == "unlearned" else None
        if key:
            names.setdefault(key, method_label(result))
    labels = {r.key: names.get(r.key, r.method) for r in records}
    seeds = {r.train_seed for r in records}
    for record in records:
        mine = _settings(record.config)
        others = [_settings(o.config) for o in records if o.method == record.method and o.key != record.key]
        differing = [k for k, v in mine.items() if any(o.get(k) != v for o in others)]
        extra = [f"{k} {_flag_value(mine[k])}" for k in differing[:2]]
        if len(seeds) > 1:
            extra.append(f"t{record.train_seed}")
        labels[record.key] += "".join(f" · {e}" for e in extra)
    return labels


def method_scores(records: Sequence[EnsembleResult], config: Mapping[str, Any],
                  labels: Mapping[str, str] | None = None) -> tuple[pd.DataFrame, float | None]:
    """Every unlearned ensemble of ``config``'s scenario, for the method-against-method chart, and
    the Retrained ensemble's self-score (F of two disjoint halves of it; None without one).

    Columns: ``key``, ``label`` (``labels`` or the method name), ``method``, ``F``, ``score``,
    ``klom_p95``, ``n_models``, ``n_retrained``, ``current`` (the ensemble of ``config`` itself);
    rows by F, best first.
    """
    scenario = _scenario_key(config)
    current = _key_or_none(dict(config))
    chosen = [r for r in records if r.kind == "unlearned" and scenario and _scenario_key(r.config) == scenario]
    labels = labels or {}
    frame = pd.DataFrame([{
        "key": r.key, "label": labels.get(r.key, r.method), "method": r.method,
        "F": _float(r.forget_quality), "score": _float(r.score), "klom_p95": _float(r.klom_p95.forget),
        "n_models": r.n_models, "n_retrained": r.n_retrained, "current": r.key == current,
    } for r in chosen], columns=["key", "label", "method", "F", "score", "klom_p95", "n_models", "n_retrained",
                                  "current"])
    frame = frame.sort_values("F", ascending=False, kind="stable", na_position="last").reset_index(drop=True)
    retrained = retrained_result_for(dict(config), list(records))
    return frame, (retrained.self_score if retrained is not None else None)


# --- texts ------------------------------------------------------------------------------------
def resolution_text(record: EnsembleResult) -> str:
    """What N allows: ``"N = 32 unlearned and 32 Retrained models resolve ε up to 4 (8 buckets of
    0.5): an image at ε ≥ 4 earns no points, and F cannot tell stronger leaks apart."``"""
    res = record.resolution
    width = res.max_epsilon / res.buckets if res.buckets else 0.5
    return (f"N = {record.n_models} unlearned and {record.n_retrained} Retrained models resolve ε up to "
            f"{res.max_epsilon:g} ({res.buckets} buckets of {width:g}): an image at ε ≥ {res.max_epsilon:g} earns no "
            "points, and F cannot tell stronger leaks apart. More models resolve more (the challenge used 512, up to "
            "ε = 7).")


def _settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """A config's common hyper-parameters and the method's own, in one dict."""
    return {**{k: config.get(k) for k in ("epochs", "lr", "batch_size")}, **(config.get("params") or {})}


def _flag_value(value: Any) -> str:
    """A value as a shell word (quoted only where the shell needs it)."""
    return shlex.quote(f"{value:g}" if isinstance(value, float) else str(value))


def ensemble_command(config: Mapping[str, Any], n: int) -> str:
    """The command line that makes this configuration's ensemble of ``n`` models: the flags of
    ``mucomp run`` (data set, forget set, seeds, method and its settings) plus ``--n``."""
    parts = ["mucomp ensemble", f"--dataset {config.get('dataset', 'digits')}"]
    forget = config.get("forget")
    if isinstance(forget, str) and not forget.startswith("indices:"):
        parts.append(f"--forget {_flag_value(forget)}")
    elif config.get("forget_class") is not None:
        parts.append(f"--forget-class {_flag_value(config['forget_class'])}")
    spec = DATASETS.get(str(config.get("dataset")))
    if config.get("arch") and (spec is None or config["arch"] != spec.arch):
        parts.append(f"--arch {_flag_value(config['arch'])}")
    parts.append(f"--seed {int(config.get('train_seed', 0) or 0)}")
    if config.get("data_seed"):
        parts.append(f"--data-seed {int(config['data_seed'])}")
    parts.append(f"--method {_flag_value(config.get('method', '?'))}")
    for key, flag in (("epochs", "--epochs"), ("lr", "--lr"), ("batch_size", "--batch-size")):
        if config.get(key) is not None:
            parts.append(f"{flag} {_flag_value(config[key])}")
    parts += [f"--param {shlex.quote(f'{k}={v:g}' if isinstance(v, float) else f'{k}={v}')}"
              for k, v in (config.get("params") or {}).items()]
    parts.append(f"--n {int(n)}")
    return " ".join(parts)


#: What the ensemble job makes, said where a configuration has no ensemble yet.
ENSEMBLE_JOB_TEXT = ("It makes N unlearned models (N unlearning seeds from this experiment's Original) and, once per "
                     "scenario, N Retrained models shared by every method.")


def no_ensemble_text(config: Mapping[str, Any], n: int) -> str:
    """What to do when a configuration has no ensemble yet (markdown; the command in a code span)."""
    return (f"No ensemble yet for this method configuration: run `{ensemble_command(config, n)}` or press the "
            f"button. {ENSEMBLE_JOB_TEXT}")


__all__ = [
    "ENSEMBLE_COLUMNS", "ENSEMBLE_JOB_TEXT", "ENSEMBLE_SIZES", "F_TEXT", "F_VS_PS", "KLOM_TEXT", "N_COLUMN", "SCORE_TEXT",
    "confidence_distributions", "default_ensemble_size", "ensemble_column_help", "ensemble_command",
    "ensemble_values", "epsilon_buckets", "epsilon_ranking", "has_ensembles", "klom_frame",
    "method_scores", "no_ensemble_text", "record_labels", "resolution_text", "with_ensemble_columns",
]
