"""Importing the published comparator's experiments (``mucomp import FILE | FOLDER | CHECKOUT``).

The published Machine Unlearning Comparator stores one JSON file per evaluated model (its format:
:mod:`mucomp.sharing.comparator_schema`). Each is the CIFAR-10 ResNet-18 scenario with the Hub
references (the comparator loads the same ``jaeunglee/resnet18-cifar10-unlearning`` files mucomp
loads), forget class ``FC``. :func:`import_comparator` reads a file, a folder of them
(``{c}/{id}.json``, or one class's files) or a checkout of the comparator repository
(``frontend/src/constants/data`` and ``backend/data``), checks every file completely before it
writes anything, and stores each as an experiment of kind ``"comparator"`` ("Published
(comparator)") without weights:

- id ``cmp{c}-{ID}`` (lower case), so importing a file again finds it; the Type (Original /
  Retrained / Unlearned / Pretrained) in ``config.comparator_type``; the method as mucomp's key
  where the comparator runs the same algorithm (:data:`METHODS`), else ``comparator:<name>``;
- ``metrics``: UA / RA / TUA / TRA, RT (``RTE``, seconds), the per-class accuracies and the four
  prediction matrices as stored; ``PS_published`` = the file's ``FQS``; ``PS`` / ``PS_exact``
  computed by :mod:`mucomp.privacy` on the file's attack values against the comparator Retrained
  model's values of the same images (the Retrained file of the import, else one already stored);
  MIA-Efficacy and Avg. Gap null (the files hold no retain / test outputs);
- ``attack``: the values sorted by image index, ``probs`` at T = 1 re-tempered from the points'
  T = 2 probabilities (display only), the worst-case attacks, and ``published_curves`` (the file's
  51-point curves); ``comparator.curves_reproduced`` says whether mucomp's sweep reproduces them;
- ``embedding``: the points (image, true and predicted class, x, y, softmax(z / 2));
- ``cka``: the diagonal of the comparator's layer-by-layer CKA matrices (layer k of the reference
  against layer k of the model), per reference (Original, Retrained) and subset;
- ``comparator``: where it came from (file, SHA-256, ID, Type, Method, Base, CreatedAt, FQS, PA).

Torch-free: reading, checking and storing needs numpy, pandas and pydantic only.
"""

from __future__ import annotations

import hashlib
import os
import re
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mucomp import privacy
from mucomp.forget_sets import of_classes
from mucomp.metrics import retemper
from mucomp.sharing.comparator_schema import (
    ARCH,
    CLASSES,
    CURVE_KEYS,
    DATASET,
    MAX_FILE_BYTES,
    ComparatorFile,
    ComparatorFileError,
    parse_comparator_bytes,
)
from mucomp.store import ExperimentExistsError, ExperimentStore, StoreError

#: The stored kind of an imported comparator experiment (``catalogue.TYPE_LABELS``).
KIND = "comparator"
REPOSITORY = "gnueaj/Machine-Unlearning-Comparator"
#: The training seed mucomp records for the Hub references of a CIFAR-10 ResNet-18 scenario: the
#: Hub files ignore it (:func:`mucomp.references.load_reference` downloads the same file for every
#: seed) and Home, the CLI and the links start at 0, so the references and every user run of that
#: scenario are stored under seed 0 unless a user picks another one.
TRAIN_SEED = 0
DATA_SEED = 0
#: Comparator method names -> mucomp's method keys, for the same algorithm. The comparator's SalUn
#: is its own variant (top-75 % mask from five forget batches, labels from the other classes, no
#: restore), which mucomp runs as ``salun_comparator``; its SCRUB settings (loss weights) differ
#: from mucomp's defaults; its GA+FT, GA+SL+FT (V2) and Custom have no mucomp counterpart and are
#: stored as ``comparator:<name>``.
METHODS = {"FineTuning": "ft", "GradientAscent": "ga", "RandomLabeling": "rl", "SCRUB": "scrub",
           "SalUn": "salun_comparator"}
