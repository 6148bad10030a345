"""The one typed schema of a stored result (``result.json``), with readers for every older version.

A stored result is plain JSON (see :mod:`mucomp.experiment.figures` for what each block means). This module
says exactly what a readable one looks like, as pydantic v2 models, and is used when a result is
saved, imported and read:

- :func:`parse_result_bytes` turns the bytes of a ``result.json`` into a current-version result
  dict, or raises :class:`ResultSchemaError` whose message names the first offending fields;
- :func:`check_result` does the same for a dict (what :meth:`ExperimentStore.save` is given).

Rules (why: one bad file must never break a listing, a page or the CLI):

- Known fields are type-checked strictly: a number is a JSON number (never a string or a bool),
  floats are finite, fractions lie in [0, 1], integers are of sane size; per-class lists have one
  entry per class of the data set, per-image lists of one block have equal lengths.
- Every metric is a finite number within bounds, or null: the catalogue's (``ulira_acc`` and
  ``relearn_steps`` included) typed one by one, unknown ones of magnitude at most
  :data:`MAX_NUMBER`. The ``audits`` blocks (``leakage``, ``probes``, ``ulira``, ``relearn``) are
  typed down to their per-image lists, so a page or ``mucomp audit`` never meets a wrong shape.
- Unknown extra keys are kept, at the top level and inside every block (forward compatibility:
  custom methods add hyper-parameters, newer versions add figures), those of one block at most
  :data:`MAX_EXTRA_BYTES` of JSON together; a whole file at most :data:`~mucomp.names.MAX_RESULT_BYTES`,
  refused before it is parsed.
- The replicate ``group`` is derived from the config (:func:`with_group`), never read from the file.
- JSON that Python alone would accept but is not JSON (``NaN``, ``Infinity``), integers past
  Python's digit limit and pathologically deep nesting are refused, not raised through.

Versions:

- **1**: ``metrics.PS`` held the privacy score of the *exact* threshold sweep (every distinct
  value a threshold) and ``attack.worst_case`` the attack behind it.
- **2**: ``metrics.PS`` is the published 51-point-grid privacy score and ``metrics.PS_exact``
  the exact one; ``attack.worst_case`` / ``attack.worst_case_exact`` the attacks behind each. See
  :func:`upgrade_v1`.
- **3**: forget sets and separate seeds: ``config.forget`` (``class:3``, ``random:10%``, ...),
  ``train_seed``, ``data_seed``, ``arch``, ``seed`` = the unlearning seed, and the top-level
  replicate ``group``. See :func:`upgrade_v2`.
- **4** (current): the unlearning seed is ``config.unlearn_seed`` (``seed`` named two things);
  ``embedding.labels`` holds the embedded images' true classes. See :func:`upgrade_v3`.

The checked dict is returned as stored (after any upgrade and with its derived ``group``), not
re-serialised by pydantic, so a save / load / export / import round trip is exact.
"""

from __future__ import annotations

import itertools
import json
import math
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mucomp.forget_sets import index_set, of_classes, parse_forget
from mucomp.groups import group_id
from mucomp.names import ID_PATTERN, KINDS, MAX_RESULT_BYTES, SCHEMA_VERSION
from mucomp.specs import DATASETS

#: Largest integer a stored result may hold (JSON readers beyond Python lose precision past 2**53).
MAX_INT = 2**53
#: Largest magnitude of a metric this schema does not know (a newer or a custom figure).
MAX_NUMBER = 1e15
#: Deepest JSON nesting a stored result may have (results are about 5 levels deep).
MAX_DEPTH = 32
#: Largest JSON size (bytes, about) of the fields this schema does not know in one block (the top
#: level, ``config``, ``metrics``, an audit block, ...), together: the
#: known per-image blocks are typed; an unknown field is metadata (an environment is ~1 kB, a
#: reference check ~1 kB), never a blob that every listing would carry.
MAX_EXTRA_BYTES = 64 * 1024


class ResultSchemaError(ValueError):
    """A ``result.json`` is not a readable stored result of a known schema version; the message
    names the offending fields (``path: what is wrong``) and says what to do."""


