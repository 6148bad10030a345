"""Stored results of many-model evaluation: one JSON record per ensemble (torch-free).

An **ensemble** is N models of one kind for one scenario (see the challenge metrics in
:mod:`mucomp.audits.challenge`): N unlearned models of one method configuration, all from the same
Original (``kind="unlearned"``), or N Retrained models trained with N training seeds
(``kind="retrained"``, shared by every method of the scenario). Its record holds what the pages
show: the forgetting quality F, the challenge's final score, KLoM P95 per split, the per-example ε,
points and KLoM, the confidences of the forget images and the ε resolution N allows.

Files live in ``$MUCOMP_HOME/ensembles/results/<key>.json``; the key is the one rule of
:func:`ensemble_key` (a method configuration) or :func:`retrained_ensemble_key` (a scenario). A
record is written under a temporary name and renamed into place (``os.replace``), so a killed
writer leaves the old record or the new one, never half of one; a larger ensemble of the same key
replaces the smaller one.

Records are untrusted JSON when read (a hand edit, a damaged disk, another version): each file is
checked (size before parsing, strict JSON, typed fields, finite numbers, lists whose lengths agree,
a key that matches its config and its file name) and one that fails is left out of
:func:`load_ensemble_results` with a message naming the file and the reason; a page never crashes on
one.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mucomp import settings
from mucomp.groups import group_id, train_seed_of
from mucomp.schema import MAX_INT, ResultSchemaError, describe, parse_json

#: The version of the record's layout; a record of a newer format is refused with what to do.
ENSEMBLE_FORMAT = 1
#: Largest record read or written, checked before parsing. The confidences dominate: N x n_forget
#: numbers per ensemble (512 models x 200 forget images is ~2 MB; 64 models x 6,000 Fashion-MNIST
#: images ~8 MB per side).
MAX_ENSEMBLE_BYTES = 64 * 1024**2
#: Most models of one ensemble (the challenge used 512) and most examples of one per-example list.
MAX_MODELS = 4096
MAX_EXAMPLES = 1_000_000
#: Largest magnitude of a stored confidence or margin (logit-scaled confidences are a few tens).
MAX_MAGNITUDE = 1e6
#: Largest ε the challenge assigns (it clips to [0, 50]).
MAX_EPSILON = 50.0
#: Largest JSON size of unknown (newer) fields of one record, together.
MAX_EXTRA_BYTES = 64 * 1024
KEY_PATTERN = re.compile(r"[a-z0-9][a-z0-9-]{2,79}")
_TMP_PREFIX = ".tmp-"

Finite = Annotated[float, Field(strict=True, allow_inf_nan=False, ge=-MAX_MAGNITUDE, le=MAX_MAGNITUDE)]
NonNegative = Annotated[float, Field(strict=True, allow_inf_nan=False, ge=0.0, le=MAX_MAGNITUDE)]
Fraction = Annotated[float, Field(strict=True, allow_inf_nan=False, ge=0.0, le=1.0)]
Epsilon = Annotated[float, Field(strict=True, allow_inf_nan=False, ge=0.0, le=MAX_EPSILON)]
Seconds = Annotated[float, Field(strict=True, allow_inf_nan=False, ge=0.0, le=1e9)]
Seed = Annotated[int, Field(strict=True, ge=0, lt=2**32)]
Index = Annotated[int, Field(strict=True, ge=0, le=MAX_INT)]
ShortStr = Annotated[str, Field(strict=True, max_length=256)]


class EnsembleFileError(ValueError):
    """A record could not be written or read; the message names the file (or key) and the reason."""


class Accuracies(BaseModel):
    """Mean accuracies (fractions) over the models of each ensemble, the score's two ratios."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    unlearned_retain: Fraction
    retrained_retain: Fraction
    unlearned_test: Fraction
    retrained_test: Fraction


class KlomP95(BaseModel):
    """The 95th percentile of per-example KLoM per split (None: that split was not evaluated)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    forget: NonNegative | None
    retain: NonNegative | None = None
    test: NonNegative | None = None


class KlomValues(BaseModel):
    """Per-example KLoM per split: ``forget`` has one value per forget image (``forget_indices``)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    forget: list[NonNegative] = Field(max_length=MAX_EXAMPLES)
    retain: list[NonNegative] = Field(default_factory=list, max_length=MAX_EXAMPLES)
    test: list[NonNegative] = Field(default_factory=list, max_length=MAX_EXAMPLES)