#: Where a checkout of the comparator repository keeps experiment files.
CHECKOUT_FOLDERS = ("frontend/src/constants/data", "backend/data")
#: Most files and bytes one import reads: every file is checked, and held parsed, before anything is
#: stored (peak memory of `mucomp import` measured 142 MB for 5 demo files, 226 MB for 50: about 2 MB
#: a file). A larger backend folder imports class by class.
MAX_FILES = 2_000
MAX_TOTAL_BYTES = 256 * 1024**2
#: Decimal places of the derived per-image probabilities (as mucomp stores its own).
PROBABILITY_DECIMALS = 4
#: The softmax temperature of the points' stored probabilities.
POINTS_TEMPERATURE = 2.0


class ComparatorImportError(ValueError):
    """Files that can't be imported (``problems``: one ``"file: reason"`` each); nothing was stored."""

    def __init__(self, problems: list[str]) -> None:
        shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        super().__init__(f"{len(problems)} file(s) can't be imported, so nothing was imported: {shown}")
        self.problems = problems


@dataclass(frozen=True)
class ComparatorSource:
    """One checked comparator file: ``name`` (as the user sees it), its content and SHA-256."""

    name: str
    data: ComparatorFile
    sha256: str

    @property
    def id(self) -> str:
        return experiment_id(self.data.FC, self.data.ID)


@dataclass
class ComparatorImport:
    """What :func:`import_comparator` did: ids ``imported`` and ``skipped`` (already stored),
    the ``scenarios`` (forget-set texts) they belong to, and ``notes`` worth telling the user."""

    imported: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    scenarios: set[str] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)


def experiment_id(forget_class: int, comparator_id: str) -> str:
    """The store id of comparator experiment ``comparator_id`` of class ``forget_class``:
    ``cmp3-0e42`` (a valid store id: lower case, ``-`` for anything else)."""
    return f"cmp{int(forget_class)}-" + re.sub(r"[^a-z0-9-]", "-", str(comparator_id).lower())[:32]


#: The first bytes of a zip archive: a local file header, or the end record of an empty zip.
ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")


def looks_like_zip(path: str | os.PathLike) -> bool:
    """Whether ``path`` is meant as a zip archive: its name ends in ``.zip``, it starts with a zip
    signature, or :func:`zipfile.is_zipfile` finds its directory. A damaged or truncated zip
    (no readable directory) still counts, so its import says it is a broken zip, not that it is
    broken JSON."""
    p = Path(path)
    if p.suffix.lower() == ".zip":
        return True
    try:
        with p.open("rb") as handle:
            if handle.read(4) in ZIP_MAGIC:
                return True
    except OSError:
        return False
    return zipfile.is_zipfile(p)


def is_comparator_path(path: str | os.PathLike) -> bool:
    """Whether ``mucomp import`` should read ``path`` as comparator files: a folder, or a regular
    file that is not a zip archive (:func:`looks_like_zip`: a zip is an export of mucomp's own)."""
    p = Path(path)
    if p.is_dir():
        return True
    return p.is_file() and not looks_like_zip(p)


# --- finding and reading ------------------------------------------------------------------------
def find_files(path: str | os.PathLike) -> list[tuple[Path, str]]:
    """``(file, display name)`` of every comparator file under ``path``, sorted: the file itself;
    a checkout's :data:`CHECKOUT_FOLDERS`; a folder's ``{c}/*.json`` class folders; else the
    folder's own ``*.json``. Raises FileNotFoundError when there is none."""
    root = Path(path)
    if root.is_file():
        return [(root, root.name)]
    if not root.is_dir():
        raise FileNotFoundError(f"no file or folder {str(path)!r}")
    folders = [root / sub for sub in CHECKOUT_FOLDERS if (root / sub).is_dir()] or [root]
    found: list[tuple[Path, str]] = []
    for folder in folders:
        classes = sorted(d for d in folder.iterdir() if d.is_dir() and d.name.isdigit())
        files = [f for d in classes for f in sorted(d.glob("*.json"))] or sorted(folder.glob("*.json"))
        found += [(f, str(f.relative_to(root))) for f in files if f.is_file()]
        if len(found) > MAX_FILES:
            raise ComparatorImportError([f"{path}: more than {MAX_FILES} JSON files; import one class folder at a time"])
    if not found:
        raise FileNotFoundError(f"{path} holds no comparator experiment files ({{class}}/{{id}}.json or *.json)")
    total = sum(f.stat().st_size for f, _ in found)
    if total > MAX_TOTAL_BYTES:
        raise ComparatorImportError([f"{path}: {total / 1024**2:.0f} MB of JSON files, more than the "
                                     f"{MAX_TOTAL_BYTES // 1024**2} MB one import reads; import one class folder at a time"])
    return found


