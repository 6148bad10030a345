"""The Contrast page's data, from two stored results: class-wise accuracy, prediction matrices,
the twin embedding (both stored UMAP layouts, B aligned onto A), layer-wise CKA, and the stored
leakage and probe audits (plain pandas / numpy; nothing here runs a model)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from mucomp.data import load_dataset
from mucomp.embedding import points_frame, procrustes_align
from mucomp.metrics import retemper
from mucomp.results.access import (
    IncompatibleResultsError,
    MissingBlockError,
    ResultLike,
    as_result,
    block,
    check_same_scenario,
    check_split,
    describe,
    floats,
    forget_classes,
    scenario_of,
)
from mucomp.similarity import cka_frame


def class_accuracies(result: ResultLike, split: str = "train") -> np.ndarray:
    """Stored per-class accuracies ``[C]`` (``accs`` or ``t_accs``), NaN for a class without samples."""
    result = as_result(result)
    key = "accs" if check_split(split) == "train" else "t_accs"
    metrics = block(result, "metrics", (key,))
    return floats(metrics[key], f"{describe(result)}: metrics.{key}")


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
    forget = forget_classes([a, b], forget_class, ["Model A", "Model B"])
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
    key = ("" if check_split(split) == "train" else "t_") + f"{kind}_dist"
    metrics = block(result, "metrics", (key,))
    try:
        matrix = np.asarray([[math.nan if v is None else v for v in row] for row in metrics[key]], dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise MissingBlockError(f"{describe(result)}: metrics.{key} must be a [C][C] list of numbers") from err
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise MissingBlockError(f"{describe(result)}: metrics.{key} must be square, got shape {matrix.shape}")
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
    if emb.get("labels") is not None:
        arrays["labels"] = np.asarray(emb["labels"], dtype=np.int64)
    n = arrays["indices"].size
    if (
        arrays["indices"].ndim != 1
        or arrays["layout"].shape != (n, 2)
        or arrays["pred"].shape != (n,)
        or arrays["probs"].ndim != 2
        or arrays["probs"].shape[0] != n
        or arrays.get("labels", arrays["pred"]).shape != (n,)
    ):
        raise MissingBlockError(f"{describe(result)}: its embedding block has fields of different lengths")
    if np.unique(arrays["indices"]).size != n:
        raise MissingBlockError(f"{describe(result)}: its embedding repeats an image index")
    return arrays


def _positions(indices: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Row of each ``wanted`` dataset index inside ``indices`` (all present, no repeats)."""
    order = np.argsort(indices, kind="stable")
    return order[np.searchsorted(indices, wanted, sorter=order)]


def _train_labels(result: dict) -> np.ndarray:
    """The train split's labels of the result's data set (loaded: the split is the data set's alone)."""
    return load_dataset(scenario_of(result)[0]).train.labels_np


def _true_classes(result: dict, arrays: dict, shared: np.ndarray, labels: Any) -> np.ndarray:
    """The true classes of the embedded images ``shared``: stored with the layout (results since
    schema version 4), else from ``labels`` (the train labels by dataset index) or the data set."""
    if labels is None and "labels" in arrays:
        return arrays["labels"][_positions(arrays["indices"], shared)]
    label_array = _train_labels(result) if labels is None else np.asarray(labels)
    if label_array.ndim != 1 or not np.issubdtype(label_array.dtype, np.integer):
        raise ValueError("labels must be a 1-D integer array: the train labels indexed by dataset index")
    if shared.min() < 0 or shared.max() >= label_array.size:
        raise ValueError(
            f"labels has {label_array.size} entries but the embedding uses dataset index {int(shared.max())}; "
            "pass the labels of the whole train split (scenario.data.train.labels_np)"
        )
    return label_array[shared].astype(np.int64)


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
    forgotten = forget_classes([a, b], forget_class, ["Model A", "Model B"])
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
    true_class = _true_classes(a, ea, shared, labels)
    if forgotten:
        is_forget = np.isin(true_class, forgotten)
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
        _shown_probabilities(a, ea["probs"][rows_a], shared, temperature),
        _shown_probabilities(b, eb["probs"][rows_b], shared, temperature),
    )


def _shown_probabilities(result: dict, probs_t2: np.ndarray, indices: np.ndarray, temperature: float) -> np.ndarray:
    """``[n, C]`` probabilities at ``temperature`` of the embedded images ``indices``: at T = 1 a
    forget image takes its stored ``attack.probs`` row, so it shows the very numbers the Attack
    page shows (both blocks are stored rounded; re-tempering the rounded ``probs_t2`` would differ
    in the last places); every other image is re-tempered from ``probs_t2``."""
    shown = retemper(probs_t2, STORED_EMBEDDING_TEMPERATURE, temperature)
    attack = result.get("attack") or {}
    if temperature != 1.0 or "indices" not in attack or "probs" not in attack:
        return shown
    attacked = np.asarray(attack["indices"], dtype=np.int64)
    stored = np.asarray(attack["probs"], dtype=np.float64)
    if attacked.size == 0 or stored.shape != (attacked.size, shown.shape[1]):
        return shown
    order = np.argsort(attacked)
    rows = order[np.searchsorted(attacked, indices, sorter=order).clip(max=attacked.size - 1)]
    hits = attacked[rows] == indices
    shown[hits] = stored[rows[hits]]
    return shown


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
            raise MissingBlockError(f"{describe(result)}: CKA values for layers {unknown} not in its layer list")
        frame["layer_index"] = frame["layer"].map({layer: k for k, layer in enumerate(order)}).astype(int)
        frames.append(frame.drop(columns=["reference"]))
    out = pd.concat(frames, ignore_index=True)[list(CKA_COLUMNS)]
    return out.sort_values(["model", "subset", "layer_index"], kind="stable").reset_index(drop=True)


# ---------------------------------------------------------------------------------------------
# Contrast: the stored audits


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
            auc = _stored_auc(probes.get(layer))  # null: no AUC (e.g. no test forget images)
            rows.append({"model": model, "layer": layer, "layer_index": index, "auc": auc,
                         "excess": auc - _stored_auc(retrained.get(layer))})
    return pd.DataFrame(rows, columns=["model", "layer", "layer_index", "auc", "excess"])


def _stored_auc(value: Any) -> float:
    """A stored probe AUC as a float; NaN where none was stored or it is null (a random forget
    set has no test forget images, so its test AUCs are null)."""
    return math.nan if value is None else float(value)