class Confidences(BaseModel):
    """Logit-scaled confidences of the forget images: ``unlearned`` [n_models][n_forget] and
    ``retrained`` [n_retrained][n_forget]; an empty list means "not stored" (a large ensemble may
    leave them out; the per-image chart then says so)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    unlearned: list[list[Finite]] = Field(default_factory=list, max_length=MAX_MODELS)
    retrained: list[list[Finite]] = Field(default_factory=list, max_length=MAX_MODELS)


class Resolution(BaseModel):
    """The largest ε an ensemble of N models can resolve and the number of 0.5-wide buckets below it."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    max_epsilon: Epsilon
    buckets: Annotated[int, Field(strict=True, ge=0, le=1000)]


class EnsembleResult(BaseModel):
    """One stored ensemble (see the module docstring); validated whenever it is written or read.

    Shapes: ``epsilons``, ``points``, ``klom.forget`` and every row of ``confidences`` have one entry
    per forget image (``forget_indices``, train-split indices); ``unlearn_seeds`` has ``n_models``
    entries (the training seeds for ``kind="retrained"``), ``retrained_seeds`` ``n_retrained``.
    Accuracies, F and points are fractions; ``seconds`` and ``member_seconds`` are wall seconds.
    """

    model_config = ConfigDict(extra="allow", strict=True, frozen=True)

    format: Annotated[int, Field(strict=True, ge=1)]
    key: ShortStr
    kind: Literal["unlearned", "retrained"]
    config: dict[str, Any]
    group: ShortStr
    train_seed: Seed
    method: ShortStr
    n_models: Annotated[int, Field(strict=True, ge=1, le=MAX_MODELS)]
    n_retrained: Annotated[int, Field(strict=True, ge=1, le=MAX_MODELS)]
    unlearn_seeds: list[Seed] = Field(max_length=MAX_MODELS)
    retrained_seeds: list[Seed] = Field(max_length=MAX_MODELS)
    forget_indices: list[Index] = Field(min_length=1, max_length=MAX_EXAMPLES)
    forget_quality: Fraction | None
    score: NonNegative | None
    accuracies: Accuracies
    klom_p95: KlomP95
    epsilons: list[Epsilon] = Field(max_length=MAX_EXAMPLES)
    points: list[Fraction] = Field(max_length=MAX_EXAMPLES)
    klom: KlomValues
    confidences: Confidences
    resolution: Resolution
    self_score: Fraction | None = None
    member_seconds: list[Seconds] = Field(default_factory=list, max_length=2 * MAX_MODELS)
    seconds: Seconds
    created: ShortStr
    mucomp_version: ShortStr

    @field_validator("format")
    @classmethod
    def _known_format(cls, value: int) -> int:
        if value > ENSEMBLE_FORMAT:
            raise ValueError(f"format {value} is newer than this mucomp reads ({ENSEMBLE_FORMAT}); upgrade mucomp")
        return value

    @field_validator("created")
    @classmethod
    def _iso_time(cls, value: str) -> str:
        datetime.fromisoformat(value)  # ValueError names the text
        return value

    @field_validator("config")
    @classmethod
    def _small_config(cls, value: dict) -> dict:
        if len(json.dumps(value, default=str)) > MAX_EXTRA_BYTES:
            raise ValueError(f"larger than {MAX_EXTRA_BYTES // 1024} kB; a stored config is a few hundred bytes")
        if not isinstance(value.get("dataset"), str):
            raise ValueError("has no data set ('dataset')")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> EnsembleResult:
        _check_lengths(self)
        _check_identity(self)
        extras = self.model_extra or {}
        if extras and len(json.dumps(extras, default=str)) > MAX_EXTRA_BYTES:
            raise ValueError(f"unknown fields of more than {MAX_EXTRA_BYTES // 1024} kB together")
        return self

    def to_json_dict(self) -> dict:
        """The record as plain JSON types (what :func:`save_ensemble_result` writes)."""
        return self.model_dump(mode="json")