def read_source(file: Path, name: str) -> ComparatorSource:
    """One file checked completely (:func:`parse_comparator_bytes`); ComparatorFileError otherwise."""
    try:
        if file.stat().st_size > MAX_FILE_BYTES:  # refused before it is read into memory
            raise ComparatorFileError(name, f"larger than {MAX_FILE_BYTES // 1024**2} MB, more than a comparator "
                                            "experiment file may have")
        data = file.read_bytes()
    except OSError as err:
        raise ComparatorFileError(name, f"can't be read ({type(err).__name__})") from None
    return ComparatorSource(name, parse_comparator_bytes(data, name), hashlib.sha256(data).hexdigest())


def read_sources(path: str | os.PathLike) -> list[ComparatorSource]:
    """Every comparator file under ``path``, each checked, without repeats (a checkout holds the
    references twice); ComparatorImportError names every file that fails and why."""
    sources: dict[str, ComparatorSource] = {}
    problems = []
    for file, name in find_files(path):
        try:
            source = read_source(file, name)
        except ComparatorFileError as err:
            problems.append(str(err))
            continue
        seen = sources.get(source.id)
        if seen is not None and seen.sha256 != source.sha256:
            problems.append(f"{name}: class {source.data.FC}, ID {source.data.ID} again, with other content than "
                            f"{seen.name}; import them separately into different stores")
        sources.setdefault(source.id, source)
    if problems:
        raise ComparatorImportError(problems)
    return list(sources.values())


# --- mapping one file -----------------------------------------------------------------------------
@dataclass(frozen=True)
class AttackValues:
    """A model's attack values of the forget images, sorted by image index (``[m]`` each)."""

    indices: np.ndarray
    entropy: np.ndarray
    confidence: np.ndarray

    @classmethod
    def of_file(cls, data: ComparatorFile) -> AttackValues:
        rows = sorted((v.img, v.entropy, v.confidence) for v in data.attack.values)
        columns = np.asarray(rows, dtype=np.float64).T
        return cls(columns[0].astype(np.int64), columns[1], columns[2])

    @classmethod
    def of_result(cls, result: dict) -> AttackValues:
        attack = result["attack"]
        return cls(np.asarray(attack["indices"], dtype=np.int64), np.asarray(attack["entropy"], dtype=np.float64),
                   np.asarray(attack["confidence"], dtype=np.float64))

    def values(self, metric: str) -> np.ndarray:
        return self.entropy if metric == "entropy" else self.confidence

    def as_mapping(self) -> dict[str, np.ndarray]:
        return {"entropy": self.entropy, "confidence": self.confidence}


def reproduce_curves(model: AttackValues, retrained: AttackValues, curves: dict[str, dict[str, list]]) -> int:
    """How many stored curve values (of 4 curves x 51 thresholds x threshold / fpr / fnr /
    attack_score) mucomp's 51-point sweep (:func:`mucomp.privacy.threshold_sweep`) on the same
    values does not give when rounded to 3 decimals as the comparator rounds (numpy's rounding)."""
    mismatches = 0
    for key in CURVE_KEYS:
        metric, direction = key.split("_", 1)
        sweep = privacy.threshold_sweep(model.values(metric), retrained.values(metric), metric)
        ours = sweep[sweep["direction"] == direction]
        for column in ("threshold", "fpr", "fnr", "attack_score"):
            stored = np.asarray(curves[key][column], dtype=np.float64)
            mismatches += int(np.sum(np.abs(np.round(ours[column].to_numpy(), 3) - stored) > 1e-9))
    return mismatches


