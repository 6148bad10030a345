"""One experiment file of the published comparator, typed and checked at the boundary (torch-free).

The published Machine Unlearning Comparator (gnueaj/Machine-Unlearning-Comparator) writes one JSON
file per model it evaluates: ``backend/data/{c}/{id}.json`` on a server, and its live demo ships 50
of them in ``frontend/src/constants/data/{c}/{id}.json`` (``deployment`` branch). Every file belongs
to the CIFAR-10 ResNet-18 scenario with forget class ``c``. What each field means was read from the
backend that writes it (``backend/app/threads/unlearn_*_thread.py`` and the helpers they call; the
citations with line numbers are in ``docs/definitions.md``, "Importing the published comparator's
experiments"):

- ``ID`` (4 hex characters for a run, ``000c`` / ``a00c`` for the Original / Retrained), ``FC``
  (the forget class), ``Type`` (``Original``, ``Retrained``, ``Unlearned``; ``Pretrained`` for a
  custom model evaluated without unlearning), ``Base`` (the id of the model it started from),
  ``Method`` (``FineTuning``, ``GradientAscent``, ``RandomLabeling``, ``SCRUB``, ``SalUn``,
  ``GA+FT``, ``GA+SL+FT``, ``GA+SL+FT V2``, ``Custom``), ``Epoch`` / ``BS`` / ``LR``,
  ``CreatedAt`` (server local time);
- ``UA`` / ``RA`` / ``TUA`` / ``TRA``: fractions to 3 decimals (train accuracy of the forget class,
  mean train accuracy of the other classes, the same on the test split); ``RTE``: seconds of the
  unlearning loop; ``FQS``: the comparator's privacy score; ``PA`` (references only: a field the
  backend code does not write);
- ``accs`` / ``t_accs`` ``[C]`` and ``label_dist`` / ``conf_dist`` / ``t_label_dist`` /
  ``t_conf_dist`` ``{"gt_t": [C]}``: per-class accuracy and prediction matrices (rows: true class);
- ``cka`` / ``cka_retrain``: ``{"layers": [L], "train" | "test": {"forget_class" | "other_classes":
  [L][L]}}``, torch_cka's layer-by-layer CKA matrix of the Original (``cka``) or the Retrained
  model (``cka_retrain``, rows) against this model (columns);
- ``points`` ``[n]``: ``[true class, predicted class, train image index, forget flag, x, y,
  {class: softmax(z / 2) probability, entries <= 0.001 left out}]`` of the UMAP subset (200 train
  images per class);
- ``attack``: ``values`` ``[m]`` ``{img, entropy, confidence}`` of the subset's forget-class images
  (entropy of softmax(z / 2), top-1 log-odds at T = 1, both to 2 decimals) and ``results``: four
  51-point threshold curves ``{threshold, fpr, fnr, attack_score}`` against the Retrained file's
  stored values.

:func:`parse_comparator_bytes` turns a file's bytes into a :class:`ComparatorFile` or raises
:class:`ComparatorFileError` naming the file and the first offending fields. Rules: at most
:data:`MAX_FILE_BYTES`, strict JSON (no ``NaN`` / ``Infinity``, bounded nesting), numbers are JSON
numbers (never strings or booleans) and finite, fractions lie in [0, 1], every per-class list and
matrix has one entry per CIFAR-10 class, the CKA matrices are ``L x L``, each point and attack image
is a CIFAR-10 training index, listed once, and the points' forget flags and the attack images agree
with the forget class. Unknown top-level keys (a newer backend's ``epoch_metrics``) are ignored.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from mucomp.schema import ResultSchemaError, describe, parse_json
from mucomp.specs import DATASETS

#: The scenario every comparator file belongs to.
DATASET = "cifar10"
ARCH = DATASETS[DATASET].arch
CLASSES = DATASETS[DATASET].num_classes
TRAIN_IMAGES = DATASETS[DATASET].train_images
#: Largest file read (checked before parsing): the demo's files are 0.5-0.65 MB; a backend set to
#: embed 10,000 images writes about 3.3 MB.
MAX_FILE_BYTES = 16 * 1024**2
#: Most embedding points and attack values a file may hold (the backend writes 2,000 and 200).
MAX_POINTS = 20_000
MAX_ATTACK_VALUES = 10_000
#: The comparator's text for a figure it does not have.
NOT_AVAILABLE = "N/A"
TYPES = ("Original", "Retrained", "Unlearned", "Pretrained")
#: The stored threshold curves: ``<metric>_<direction>`` (mucomp's metric and direction names).
CURVE_KEYS = ("entropy_above_unlearn", "entropy_above_retrain", "confidence_above_unlearn", "confidence_above_retrain")
CURVE_POINTS = 51
#: Entropy of a C-class distribution is at most ln C; the stored values are rounded to 2 decimals.
MAX_ENTROPY = math.log(CLASSES) + 0.01
#: The backend's log-odds add 1e-45 inside each log, so they stay within +-ln(1e45) ~ 103.6.
MAX_LOG_ODDS = 200.0


class ComparatorFileError(ValueError):
    """A comparator file that can't be imported; ``name`` is the file, ``reason`` why."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"{name}: {reason}")
        self.name = name
        self.reason = reason