def _check_lengths(record: EnsembleResult) -> None:
    """Every per-model and per-example list agrees with the counts it belongs to."""
    n_forget = len(record.forget_indices)
    if len(set(record.forget_indices)) != n_forget:
        raise ValueError("forget_indices repeat an image")
    lengths = {"unlearn_seeds": (len(record.unlearn_seeds), record.n_models, "n_models"),
               "retrained_seeds": (len(record.retrained_seeds), record.n_retrained, "n_retrained"),
               "epsilons": (len(record.epsilons), n_forget, "forget images"),
               "points": (len(record.points), n_forget, "forget images"),
               "klom.forget": (len(record.klom.forget), n_forget, "forget images")}
    for name, (got, want, what) in lengths.items():
        if got != want:
            raise ValueError(f"{name} has {got} entries but there are {want} {what}")
    for side, want in (("unlearned", record.n_models), ("retrained", record.n_retrained)):
        rows = getattr(record.confidences, side)
        if rows and len(rows) != want:
            raise ValueError(f"confidences.{side} has {len(rows)} rows but the ensemble has {want} models")
        if any(len(row) != n_forget for row in rows):
            raise ValueError(f"a row of confidences.{side} does not have one entry per forget image ({n_forget})")
    if len(record.member_seconds) > record.n_models + record.n_retrained:
        raise ValueError("member_seconds has more entries than the ensembles have models")


def _check_identity(record: EnsembleResult) -> None:
    """The key, group and kind say the same thing as the config (a renamed or edited record is refused)."""
    if not KEY_PATTERN.fullmatch(record.key):
        raise ValueError(f"key {record.key!r} is not 3-80 lowercase letters, digits and '-'")
    try:
        if record.kind == "retrained":
            if record.method != "retrained" or record.forget_quality is not None:
                raise ValueError("a Retrained ensemble has method 'retrained' and no forgetting quality")
            expected = retrained_ensemble_key(record.config)
        else:
            if record.method == "retrained":
                raise ValueError("an unlearned ensemble cannot have method 'retrained'")
            expected = ensemble_key(record.config)
            if record.group != group_id(record.config) or record.train_seed != train_seed_of(record.config):
                raise ValueError("group or train_seed does not match the config")
    except (KeyError, TypeError, OverflowError) as err:  # a config that names no valid scenario
        raise ValueError(f"config names no valid scenario ({type(err).__name__}: {err})") from None
    if record.key != expected:
        raise ValueError(f"key {record.key!r} does not match its config (expected {expected!r})")


# --- keys -------------------------------------------------------------------------------------
def ensemble_key(config: dict) -> str:
    """The key of an unlearned ensemble: its method configuration and its Original.

    ``groups.group_id(config)`` (the config without its seeds) + ``-s`` + the Original's training
    seed, e.g. ``g-3f2a9c01de-s0``: every unlearning seed of one configuration from one Original
    shares it, so the ensemble's members are its unlearning seeds.
    """
    return f"{group_id(config)}-s{train_seed_of(config)}"


def retrained_ensemble_key(config: dict) -> str:
    """The key of a scenario's Retrained ensemble: ``retrained-`` + 10 hex digits.

    A hash of the scenario fields alone, canonical as :class:`mucomp.config.ScenarioDefinition`
    normalises them (data set, forget set text and, for an index set, its indices, data seed and
    architecture, the default one filled in). The training seed is left out on purpose: the
    Retrained ensemble's members are models trained with their own training seeds
    (``retrained_seeds``), independent of which Original the methods start from, so every method
    configuration and every Original of the scenario shares one Retrained ensemble. ``config`` is
    any stored experiment config of the scenario (an unlearned one or the Retrained reference's).
    """
    from mucomp.config import ScenarioDefinition

    fields = ScenarioDefinition.from_config(config).config_fields()
    scenario = {key: fields.get(key) for key in ("dataset", "forget", "forget_indices", "data_seed", "arch")}
    text = json.dumps(scenario, sort_keys=True, separators=(",", ":"), default=str)
    return "retrained-" + hashlib.sha256(text.encode()).hexdigest()[:10]


# --- files ------------------------------------------------------------------------------------
def results_dir(home: Path | None = None) -> Path:
    """Where ensemble records live: ``<home>/ensembles/results`` (``home``: ``$MUCOMP_HOME``)."""
    return Path(settings.home() if home is None else home) / "ensembles" / "results"