def _curves(data: ComparatorFile) -> dict[str, dict[str, list]]:
    """The file's four curves, column-wise (compact): ``{key: {threshold, fpr, fnr, attack_score: [51]}}``."""
    out = {}
    for key in CURVE_KEYS:
        points = getattr(data.attack.results, key)
        out[key] = {column: [float(getattr(p, column)) for p in points]
                    for column in ("threshold", "fpr", "fnr", "attack_score")}
    return out


def _point_probabilities(data: ComparatorFile) -> tuple[list[int], np.ndarray]:
    """Image indices and ``[n, C]`` softmax(z / 2) probabilities of the points (left-out entries 0)."""
    probs = np.zeros((len(data.points), CLASSES))
    for row, point in enumerate(data.points):
        for key, value in point[6].items():
            probs[row, int(key)] = value
    return [int(p[2]) for p in data.points], probs


def _embedding(data: ComparatorFile) -> dict[str, Any]:
    images, probs = _point_probabilities(data)
    return {
        "indices": images,
        "x": [float(p[4]) for p in data.points],
        "y": [float(p[5]) for p in data.points],
        "pred": [int(p[1]) for p in data.points],
        "labels": [int(p[0]) for p in data.points],
        "probs_t2": probs.tolist(),
    }


def _attack(data: ComparatorFile, values: AttackValues, worst: dict | None) -> dict[str, Any]:
    images, probs = _point_probabilities(data)
    row_of = {image: row for row, image in enumerate(images)}
    # The files store no T = 1 probabilities; p_T1 is proportional to p_T2 ** 2 (display only: the
    # T = 2 values were rounded to 3 decimals, so the last places differ from the model's).
    shown = retemper(probs[[row_of[int(i)] for i in values.indices]], POINTS_TEMPERATURE, 1.0)
    block = {
        "indices": values.indices.tolist(),
        "entropy": values.entropy.tolist(),
        "confidence": values.confidence.tolist(),
        "probs": np.round(shown, PROBABILITY_DECIMALS).tolist(),
        "published_curves": _curves(data),
    }
    if worst is not None:
        block["worst_case"] = worst["grid"].as_dict()
        block["worst_case_exact"] = worst["exact"].as_dict()
    return block


SUBSETS = {("train", "forget_class"): "train_forget", ("train", "other_classes"): "train_retain",
           ("test", "forget_class"): "test_forget", ("test", "other_classes"): "test_retain"}


def _cka(data: ComparatorFile) -> dict[str, Any] | None:
    """mucomp's CKA block from the diagonals of the comparator's matrices (None without ``cka``)."""
    if data.cka is None:
        return None
    block: dict[str, Any] = {"layers": list(data.cka.layers)}
    for reference, cka in (("original", data.cka), ("retrained", data.cka_retrain)):
        if cka is None or list(cka.layers) != list(data.cka.layers):
            continue
        block[reference] = {subset: dict(zip(cka.layers, cka.diagonal(split, part), strict=True))
                            for (split, part), subset in SUBSETS.items()}
    return block


def method_of(data: ComparatorFile) -> tuple[str | None, str]:
    """``(config.method, method label)`` of a file: mucomp's key for the same algorithm, else
    ``comparator:<name>``; the label names the comparator's method and says where it came from."""
    if data.Type in ("Original", "Pretrained"):
        return None, f"{data.Type} (comparator)"
    if data.Type == "Retrained":
        return "retrain", "Retrained (comparator)"
    mapped = METHODS.get(data.Method)
    return mapped or f"comparator:{data.Method}", f"{data.Method} (comparator)"