# --- field types ------------------------------------------------------------------------------
NA = Literal["N/A"]
Fraction = Annotated[float, Field(strict=True, allow_inf_nan=False, ge=0.0, le=1.0)]
Finite = Annotated[float, Field(strict=True, allow_inf_nan=False)]
Seconds = Annotated[float, Field(strict=True, allow_inf_nan=False, ge=0.0, le=1e9)]
Count = Annotated[int, Field(strict=True, ge=0, le=10**9)]
ClassIndex = Annotated[int, Field(strict=True, ge=0, lt=CLASSES)]
ImageIndex = Annotated[int, Field(strict=True, ge=0, lt=TRAIN_IMAGES)]
ShortStr = Annotated[str, Field(strict=True, max_length=64)]
Identifier = Annotated[str, Field(strict=True, pattern=r"^[A-Za-z0-9_-]{1,32}$")]
Coordinate = Annotated[float, Field(strict=True, allow_inf_nan=False, ge=-1e6, le=1e6)]
#: CKA lies in [0, 1] up to the estimator's noise; anything far outside is not a CKA.
CkaValue = Annotated[float, Field(strict=True, allow_inf_nan=False, ge=-1.0, le=2.0)]
PerClass = Annotated[list[Fraction], Field(min_length=CLASSES, max_length=CLASSES)]
ClassKey = Literal[tuple(str(k) for k in range(CLASSES))]  # type: ignore[valid-type]
RowKey = Literal[tuple(f"gt_{k}" for k in range(CLASSES))]  # type: ignore[valid-type]
Distribution = Annotated[dict[RowKey, PerClass], Field(min_length=CLASSES, max_length=CLASSES)]
#: One embedding point: true class, predicted class, image index, forget flag, x, y, probabilities.
Point = tuple[ClassIndex, ClassIndex, ImageIndex, Literal[0, 1], Coordinate, Coordinate,
              Annotated[dict[ClassKey, Fraction], Field(min_length=1)]]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CurvePoint(_Strict):
    threshold: Finite
    fpr: Fraction
    fnr: Fraction
    attack_score: Fraction


Curve = Annotated[list[CurvePoint], Field(min_length=CURVE_POINTS, max_length=CURVE_POINTS)]


class AttackValue(_Strict):
    img: ImageIndex
    entropy: Annotated[float, Field(strict=True, allow_inf_nan=False, ge=0.0, le=MAX_ENTROPY)]
    confidence: Annotated[float, Field(strict=True, allow_inf_nan=False, ge=-MAX_LOG_ODDS, le=MAX_LOG_ODDS)]


class AttackCurves(_Strict):
    entropy_above_unlearn: Curve
    entropy_above_retrain: Curve
    confidence_above_unlearn: Curve
    confidence_above_retrain: Curve


class Attack(_Strict):
    values: Annotated[list[AttackValue], Field(min_length=1, max_length=MAX_ATTACK_VALUES)]
    results: AttackCurves


Matrix = Annotated[list[Annotated[list[CkaValue], Field(max_length=64)]], Field(min_length=1, max_length=64)]


class CkaSplit(_Strict):
    forget_class: Matrix
    other_classes: Matrix


class Cka(_Strict):
    """torch_cka's matrices: row i = layer i of the reference, column j = layer j of this model."""

    layers: Annotated[list[ShortStr], Field(min_length=1, max_length=64)]
    train: CkaSplit
    test: CkaSplit

    @model_validator(mode="after")
    def _square(self) -> Cka:
        n = len(self.layers)
        for split in ("train", "test"):
            for part in ("forget_class", "other_classes"):
                rows = getattr(getattr(self, split), part)
                if len(rows) != n or any(len(row) != n for row in rows):
                    raise ValueError(f"{split}.{part} must be {n} x {n} (one row and column per layer)")
        return self

    def diagonal(self, split: str, part: str) -> list[float]:
        """CKA of each layer with the same layer of the reference: the curve the comparator draws."""
        rows = getattr(getattr(self, split), part)
        return [float(rows[k][k]) for k in range(len(self.layers))]