# --- field types ------------------------------------------------------------------------------
Finite = Annotated[float, Field(strict=True, allow_inf_nan=False)]
Fraction = Annotated[float, Field(strict=True, allow_inf_nan=False, ge=0.0, le=1.0)]
Seconds = Annotated[float, Field(strict=True, allow_inf_nan=False, ge=0.0, le=1e9)]
Count = Annotated[int, Field(strict=True, ge=0, le=MAX_INT)]
Int = Annotated[int, Field(strict=True, ge=-MAX_INT, le=MAX_INT)]
ShortStr = Annotated[str, Field(strict=True, max_length=256)]
#: The relearning attack's step ratio (model / Retrained steps; steps are counts of at most 10**9).
Ratio = Annotated[float, Field(strict=True, allow_inf_nan=False, ge=0.0, le=1e9)]
#: A Jensen-Shannon divergence in nats: [0, ln 2] (a little slack for the float mean).
JsDivergence = Annotated[float, Field(strict=True, allow_inf_nan=False, ge=0.0, le=math.log(2.0) + 1e-9)]
#: A rank among at most 10,000 classes (1 = the most probable).
MeanRank = Annotated[float, Field(strict=True, allow_inf_nan=False, ge=1.0, le=10_000.0)]


def _check_experiment_id(value: str) -> str:
    if not ID_PATTERN.fullmatch(value):
        raise ValueError("not a valid experiment id (3-64 lowercase letters, digits and '-')")
    return value


#: An experiment id (:data:`mucomp.names.ID_PATTERN`), for every schema that holds one.
ExperimentId = Annotated[str, Field(strict=True), AfterValidator(_check_experiment_id)]


class _Open(BaseModel):
    """A block whose unknown keys are kept (forward compatible) but whose known keys are typed;
    its unknown keys and their values are at most :data:`MAX_EXTRA_BYTES` of JSON together."""

    model_config = ConfigDict(extra="allow", strict=True, frozen=True)

    @model_validator(mode="after")
    def _small_extras(self) -> _Open:
        extras = self.model_extra or {}
        if extras and _json_size(extras, MAX_EXTRA_BYTES) > MAX_EXTRA_BYTES:
            names = ", ".join(str(name)[:64] for name in list(extras)[:3]) + (", ..." if len(extras) > 3 else "")
            raise ValueError(f"unknown fields ({names}) of more than {MAX_EXTRA_BYTES // 1024} kB together; "
                             "mucomp stores no such fields")
        return self


class Cost(_Open):
    """The hardware-independent cost counts of an unlearning run."""

    samples_forwarded: Count | None = None
    samples_backpropagated: Count | None = None
    optimizer_steps: Count | None = None


Seed = Annotated[int, Field(strict=True, ge=0, lt=2**32)]
FORGET_PATTERN = r"^(class:\d{1,4}|classes:\d{1,4}(,\d{1,4})+|random:(\d{1,6}(\.\d{1,6})?%|\d{1,9}(:salun)?)|indices:[0-9a-f]{12})$"


class Config(_Open):
    """``config``: the scenario (dataset, forget set, training and data seeds, arch) and the run's
    settings (the ``unlearn_seed``, method, base, hyper-parameters)."""

    dataset: Literal[tuple(DATASETS)]  # type: ignore[valid-type]
    forget: Annotated[str, Field(strict=True, pattern=FORGET_PATTERN)]
    forget_class: Count | None = None
    unlearn_seed: Seed = 0
    train_seed: Seed = 0
    data_seed: Seed = 0
    arch: ShortStr | None = None
    forget_indices: Annotated[list[Count], Field(max_length=10_000_000)] | None = None
    method: ShortStr | None = None
    base: ShortStr | None = None
    epochs: Annotated[int, Field(strict=True, ge=0, le=1_000_000)] | None = None
    lr: Annotated[float, Field(strict=True, allow_inf_nan=False, ge=0.0, le=1e6)] | None = None
    batch_size: Annotated[int, Field(strict=True, ge=1, le=10_000_000)] | None = None
    params: Annotated[dict[Annotated[str, Field(max_length=64)], Any], Field(max_length=64)] = {}
    checkpoint: ShortStr | None = None
    weights_sha256: Annotated[str, Field(strict=True, pattern=r"^[0-9a-f]{64}$")] | None = None

    @field_validator("params")
    @classmethod
    def _param_values(cls, params: dict[str, Any]) -> dict[str, Any]:
        # A method's own hyper-parameter: a JSON scalar or a short list of scalars.
        for name, value in params.items():
            values = value if isinstance(value, list) and len(value) <= 64 else [value]
            if not all(_is_scalar(v) for v in values):
                raise ValueError(f"params.{name} must be a number, a string, true / false, null or a short list of those")
        return params

    @model_validator(mode="after")
    def _forget_set_valid(self) -> Config:
        spec = DATASETS[self.dataset]
        if self.arch is not None and self.arch not in spec.archs:
            raise ValueError(f"arch {self.arch!r} is not an architecture of {self.dataset} ({', '.join(spec.archs)})")
        if self.forget.startswith("indices:"):
            if not self.forget_indices:
                raise ValueError("an indices forget set needs its forget_indices")
            forget = index_set(self.forget_indices)
            if forget.text != self.forget:
                raise ValueError("forget_indices do not match the forget set's hash")
            return self
        try:
            forget = parse_forget(self.forget, spec)  # class ranges
        except ValueError as err:
            raise ValueError(f"forget / forget_class: {err}") from None
        single = forget.classes[0] if forget.kind == "class" else None
        if self.forget_class != single:
            raise ValueError(f"forget_class {self.forget_class} contradicts forget set {self.forget!r}")
        return self