def save_ensemble_result(record: EnsembleResult | dict, home: Path | None = None) -> Path:
    """Validate ``record`` and write it to ``<home>/ensembles/results/<key>.json`` atomically
    (a temporary file, fsync, ``os.replace``); returns the path. A record of the same key is
    replaced. Raises :class:`EnsembleFileError` naming the reason when the record does not validate
    or is larger than :data:`MAX_ENSEMBLE_BYTES`.
    """
    data = record.to_json_dict() if isinstance(record, EnsembleResult) else record
    try:
        checked = EnsembleResult.model_validate(data)
    except ValidationError as err:
        raise EnsembleFileError(f"ensemble record refused: {describe(err)}") from err
    try:
        text = json.dumps(checked.to_json_dict(), allow_nan=False, separators=(",", ":"))
    except ValueError as err:
        raise EnsembleFileError(f"ensemble record {checked.key} refused: {err}") from err
    if len(text) > MAX_ENSEMBLE_BYTES:
        raise EnsembleFileError(f"ensemble record {checked.key} is larger than {MAX_ENSEMBLE_BYTES // 1024**2} MB; "
                                "store fewer confidences (an empty list means not stored)")
    folder = results_dir(home)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{checked.key}.json"
    tmp = folder / f"{_TMP_PREFIX}{checked.key}-{os.getpid()}-{os.urandom(4).hex()}.json"
    try:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def read_ensemble_file(path: Path) -> EnsembleResult:
    """One record file, checked; raises :class:`EnsembleFileError` with the file and the reason."""
    try:
        if not path.is_file():
            raise EnsembleFileError(f"{path}: not a regular file")
        size = path.stat().st_size
        if size > MAX_ENSEMBLE_BYTES:
            raise EnsembleFileError(f"{path}: larger than {MAX_ENSEMBLE_BYTES // 1024**2} MB; "
                                    "no ensemble record mucomp writes is that large")
        with open(path, "rb") as handle:  # bounded: the size may change between stat and read
            data = handle.read(MAX_ENSEMBLE_BYTES + 1)
        if len(data) > MAX_ENSEMBLE_BYTES:
            raise EnsembleFileError(f"{path}: larger than {MAX_ENSEMBLE_BYTES // 1024**2} MB")
        parsed = parse_json(data)
        if not isinstance(parsed, dict):
            raise EnsembleFileError(f"{path}: not a JSON object")
        record = EnsembleResult.model_validate(parsed)
    except EnsembleFileError:
        raise
    except ValidationError as err:
        raise EnsembleFileError(f"{path}: {describe(err)}") from None
    except (ResultSchemaError, OSError, ValueError, TypeError, RecursionError) as err:
        raise EnsembleFileError(f"{path}: {err}") from None
    if path.stem != record.key:
        raise EnsembleFileError(f"{path}: holds the record of key {record.key!r}, not {path.stem!r} "
                                "(a renamed file); rename it back or delete it")
    return record


#: Parsed records by path, reused while a file's (mtime, size) is unchanged: pages list records on
#: every rerun, and a record of a large ensemble takes a while to parse.
_CACHE: dict[str, tuple[tuple[int, int], EnsembleResult]] = {}


def load_ensemble_results(home: Path | None = None) -> tuple[list[EnsembleResult], list[str]]:
    """Every readable record under ``<home>/ensembles/results`` (sorted by key) and one message per
    file that was refused (the file and the reason, and what to do). Never raises for a file's
    content; a missing folder is no records."""
    folder = results_dir(home)
    records: list[EnsembleResult] = []
    problems: list[str] = []
    try:
        paths = sorted(p for p in folder.iterdir() if p.suffix == ".json" and not p.name.startswith(_TMP_PREFIX))
    except FileNotFoundError:
        return [], []
    except OSError as err:
        return [], [f"{folder}: the ensemble records can't be listed ({err})"]
    for path in paths:
        try:
            stat = path.stat()
            stamp = (stat.st_mtime_ns, stat.st_size)
            cached = _CACHE.get(str(path))
            record = cached[1] if cached and cached[0] == stamp else read_ensemble_file(path)
            _CACHE[str(path)] = (stamp, record)
            records.append(record)
        except EnsembleFileError as err:
            problems.append(f"{err}. Delete the file or run the ensemble again")
        except OSError as err:
            problems.append(f"{path}: can't be read ({err})")
    listed = {str(p) for p in paths}
    for stale in [p for p in list(_CACHE) if Path(p).parent == folder and p not in listed]:  # deleted files
        _CACHE.pop(stale, None)
    return records, problems


def ensemble_result_for(config: dict, records: list[EnsembleResult]) -> EnsembleResult | None:
    """The unlearned ensemble of ``config``'s method configuration and Original (:func:`ensemble_key`),
    or None."""
    key = ensemble_key(config)
    return next((r for r in records if r.kind == "unlearned" and r.key == key), None)


def retrained_result_for(config: dict, records: list[EnsembleResult]) -> EnsembleResult | None:
    """The Retrained ensemble of ``config``'s scenario (:func:`retrained_ensemble_key`), or None."""
    try:
        key = retrained_ensemble_key(config)
    except (KeyError, ValueError, TypeError):  # a config that names no valid scenario has none
        return None
    return next((r for r in records if r.kind == "retrained" and r.key == key), None)