def _config(data: ComparatorFile) -> dict[str, Any]:
    method, _ = method_of(data)
    config: dict[str, Any] = {
        "dataset": DATASET, "forget": of_classes(data.FC).text, "forget_class": data.FC, "train_seed": TRAIN_SEED,
        "data_seed": DATA_SEED, "arch": ARCH, "method": method, "base": None, "epochs": None, "lr": None,
        "batch_size": None, "params": {}, "comparator_id": data.ID, "comparator_type": data.Type,
        "comparator_method": data.Method,
    }
    settings = {"epochs": data.setting("Epoch"), "batch_size": data.setting("BS"), "lr": data.setting("LR")}
    if settings["batch_size"] == 0:
        settings["batch_size"] = None
    if data.Type in ("Original", "Retrained"):
        # A reference's Epoch / BS / LR are its training recipe, not an unlearning run's.
        config["params"] = {f"training_{k}": v for k, v in settings.items() if v is not None}
    else:
        config.update(settings)
        base = data.Base
        if base not in ("N/A", ""):
            # 000c is the comparator's copy of the Hub Original, the file mucomp's Original loads.
            config["base"] = "original" if base == f"000{data.FC}" else experiment_id(data.FC, base)
    return config


def comparator_result(source: ComparatorSource, retrained: AttackValues | None, retrained_id: str | None,
                      retrained_name: str | None = None) -> dict[str, Any]:
    """The mucomp result of one comparator file (the module docstring says what goes where).

    ``retrained``: the comparator Retrained model's attack values of the same class (from the
    import or the store; ``retrained_id`` its store id), or None: then PS, PS_exact and the curve
    check are null. Values of other images than the file's (another subset) count as none.
    """
    data = source.data
    values = AttackValues.of_file(data)
    matched = retrained is not None and np.array_equal(retrained.indices, values.indices)
    worst = privacy.worst_attacks(values.as_mapping(), retrained.as_mapping()) if matched else None
    mismatches = reproduce_curves(values, retrained, _curves(data)) if matched else None
    _, label = method_of(data)
    metrics: dict[str, Any] = {
        **{key: data.figure(key) for key in ("UA", "RA", "TUA", "TRA")},
        "RT": data.figure("RTE"),
        "PS": None if worst is None else worst["grid"].privacy_score,
        "PS_exact": None if worst is None else worst["exact"].privacy_score,
        "PS_published": data.figure("FQS"),
        "MIA_efficacy": None, "avg_gap": None,
        "accs": [float(v) for v in data.accs], "t_accs": [float(v) for v in data.t_accs],
        **{name: data.matrix(name) for name in ("label_dist", "conf_dist", "t_label_dist", "t_conf_dist")},
    }
    result: dict[str, Any] = {
        "id": source.id, "kind": KIND, "owner": None, "method_label": label, "config": _config(data),
        "metrics": metrics, "attack": _attack(data, values, worst), "embedding": _embedding(data),
        "comparator": {
            "repository": REPOSITORY, "file": source.name[:256], "sha256": source.sha256, "id": data.ID,
            "type": data.Type, "method": data.Method, "base": data.Base, "created_at": data.CreatedAt,
            "FQS": data.figure("FQS"), "PA": data.figure("PA"),
            "retrained_id": retrained_id if matched else None,
            "retrained_file": (retrained_name[:256] if retrained_name else None) if matched else None,
            "curves_reproduced": None if mismatches is None else mismatches == 0,
            "curve_mismatches": mismatches,
        },
    }
    cka = _cka(data)
    if cka is not None:
        result["cka"] = cka
    return result


# --- importing ------------------------------------------------------------------------------------
def stored_retrained(store: ExperimentStore, forget_class: int) -> tuple[str, AttackValues] | None:
    """The comparator Retrained model of ``forget_class`` already in ``store`` (``a00c`` first)."""
    rows = [r for r in store.entries(dataset=DATASET, forget=of_classes(forget_class).text, train_seed=TRAIN_SEED)
            if r.get("kind") == KIND and r["config"].get("comparator_type") == "Retrained"]
    rows.sort(key=lambda r: r["id"] != experiment_id(forget_class, f"a00{forget_class}"))
    for row in rows:
        try:
            return row["id"], AttackValues.of_result(store.load(row["id"]).result)
        except (StoreError, KeyError):
            continue
    return None