PerClass = list[Fraction | None]
Matrix = list[list[Fraction | None]]


class Metrics(_Open):
    """``metrics``: accuracy (fractions), efficiency (seconds, counts) and privacy figures.

    ``UA``, ``RA`` and ``TRA`` must be present (null allowed: not measurable); the rest may be
    absent (older results). ``PS`` may be null: uploads without a reference, or a version-1 result
    (its grid score was never computed; re-running the experiment gives it).
    """

    UA: Fraction | None
    RA: Fraction | None
    TRA: Fraction | None
    TUA: Fraction | None = None
    RT: Seconds | None = None
    PS: Fraction | None = None
    PS_exact: Fraction | None = None
    MIA_efficacy: Fraction | None = None
    MIA_svc_accuracy: Fraction | None = None
    avg_gap: Fraction | None = None
    cost: Cost | None = None
    accs: PerClass | None = None
    t_accs: PerClass | None = None
    label_dist: Matrix | None = None
    conf_dist: Matrix | None = None
    t_label_dist: Matrix | None = None
    t_conf_dist: Matrix | None = None
    leakage_js: JsDivergence | None = None
    ulira_acc: Fraction | None = None
    relearn_steps: Ratio | None = None

    @model_validator(mode="after")
    def _numeric_extras(self) -> Metrics:
        # A metric this schema does not know (a newer or a custom figure) is still a number: every
        # listing, table and summary reads it as one.
        for name, value in (self.model_extra or {}).items():
            if not _is_number(value):
                raise ValueError(f"metrics.{str(name)[:64]}: must be a finite number of magnitude at most "
                                 f"{MAX_NUMBER:.0e}, or null (got {_short(value)})")
        return self

    def check_classes(self, classes: int) -> None:
        """Raise ValueError unless every per-class list has ``classes`` entries (rows and columns)."""
        for name in ("accs", "t_accs"):
            values = getattr(self, name)
            if values is not None and len(values) != classes:
                raise ValueError(f"metrics.{name} has {len(values)} entries, expected one per class ({classes})")
        for name in ("label_dist", "conf_dist", "t_label_dist", "t_conf_dist"):
            rows = getattr(self, name)
            if rows is not None and (len(rows) != classes or any(len(r) != classes for r in rows)):
                raise ValueError(f"metrics.{name} must be {classes} x {classes} (one row and column per class)")


class StoredAttackChoice(_Open):
    """One threshold attack (what :meth:`mucomp.privacy.AttackChoice.as_dict` stores)."""

    metric: ShortStr | None = None
    direction: ShortStr | None = None
    strategy: ShortStr | None = None
    threshold: Finite | None = None
    fpr: Fraction | None = None
    fnr: Fraction | None = None
    attack_score: Fraction | None = None
    success_rate: Fraction | None = None
    privacy_score: Fraction | None = None