class ComparatorFile(BaseModel):
    """One comparator experiment file (see the module docstring for each field's meaning)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    CreatedAt: ShortStr | None = None
    ID: Identifier
    FC: ClassIndex
    Type: Literal[TYPES]  # type: ignore[valid-type]
    Base: ShortStr = NOT_AVAILABLE
    Method: ShortStr = NOT_AVAILABLE
    Epoch: Count | NA = NOT_AVAILABLE
    BS: Count | NA = NOT_AVAILABLE
    LR: Annotated[float, Field(strict=True, allow_inf_nan=False, ge=0.0, le=1e6)] | NA = NOT_AVAILABLE
    UA: Fraction | NA
    RA: Fraction | NA
    TUA: Fraction | NA
    TRA: Fraction | NA
    RTE: Seconds | NA = NOT_AVAILABLE
    FQS: Fraction | NA = NOT_AVAILABLE
    PA: Fraction | NA = NOT_AVAILABLE
    accs: PerClass
    t_accs: PerClass
    label_dist: Distribution
    conf_dist: Distribution
    t_label_dist: Distribution
    t_conf_dist: Distribution
    cka: Cka | None = None
    cka_retrain: Cka | None = None
    points: Annotated[list[Point], Field(min_length=1, max_length=MAX_POINTS)]
    attack: Attack

    @model_validator(mode="after")
    def _consistent(self) -> ComparatorFile:
        images = [p[2] for p in self.points]
        if len(set(images)) != len(images):
            raise ValueError("points: an image index is listed twice")
        flagged = [p[2] for p in self.points if (p[3] == 1) != (p[0] == self.FC)]
        if flagged:
            raise ValueError(f"points: the forget flag of image {flagged[0]} contradicts its class and FC {self.FC}")
        for k, point in enumerate(self.points):
            total = sum(point[6].values())
            # Entries <= 0.001 are left out and the rest rounded to 3 decimals: the sum is ~1.
            if not 0.95 <= total <= 1.05:
                raise ValueError(f"points.{k}: its probabilities sum to {total:.3f}, not about 1")
        values = [v.img for v in self.attack.values]
        if len(set(values)) != len(values):
            raise ValueError("attack.values: an image index is listed twice")
        forget_points = {p[2] for p in self.points if p[0] == self.FC}
        stray = [i for i in values if i not in forget_points]
        if stray:
            raise ValueError(f"attack.values: image {stray[0]} is not a point of the forget class {self.FC}")
        return self

    def figure(self, name: str) -> float | None:
        """A scalar figure (``UA``, ``RTE``, ``FQS``, ...) as a float, None for ``"N/A"``."""
        value = getattr(self, name)
        return None if value == NOT_AVAILABLE else float(value)

    def setting(self, name: str) -> int | float | None:
        """``Epoch`` / ``BS`` (ints) or ``LR`` (float), None for ``"N/A"``."""
        value = getattr(self, name)
        return None if value == NOT_AVAILABLE else value

    def matrix(self, name: str) -> list[list[float]]:
        """A prediction matrix ``[C][C]`` (rows: true class) from its ``{"gt_t": [C]}`` form."""
        rows = getattr(self, name)
        return [[float(v) for v in rows[f"gt_{t}"]] for t in range(CLASSES)]


def parse_comparator_bytes(data: bytes, name: str) -> ComparatorFile:
    """The checked :class:`ComparatorFile` of a file's bytes; :class:`ComparatorFileError` (with
    ``name`` and the reason) for anything else. More than :data:`MAX_FILE_BYTES` are refused
    before anything is parsed."""
    if len(data) > MAX_FILE_BYTES:
        raise ComparatorFileError(name, f"{len(data) / 1024**2:.1f} MB, more than the {MAX_FILE_BYTES // 1024**2} MB "
                                        "a comparator experiment file may have")
    try:
        value: Any = parse_json(data)
    except ResultSchemaError as err:
        raise ComparatorFileError(name, str(err)) from None
    if not isinstance(value, dict):
        raise ComparatorFileError(name, f"holds a JSON {type(value).__name__}, not the object of a comparator experiment")
    missing = [key for key in ("ID", "FC", "Type", "attack", "points") if key not in value]
    if missing:
        raise ComparatorFileError(name, f"lacks {', '.join(missing)}: it is not a comparator experiment file")
    try:
        return ComparatorFile.model_validate(value)
    except ValidationError as err:
        raise ComparatorFileError(name, describe(err)) from None