def _retrained_of(sources: Iterable[ComparatorSource]) -> dict[int, ComparatorSource]:
    """Per forget class, the Retrained file among ``sources`` (``a00c``, the one the backend reads, first)."""
    found: dict[int, ComparatorSource] = {}
    for source in sorted(sources, key=lambda s: f"a00{s.data.FC}" != s.data.ID):
        if source.data.Type == "Retrained":
            found.setdefault(source.data.FC, source)
    return found


def import_comparator(store: ExperimentStore, path: str | os.PathLike, on_conflict: str = "error") -> ComparatorImport:
    """Import every comparator file under ``path`` into ``store`` (see the module docstring).

    Every file is checked before anything is written (ComparatorImportError names each bad file
    and why; nothing is stored then). ``on_conflict``: ``"error"`` refuses the import when one of
    its ids is stored already (ExperimentExistsError, nothing written); ``"skip"`` leaves those as
    they are. Returns what was imported, skipped and the notes (PS not computable, curves not
    reproduced, a stored experiment that came from another file).
    """
    if on_conflict not in ("error", "skip"):
        raise ValueError("on_conflict must be 'error' or 'skip'")
    sources = read_sources(path)
    done = ComparatorImport()
    existing = [s.id for s in sources if store.exists(s.id)]
    if existing and on_conflict == "error":
        raise ExperimentExistsError(f"the store already has {', '.join(existing)}; nothing was imported. Delete them "
                                    "first or skip the existing ones", existing)
    retrained_files = _retrained_of(sources)
    # References first: an import cut short leaves the Retrained model the others are measured against.
    order = {"Retrained": 0, "Original": 1}
    for source in sorted(sources, key=lambda s: (s.data.FC, order.get(s.data.Type, 2), s.data.ID)):
        forget_class = source.data.FC
        if source.id in existing:
            done.skipped.append(source.id)
            _note_other_content(store, source, done)
            continue
        reference = retrained_files.get(forget_class)
        if reference is not None:
            retrained_id, values, name = reference.id, AttackValues.of_file(reference.data), reference.name
        else:
            stored = stored_retrained(store, forget_class)
            retrained_id, values, name = (stored[0], stored[1], stored[0]) if stored else (None, None, None)
        result = comparator_result(source, values, retrained_id, name)
        _note_result(source, result, done)
        try:
            store.save(result)
        except ExperimentExistsError as err:
            if on_conflict == "skip":
                done.skipped.append(source.id)
                continue
            stored_now = f"only {', '.join(done.imported)} had been imported" if done.imported else "nothing was imported"
            raise ExperimentExistsError(f"another process stored {source.id} during the import; {stored_now}",
                                        [source.id], done.imported) from err
        done.imported.append(source.id)
        done.scenarios.add(result["config"]["forget"])
    return done


def _note_result(source: ComparatorSource, result: dict, done: ComparatorImport) -> None:
    info = result["comparator"]
    if info["retrained_id"] is None:
        done.notes.append(f"{source.name}: no comparator Retrained file of class {source.data.FC} with the same "
                          f"attack images (import a00{source.data.FC}.json with it): PS and the Attack page are "
                          "not available for it")
    elif info["curves_reproduced"] is False:
        done.notes.append(f"{source.name}: mucomp's 51-point sweep differs from {info['curve_mismatches']} of the "
                          "file's stored attack-curve values (both are stored)")


def _note_other_content(store: ExperimentStore, source: ComparatorSource, done: ComparatorImport) -> None:
    try:
        stored = store.load(source.id).result.get("comparator") or {}
    except StoreError:
        return
    if stored.get("sha256") != source.sha256:
        done.notes.append(f"{source.name}: {source.id} is stored already from another file ({stored.get('file')}); "
                          "left as it is")