class Attack(_Open):
    """``attack``: per forget image (all lists of one length n), ``probs`` [n][C]."""

    indices: list[Count]
    entropy: list[Finite]
    confidence: list[Finite]
    probs: list[list[Fraction]] | None = None
    worst_case: StoredAttackChoice | None = None
    worst_case_exact: StoredAttackChoice | None = None

    @model_validator(mode="after")
    def _same_lengths(self) -> Attack:
        _equal_lengths("attack", indices=self.indices, entropy=self.entropy, confidence=self.confidence,
                       probs=self.probs)
        return self


class Embedding(_Open):
    """``embedding``: the UMAP layout of the embedding subset (lists of one length m)."""

    indices: list[Count]
    x: list[Finite]
    y: list[Finite]
    pred: list[Count] | None = None
    labels: list[Count] | None = None
    probs_t2: list[list[Fraction]] | None = None

    @model_validator(mode="after")
    def _same_lengths(self) -> Embedding:
        _equal_lengths("embedding", indices=self.indices, x=self.x, y=self.y, pred=self.pred, labels=self.labels,
                       probs_t2=self.probs_t2)
        return self


class Cka(_Open):
    """``cka``: ``layers`` and ``{reference: {subset: {layer: CKA or null}}}``."""

    layers: list[ShortStr]
    original: dict[ShortStr, dict[ShortStr, Finite | None]] | None = None
    retrained: dict[ShortStr, dict[ShortStr, Finite | None]] | None = None


class EpochRecord(_Open):
    """One per-epoch record of an unlearning run."""

    epoch: Count
    forget_accuracy: Fraction | None = None
    loss: Finite | None = None
    seconds: Seconds | None = None


class Leakage(_Open):
    """``audits.leakage`` (:func:`mucomp.audits.class_leakage`): per-class lists of C entries."""

    mean_probability: list[Fraction]
    retrained_mean_probability: list[Fraction]
    js_mean: JsDivergence
    rank_counts: list[Count]
    retrained_rank_counts: list[Count]
    mean_rank: MeanRank
    retrained_mean_rank: MeanRank


class UliraEstimator(_Open):
    """How U-LiRA's Gaussians were fitted (:func:`mucomp.audits.ulira.likelihood_ratio`)."""

    center: ShortStr = "median"
    variance: ShortStr = "per_image"


class Ulira(_Open):
    """``audits.ulira`` (:func:`mucomp.experiment.shadows.run_ulira`). The threshold-free figures
    (``auc``, ...) are absent in blocks stored before them, never null; per-image lists have one
    entry per forget image."""

    accuracy: Fraction
    shadows: Annotated[int, Field(strict=True, ge=1, le=100_000)]
    held_out: Annotated[int, Field(strict=True, ge=1, le=100_000)]
    share_flagged: Fraction
    fit_seeds: Annotated[list[Seed], Field(min_length=1, max_length=100_000)]
    held_out_seeds: Annotated[list[Seed], Field(min_length=1, max_length=100_000)]
    indices: list[Count]
    phi: list[Finite]
    lr: list[Finite]
    mu_unlearned: list[Finite]
    mu_retrained: list[Finite]
    sigma_unlearned: list[Finite] | None = None
    sigma_retrained: list[Finite] | None = None
    accuracy_per_pair: Annotated[list[Fraction], Field(max_length=100_000)] | None = None
    auc: Fraction = None  # type: ignore[assignment]  (absent or a number)
    balanced_accuracy_best: Fraction = None  # type: ignore[assignment]
    tpr_at_fpr: Annotated[dict[ShortStr, Fraction | None], Field(max_length=64)] | None = None
    estimator: UliraEstimator | None = None
    seed_offset: Int | None = None
    mode: ShortStr | None = None
    method: ShortStr | None = None
    spec_key: ShortStr | None = None
    seconds: Seconds | None = None
    shadow_seconds: Seconds | None = None
    cached_pairs: Count | None = None
    computed_at: Annotated[str, Field(strict=True, max_length=64)] | None = None
    code_version: ShortStr | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Ulira:
        _equal_lengths("audits.ulira", indices=self.indices, phi=self.phi, lr=self.lr, mu_unlearned=self.mu_unlearned,
                       mu_retrained=self.mu_retrained, sigma_unlearned=self.sigma_unlearned,
                       sigma_retrained=self.sigma_retrained)
        if (self.auc is None) != (self.balanced_accuracy_best is None):
            raise ValueError("audits.ulira: auc and balanced_accuracy_best come together")
        return self


class RelearnCurve(_Open):
    """One relearning curve: forget accuracy at recorded steps (equal lengths)."""

    steps: list[Count]
    forget_accuracy: list[Fraction]

    @model_validator(mode="after")
    def _same_lengths(self) -> RelearnCurve:
        _equal_lengths("audits.relearn.curves", steps=self.steps, forget_accuracy=self.forget_accuracy)
        # A curve starts before relearning (step 0) and records later steps in order.
        if not self.steps or self.steps[0] != 0 or any(b <= a for a, b in itertools.pairwise(self.steps)):
            raise ValueError("audits.relearn.curves: steps must start at 0 and increase")
        return self


class StepsToTarget(_Open):
    """Steps each curve took to reach the target (null: censored, never reached)."""

    model_config = ConfigDict(extra="allow", strict=True, frozen=True, protected_namespaces=())

    model: Count | None
    retrained: Count | None
    model_retain_only: Count | None
    retrained_retain_only: Count | None


class Relearn(_Open):
    """``audits.relearn`` (:func:`mucomp.experiment.relearn.relearn_audit`)."""

    steps: Annotated[int, Field(strict=True, ge=1, le=10**9)]
    k: Count
    lr: Annotated[float, Field(strict=True, allow_inf_nan=False, ge=0.0, le=1e6)]
    batch_size: Annotated[int, Field(strict=True, ge=1, le=10_000_000)]
    target: Fraction
    steps_to_target: StepsToTarget
    relative: Ratio | None = None
    curves: Annotated[dict[Literal["model", "retrained"],
                           Annotated[dict[Literal["forget", "retain_only"], RelearnCurve], Field(max_length=2)]],
                      Field(max_length=2)] | None = None
    censored: Annotated[dict[ShortStr, bool], Field(max_length=16)] | None = None
    share: Fraction | None = None
    every: Count | None = None
    seed: Int | None = None
    relearn_indices: list[Count] | None = None
    original_forget_accuracy: Fraction | None = None
    seconds: Annotated[dict[ShortStr, Seconds], Field(max_length=16)] | None = None
    computed_at: Annotated[str, Field(strict=True, max_length=64)] | None = None
    code_version: ShortStr | None = None

    @model_validator(mode="after")
    def _within_the_run(self) -> Relearn:
        """Curves and steps to the target lie within the ``steps`` the audit ran."""
        recorded = [c.steps[-1] for by_curve in (self.curves or {}).values() for c in by_curve.values()]
        reached = [v for v in (self.steps_to_target.model, self.steps_to_target.retrained,
                               self.steps_to_target.model_retain_only, self.steps_to_target.retrained_retain_only)
                   if v is not None]
        if any(step > self.steps for step in (*recorded, *reached)):
            raise ValueError(f"audits.relearn: a curve or a steps-to-target value goes beyond the {self.steps} steps run")
        return self


class Audits(_Open):
    """``audits``: the blocks every evaluation stores (``leakage``; ``probes``: ``{layer: probe
    ROC AUC or null}``) and the on-demand ones (``ulira``, ``relearn``)."""

    leakage: Leakage | None = None
    probes: Annotated[dict[ShortStr, Fraction | None], Field(max_length=1024)] | None = None
    ulira: Ulira | None = None
    relearn: Relearn | None = None


class EvaluationInfo(_Open):
    """``evaluation``: how the evaluation pass behind every figure ran (absent in older results)."""

    precision: Literal["fp32", "bf16", "fp16"]
    device: ShortStr | None = None


class ReferenceIdentity(BaseModel):
    """One reference an experiment's figures were computed against: its stored id and weights hash."""

    model_config = ConfigDict(extra="forbid")
    id: ExperimentId
    weights_sha256: Annotated[str, Field(strict=True, pattern=r"^[0-9a-f]{64}$")]


class References(BaseModel):
    """``references``: the Original and the Retrained model an experiment was compared with."""

    model_config = ConfigDict(extra="forbid")
    original: ReferenceIdentity
    retrained: ReferenceIdentity


class StoredResult(_Open):
    """A whole ``result.json`` of the current :data:`SCHEMA_VERSION`."""

    schema_version: Literal[4]
    id: ExperimentId
    group: ShortStr | None = None
    kind: Literal[KINDS]  # type: ignore[valid-type]
    created_at: Annotated[str, Field(strict=True, max_length=64)]
    code_version: ShortStr | None = None
    owner: Annotated[str, Field(strict=True, max_length=128)] | None = None
    method_label: Annotated[str, Field(strict=True, max_length=200)] | None = None
    config: Config
    metrics: Metrics
    attack: Attack | None = None
    embedding: Embedding | None = None
    cka: Cka | None = None
    #: Per-epoch records (a method runs at most 1,000 epochs): listings carry them, so bounded.
    epochs: Annotated[list[EpochRecord], Field(max_length=10_000)] | None = None
    timings: Annotated[dict[ShortStr, Seconds | None], Field(max_length=256)] | None = None
    evaluation: EvaluationInfo | None = None
    #: :func:`mucomp.environment.environment` of the process that ran it (absent in older results).
    environment: Annotated[dict[ShortStr, Any], Field(max_length=256)] | None = None
    audits: Audits | None = None
    #: When an audit was last stored with it (:func:`mucomp.store.update.update_audits`).
    updated_at: Annotated[str, Field(strict=True, max_length=64)] | None = None
    #: The references its figures were computed against (absent in results made before them).
    references: References | None = None

    @field_validator("environment")
    @classmethod
    def _small_environment(cls, value: dict | None) -> dict | None:
        if value is not None and _json_size(value, MAX_EXTRA_BYTES) > MAX_EXTRA_BYTES:
            raise ValueError(f"larger than {MAX_EXTRA_BYTES // 1024} kB; an environment record is about 1 kB")
        return value

    @field_validator("created_at", "updated_at")
    @classmethod
    def _iso_time(cls, value: str | None) -> str | None:
        if value is None:
            return value
        try:
            datetime.fromisoformat(value)
        except ValueError as err:
            raise ValueError("not an ISO 8601 date and time, e.g. 2025-01-31T12:00:00+00:00") from err
        return value

    @model_validator(mode="after")
    def _per_class_lengths(self) -> StoredResult:
        classes = DATASETS[self.config.dataset].num_classes
        self.metrics.check_classes(classes)
        for block, rows in (("attack.probs", self.attack and self.attack.probs),
                            ("embedding.probs_t2", self.embedding and self.embedding.probs_t2)):
            if rows and any(len(row) != classes for row in rows):
                raise ValueError(f"{block} rows must have one probability per class ({classes})")
        leakage = self.audits.leakage if self.audits is not None else None
        if leakage is not None:
            for name in ("mean_probability", "retrained_mean_probability", "rank_counts", "retrained_rank_counts"):
                if len(getattr(leakage, name)) != classes:
                    raise ValueError(f"audits.leakage.{name} must have one entry per class ({classes})")
        return self


def _is_scalar(value: Any) -> bool:
    """A JSON scalar of sane size: null, a bool, an int within :data:`MAX_INT`, a finite float, a
    string of at most 256 characters."""
    if value is None or isinstance(value, bool):
        return True
    if isinstance(value, int):
        return abs(value) <= MAX_INT
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, str) and len(value) <= 256


def _is_number(value: Any) -> bool:
    """null, or an int / finite float (never a bool) of magnitude at most :data:`MAX_NUMBER`."""
    if value is None:
        return True
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return abs(value) <= MAX_NUMBER if isinstance(value, int) else math.isfinite(value) and abs(value) <= MAX_NUMBER


def _json_size(value: Any, limit: int) -> int:
    """About how many bytes ``value`` takes as compact JSON, counted without recursion and only up
    to just past ``limit`` (a huge value is never walked completely)."""
    size, stack = 0, [value]
    while stack and size <= limit:
        item = stack.pop()
        if isinstance(item, dict):
            size += 2 + sum(len(str(k)) + 4 for k in item)
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            size += 2 + len(item)
            stack.extend(item)
        elif isinstance(item, str):
            size += len(item) + 2
        else:
            size += len(repr(item))
    return size


def _equal_lengths(block: str, **lists: list | None) -> None:
    sizes = {name: len(values) for name, values in lists.items() if values is not None}
    if len(set(sizes.values())) > 1:
        raise ValueError(f"{block}: per-image lists differ in length ({', '.join(f'{k} {v}' for k, v in sizes.items())})")


# --- readers for older versions ---------------------------------------------------------------
def upgrade_v1(result: dict) -> dict:
    """A version-1 result as version 2.

    Version 1 stored the exact-sweep privacy score as ``metrics.PS`` (and its attack as
    ``attack.worst_case``); version 2 keeps that as ``PS_exact`` (``worst_case_exact``) and
    defines ``PS`` as the published 51-point-grid score, which a version-1 result never computed:
    it becomes null (the Screen shows it blank). Re-running the experiment gives it.
    """
    upgraded = dict(result, schema_version=2)
    metrics = result.get("metrics")
    if isinstance(metrics, dict) and "PS_exact" not in metrics:
        upgraded["metrics"] = {**metrics, "PS_exact": metrics.get("PS"), "PS": None}
    attack = result.get("attack")
    if isinstance(attack, dict) and "worst_case" in attack and "worst_case_exact" not in attack:
        attack = dict(attack)
        attack["worst_case_exact"] = attack.pop("worst_case")
        upgraded["attack"] = attack
    return upgraded


def upgrade_v2(result: dict) -> dict:
    """A version-2 result as version 3.

    Version 2 had one ``config.seed`` for everything and a single forget class. Version 3 splits the
    seeds: ``train_seed`` (the references), ``data_seed`` (the fixed subsets) and ``seed`` (the
    unlearning run); a version-2 seed becomes all three, so the subsets and figures stay exactly
    those it was computed with. ``forget`` becomes ``class:K``, ``arch`` the data set's default, and
    an unlearned experiment gets its replicate ``group``.
    """
    upgraded = dict(result, schema_version=3)
    config = result.get("config")
    if isinstance(config, dict):
        config = dict(config)
        seed = config.get("seed", 0)
        cls = config.get("forget_class")
        if "forget" not in config and isinstance(cls, int) and not isinstance(cls, bool):
            config["forget"] = of_classes(cls).text
        config.setdefault("train_seed", seed)
        config.setdefault("data_seed", seed)
        spec = DATASETS.get(config.get("dataset")) if isinstance(config.get("dataset"), str) else None
        if spec is not None:
            config.setdefault("arch", spec.arch)
        upgraded["config"] = config
        if result.get("kind") == "unlearned" and "group" not in result:
            upgraded["group"] = group_id(config)
    return upgraded


def upgrade_v3(result: dict) -> dict:
    """A version-3 result as version 4: ``config.seed`` (the unlearning seed) becomes
    ``config.unlearn_seed``; nothing else changes (the group id never depended on it)."""
    upgraded = dict(result, schema_version=4)
    config = result.get("config")
    if isinstance(config, dict) and "seed" in config:
        config = dict(config)
        config.setdefault("unlearn_seed", config.pop("seed"))
        upgraded["config"] = config
    return upgraded


#: ``version -> reader`` turning a result of that version into one of the next.
UPGRADES = {1: upgrade_v1, 2: upgrade_v2, 3: upgrade_v3}


def upgrade(result: dict) -> dict:
    """``result`` brought to :data:`SCHEMA_VERSION` through every reader in turn."""
    version = result.get("schema_version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise ResultSchemaError(f"schema_version must be an integer, got {_short(version)}")
    if version > SCHEMA_VERSION:
        raise ResultSchemaError(
            f"schema version {version} is newer than this mucomp reads (1-{SCHEMA_VERSION}); upgrade mucomp to read it"
        )
    if version < 1:
        raise ResultSchemaError(f"schema version {version} does not exist (1-{SCHEMA_VERSION})")
    while version < SCHEMA_VERSION:
        result = UPGRADES[version](result)
        version += 1
    return result


# --- entry points -----------------------------------------------------------------------------
def check_result(result: object) -> dict:
    """``result`` (a parsed result.json) upgraded to the current version and checked completely.

    Returns the upgraded dict itself (values as stored) with its replicate ``group`` derived from
    its config (:func:`with_group`); raises :class:`ResultSchemaError`.
    """
    if not isinstance(result, dict):
        raise ResultSchemaError(f"result.json must hold a JSON object, not {type(result).__name__}")
    missing = [key for key in ("schema_version", "id", "kind", "created_at", "config", "metrics") if key not in result]
    if missing:
        raise ResultSchemaError(f"result.json lacks {', '.join(missing)}; it is not a mucomp experiment")
    upgraded = upgrade(result)
    try:
        StoredResult.model_validate(upgraded)
    except ValidationError as err:
        raise ResultSchemaError(describe(err)) from None
    return with_group(upgraded)


def with_group(result: dict) -> dict:
    """``result`` whose ``group`` is the one its config gives: :func:`mucomp.groups.group_id` for an
    unlearned experiment, none for every other kind.

    A stored ``group`` label is never trusted (an imported file could name any group and so join
    it): every save, import and read derives it here, so every reader sees the same groups. The
    dict is returned as it is when its label is right, else a copy with the label replaced.
    """
    group = group_id(result["config"]) if result["kind"] == "unlearned" else None
    if result.get("group") == group:
        return result
    fixed = {key: value for key, value in result.items() if key != "group"}
    if group is not None:
        fixed["group"] = group
    return fixed


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict:
    """A JSON object whose keys are all different: with a repeated key, readers disagree on which
    value counts (json keeps the last), so a file could show one figure and store another."""
    value = dict(pairs)
    if len(value) != len(pairs):
        seen: set[str] = set()
        repeated = next(key for key, _ in pairs if key in seen or seen.add(key))
        raise ResultSchemaError(f"the key {_short(repeated)} appears twice in one object")
    return value


def parse_json(data: bytes | str) -> Any:
    """Strict JSON: UTF-8, no ``NaN`` / ``Infinity``, no key twice in one object, integers within
    Python's digit limit, at most :data:`MAX_DEPTH` levels. Raises :class:`ResultSchemaError`."""
    try:
        # Decoded here, not by json: it would also read UTF-16 and UTF-32, which mucomp never writes.
        text = data.decode("utf-8") if isinstance(data, (bytes, bytearray)) else data
        value = json.loads(text, parse_constant=_refuse_constant, object_pairs_hook=_unique_keys)
    except RecursionError:
        raise ResultSchemaError(f"nested more than {MAX_DEPTH} levels deep") from None
    except UnicodeDecodeError:
        raise ResultSchemaError("not UTF-8 text") from None
    except ValueError as err:  # JSONDecodeError, an integer of too many digits, NaN / Infinity
        if "integer string conversion" in str(err):  # Python's digit limit (sys.get_int_max_str_digits)
            raise ResultSchemaError("holds an integer of thousands of digits; no mucomp figure is that large") from None
        raise ResultSchemaError(f"not valid JSON ({_first_line(err)})") from None
    if _depth(value) > MAX_DEPTH:
        raise ResultSchemaError(f"nested more than {MAX_DEPTH} levels deep")
    return value


def parse_result_bytes(data: bytes | str) -> dict:
    """The bytes of a ``result.json`` as a checked, current-version result dict; more than
    :data:`~mucomp.names.MAX_RESULT_BYTES` are refused before anything is parsed."""
    if len(data) > MAX_RESULT_BYTES:
        raise ResultSchemaError(f"larger than {MAX_RESULT_BYTES // 1024**2} MB; no result mucomp writes is that large")
    return check_result(parse_json(data))


def describe(err: ValidationError, limit: int = 3) -> str:
    """The first ``limit`` problems of a pydantic error as ``path: message (got value)``."""
    parts = []
    for problem in err.errors(include_url=False)[:limit]:
        where = ".".join(str(p) for p in problem["loc"]) or "result"
        text = problem["msg"].removeprefix("Value error, ")
        got = "" if problem["type"] in ("missing", "value_error") else f" (got {_short(problem.get('input'))})"
        parts.append(f"{where}: {text}{got}")
    more = len(err.errors()) - limit
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def _short(value: Any, width: int = 40) -> str:
    """A bounded repr: a 4,000-digit integer or a long list never floods a message."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**12:
        return f"an integer of about {int(value.bit_length() * 0.30103) + 1} digits"
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, (dict, list)):
        return f"a {'JSON object' if isinstance(value, dict) else 'list'} of {len(value)} entries"
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def _first_line(err: BaseException) -> str:
    return (str(err).splitlines() or [type(err).__name__])[0][:160]


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


def _depth(value: Any) -> int:
    """Nesting depth of parsed JSON, without recursion (deep input must not crash the reader)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        elif not isinstance(item, list):
            continue
        deepest = max(deepest, depth)
        if depth > MAX_DEPTH:
            return depth
        stack.extend((child, depth + 1) for child in item if isinstance(child, (dict, list)))
    return deepest
