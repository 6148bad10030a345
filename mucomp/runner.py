"""One experiment end to end: method -> one evaluation pass per split -> every figure -> store.

:func:`run_experiment` copies the base model (a cached reference is never mutated), runs the
unlearning method, then :func:`evaluate_model` computes every figure the pages show from ONE
forward pass per split, and the store saves it atomically. Reference models are evaluated once per
scenario and process (:func:`prepare_scenario`); their evaluations are kept in memory (for the
:data:`MAX_SCENARIO_STATES` most recently used scenarios) and reused by every experiment of the
scenario. Their own figures are computed and stored once per store; a later process reads the
Retrained model's metrics back from its stored result instead.

Progress is reported as ``progress(stage, fraction, **figures)`` with ``stage`` one of
:data:`STAGES` and ``fraction`` the completed share of that stage, counted in real work units
(batches, layers, steps), not timers.

A stored result (``result.json``, see :mod:`mucomp.store`) holds:

- ``id``, ``kind`` (``original`` / ``retrained`` / ``unlearned`` / ``custom``), ``schema_version``,
  ``created_at``, ``code_version``, ``owner`` (browser session that made it, or null),
  ``method_label``;
- ``config``: the scenario (``dataset``, ``forget`` and, for one class, ``forget_class``,
  ``train_seed``, ``data_seed``, ``arch``; ``forget_indices`` for an index set), the unlearning
  ``seed``, ``method``, ``base``, ``epochs``, ``lr``, ``batch_size``, ``params`` (the method's
  own hyper-parameters as used); ``group``: the replicate group (unlearned experiments);
- ``metrics``: ``UA``, ``RA``, ``TUA``, ``TRA``, ``RT`` (s; null for references and uploads),
  ``cost`` (``samples_forwarded``, ``samples_backpropagated``, ``optimizer_steps``: the
  hardware-independent cost of the method, see :class:`mucomp.methods.UnlearnResult`; null for
  references and uploads; absent in results stored before it existed),
  ``PS``, ``MIA_efficacy``, ``MIA_svc_accuracy``, ``avg_gap``, ``accs``, ``t_accs`` ([C]),
  ``label_dist``, ``conf_dist``, ``t_label_dist``, ``t_conf_dist`` ([C][C]);
- ``attack``: per forget-class training image (``indices``, in scenario order): ``entropy``,
  ``confidence`` (top-1 log-odds), ``probs`` ([n][C], softmax at T = 1), and ``worst_case``
  (the strongest threshold attack against the Retrained model: strategy, metric, direction,
  threshold, fpr, fnr, attack_score, success_rate, privacy_score);
- ``cka``: ``layers`` and ``{"original" | "retrained": {subset: {layer: CKA}}}`` for the subsets
  ``train_forget``, ``train_retain``, ``test_forget``, ``test_retain``;
- ``embedding``: the model's own UMAP layout of the scenario's embedding subset: ``indices``,
  ``x``, ``y``, ``pred``, ``probs_t2`` ([n][C], softmax at T = 2);
- ``epochs``: per-epoch records ``{"epoch", "forget_accuracy", "loss", "seconds"}``;
- ``timings``: seconds per stage (``warmup``: the process's one-time warm-up before the
  method's clock, 0 when it was warm; never part of RT);
- ``evaluation``: ``precision`` the evaluation pass ran in (``fp32``, or the ``bf16`` / ``fp16``
  autocast ``MUCOMP_PRECISION`` asked for and the device gave) and its ``device`` type;
- ``environment``: :func:`mucomp.sharing.environment.environment` of the process that ran it
  (python, libraries, code hash, device, precision settings, torch threads).
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mucomp import __version__, settings
from mucomp.data import Scenario
from mucomp.evaluation import Evaluation, evaluate_scenario
from mucomp.execution.jobs import MAX_RUNS, TooManyRunsError, check_run_count  # noqa: F401  (re-exported)
from mucomp.forget_sets import ForgetSet, index_set
from mucomp.locks import locked
from mucomp.metrics import AVG_GAP_KEYS, avg_gap, model_metrics, softmax
from mucomp.models import layer_names, model_from_state_dict
from mucomp.precision import requested_precision
from mucomp.references import default_source, load_reference
from mucomp.seeds import validate_seed
from mucomp.store import Experiment, ExperimentExistsError, ExperimentStore, StoreError
from mucomp.training import RunStopped

STAGES = ("references", "unlearning", "evaluating", "privacy", "similarity", "embedding", "saving")
ProgressFn = Callable[..., None]
CancelFn = Callable[[], bool]


class ExperimentStopped(RunStopped):
    """An experiment ended without a result: ``status`` is ``"diverged"``, ``"cancelled"`` or
    ``"failed"`` (an exception inside the method); the message says why."""


@dataclass
class ExperimentConfig:
    """Everything that defines one experiment.

    The scenario part: ``dataset``, the forget set (``forget``: ``class:3``, ``classes:3,5``,
    ``random:10%``, ``random:100``, ``indices:FILE``; ``forget_class`` is the short form of
    ``class:K``), ``train_seed`` (trains the references), ``data_seed`` (a random forget set and
    the fixed subsets) and ``arch`` (None: the data set's default). The run's part: ``seed`` (the
    **unlearning seed**: batch order, random labels, masks' ties), ``method``, ``base``
    (``"original"`` or the id of a stored experiment to start from), ``epochs``, ``lr`` and
    ``batch_size`` (None: the method's defaults for the data set) and ``params`` (the method's
    own hyper-parameters). After construction the scenario fields are normalised (``forget`` is the
    canonical text, an index set's indices are in ``forget_indices``).
    """

    dataset: str = "digits"
    forget_class: int | str | None = None
    seed: int = 0
    method: str = "ga"
    base: str = "original"
    epochs: int | None = None
    lr: float | None = None
    batch_size: int | None = None
    params: dict = field(default_factory=dict)
    forget: str | None = None
    train_seed: int = 0
    data_seed: int = 0
    arch: str | None = None
    forget_indices: list[int] | None = None

    def __post_init__(self) -> None:
        self.seed = validate_seed(self.seed)
        scenario = self.scenario  # validates the scenario part
        self.forget, self.forget_class, self.arch = scenario.forget_set.text, scenario.forget_class, scenario.arch
        self.train_seed, self.data_seed = scenario.seed, scenario.data_seed
        self.forget_indices = list(scenario.forget_set.indices) if scenario.forget_set.kind == "indices" else None

    @classmethod
    def for_scenario(cls, scenario: Scenario, **run: object) -> ExperimentConfig:
        """A config of ``scenario`` with the run's fields ``run`` (``seed``, ``method``, ...)."""
        fields = scenario.config_fields()
        return cls(**{k: v for k, v in fields.items() if k != "forget_class"}, **run)  # type: ignore[arg-type]

    @property
    def scenario(self) -> Scenario:
        forget: str | ForgetSet | None = self.forget
        if self.forget_indices is not None and (forget is None or str(forget).startswith("indices:")):
            forget = index_set(self.forget_indices)
        return Scenario(self.dataset, self.forget_class if forget is None else None, self.train_seed,
                        forget, self.data_seed, self.arch)

    def hyper(self) -> dict:
        """User-set hyper-parameters (common ones and the method's own), unset ones left out."""
        common = {k: getattr(self, k) for k in ("epochs", "lr", "batch_size") if getattr(self, k) is not None}
        return {**common, **self.params}

    def to_dict(self) -> dict:
        data = asdict(self)
        if data["forget_indices"] is None:
            del data["forget_indices"]
        return data

    @classmethod
    def from_dict(cls, data: dict) -> ExperimentConfig:
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown config keys {unknown}; known: {sorted(known)}")
        data = dict(data)
        if data.get("forget") is not None:
            data["forget_class"] = None  # the forget set says it; the stored class is its echo
        return cls(**data)


GRID_KEYS = ("epochs", "lr", "batch_size")

def grid_size(grid: dict[str, list]) -> int:
    """How many runs ``grid`` makes (the product of its value lists' lengths), without building
    any config. ValueError when a value list is not a non-empty list or tuple."""
    n = 1
    for key, values in grid.items():
        if not isinstance(values, (list, tuple)) or not values:
            raise ValueError(f"grid values for {key!r} must be a non-empty list")
        n *= len(values)
    return n


def expand_grid(
    config: ExperimentConfig, grid: dict[str, list], max_runs: int | None = MAX_RUNS
) -> list[ExperimentConfig]:
    """One config per combination of the ``grid`` values (keys: epochs, lr, batch_size or a
    method parameter), in a stable order (the last key varies fastest).

    Raises :class:`TooManyRunsError` before building anything when the grid makes more than
    ``max_runs`` runs (``None``: no limit).
    """
    if not grid:
        return [config]
    check_run_count(grid_size(grid), max_runs, what="this grid")
    keys = list(grid)
    configs = []
    for combination in itertools.product(*(grid[k] for k in keys)):
        updated = copy.deepcopy(config)
        for key, value in zip(keys, combination, strict=True):
            if key in GRID_KEYS:
                setattr(updated, key, value)
            else:
                updated.params[key] = value
        configs.append(updated)
    return configs


# ---------------------------------------------------------------------------------------------
# Scenario state: the references, evaluated once per scenario and process


@dataclass
class ReferenceState:
    """A reference model of a scenario with its evaluations (never mutated)."""

    kind: str
    model: nn.Module
    checkpoint_id: str
    evals: dict[str, Evaluation]
    experiment_id: str
    source: str = "train"  # "trained" / "cache" (local) or "hub" (a published checkpoint)


@dataclass
class ScenarioState:
    """What every experiment of one scenario reuses: both references and their evaluations.

    ``retrained_metrics``: the Retrained model's ``metrics`` block (the Avg. Gap is measured
    against it), freshly computed or read back from its stored result.
    """

    scenario: Scenario
    original: ReferenceState
    retrained: ReferenceState
    device: torch.device
    retrained_metrics: dict = field(default_factory=dict)
    _retrained_attack_values: dict[str, np.ndarray] | None = field(default=None, init=False, repr=False)

    @property
    def reference_evals(self) -> dict[str, dict[str, Evaluation]]:
        return {"original": self.original.evals, "retrained": self.retrained.evals}

    @property
    def retrained_attack_values(self) -> dict[str, np.ndarray]:
        """The Retrained model's attack values on the forget images
        (:func:`mucomp.privacy.forget_feature_values`): fixed per scenario, computed once, read-only."""
        if self._retrained_attack_values is None:
            from mucomp.privacy import forget_feature_values

            values = forget_feature_values(self.scenario, self.retrained.evals["train"])
            for array in values.values():
                array.setflags(write=False)
            self._retrained_attack_values = values
        return self._retrained_attack_values


#: Prepared scenarios kept per process; the least recently used one is dropped beyond this (its
#: models and evaluations are freed once no caller holds its state).
MAX_SCENARIO_STATES = 4
_STATES: OrderedDict[tuple, ScenarioState] = OrderedDict()
_STATES_LOCK = threading.Lock()
#: The figures of recently stored references, for another store of the same process (another
#: MUCOMP_HOME): the same reference models give the same figures, so they are not recomputed.
#: Keyed by the scenario, both reference ids (the Original's figures compare it with the
#: Retrained) and the device.
_REFERENCE_FIGURES: OrderedDict[tuple, dict] = OrderedDict()
MAX_REFERENCE_FIGURES = 8


def reference_experiment_id(scenario: Scenario, kind: str, checkpoint_id: str) -> str:
    """The store id of a scenario's reference: kind, the scenario key and a checkpoint hash
    (``retrained-digits-c3-s0-<hash>``).

    Built only from validated fields (never from user text), so it is a safe path component; a
    new checkpoint or recipe gives a new id instead of overwriting the old figures.
    """
    import hashlib

    digest = hashlib.sha256(checkpoint_id.encode()).hexdigest()[:6]
    return f"{kind}-{scenario.key.replace('_', '-').replace('+', '-')}-{digest}"


def _stage(progress: ProgressFn | None, stage: str):
    """A ``progress(done, total, **figures)`` callback reporting one stage's real fraction."""

    def report(done: float, total: float, **figures) -> None:
        if progress is not None:
            progress(stage, min(max(done / total, 0.0), 1.0) if total else 1.0, **figures)

    return report


def prepare_scenario(
    scenario: Scenario,
    store: ExperimentStore,
    *,
    source: str | None = None,
    device: torch.device | str | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
) -> ScenarioState:
    """Load (or train) both references, evaluate each once per split and store their figures.

    Cached per process (the :data:`MAX_SCENARIO_STATES` most recently used): the second call for
    the same scenario returns the same state at once. ``source`` goes to
    :func:`mucomp.references.load_reference`. The references' results are saved in ``store``
    (once; reference experiments can't be deleted) so that the Screen table lists them beside the
    experiments; a reference already stored is not recomputed (the Retrained model's metrics are
    read back from its result).
    """
    device = torch.device(device) if device is not None else settings.default_device()
    source = source or default_source(scenario.dataset, scenario.forget_class)
    # The precision too: a process that changes MUCOMP_PRECISION must not compare a model's
    # bf16 evaluation with references evaluated in fp32.
    key = (scenario.key, source, str(device), requested_precision(), str(store.root.resolve()))
    with _STATES_LOCK:
        state = _STATES.get(key)
        if state is not None:
            _STATES.move_to_end(key)
    if state is not None:
        return state
    report = _stage(progress, "references")
    refs = {}
    for position, kind in enumerate(("original", "retrained")):

        def training_progress(epoch, total, position=position, **figures):
            report(position + 0.5 * epoch / total, 2, epoch=epoch, epochs=total, **figures)

        ref = load_reference(scenario, kind, source=source, device=device, progress=training_progress,
                             cancelled=cancel)
        evals = evaluate_scenario(
            ref.model, scenario, progress=lambda done, total, position=position: report(position + 0.5 + 0.5 * done / total, 2)
        )
        refs[kind] = ReferenceState(
            kind, ref.model, ref.checkpoint_id, evals, reference_experiment_id(scenario, kind, ref.checkpoint_id),
            ref.source,
        )
    state = ScenarioState(scenario, refs["original"], refs["retrained"], device)
    for kind in ("retrained", "original"):  # the Original's figures compare it with the Retrained
        metrics = _store_reference(scenario, refs[kind], state, store, cancel)
        if kind == "retrained":
            state.retrained_metrics = metrics
    for ref in refs.values():  # keep only the Gram matrices CKA needs, not the activations
        _compact(ref.evals, scenario)
    with _STATES_LOCK:
        state = _STATES.setdefault(key, state)
        _STATES.move_to_end(key)
        while len(_STATES) > MAX_SCENARIO_STATES:
            _STATES.popitem(last=False)
    return state


def _reference_lock_path(store: ExperimentStore, scenario: Scenario, experiment_id: str) -> Path:
    """The lock file guarding the storing of one reference of ``scenario`` in ``store``.

    In ``<store root>/.locks/``: the store skips dot-folders, and the path is built only from
    validated fields (the scenario key and a reference id), never from user text.
    """
    return store.root / ".locks" / f"{scenario.key}--{experiment_id}.lock"


def _store_reference(
    scenario: Scenario, ref: ReferenceState, state: ScenarioState, store: ExperimentStore, cancel: CancelFn | None
) -> dict:
    """The ``metrics`` of a reference's stored result, computing and storing its figures first when
    they are not stored yet.

    "Check stored -> compute figures -> save" runs under a thread-and-file lock (mucomp.locks) per
    store, scenario and reference, so when two processes prepare the same scenario at once the
    second waits (cancellably) and then reads the metrics the first stored instead of computing
    them again and failing on the existing id.
    """
    lock_path = _reference_lock_path(store, scenario, ref.experiment_id)
    with locked(lock_path, cancelled=cancel, waiting_for=f"another run to store the {ref.kind} reference"):
        metrics = _stored_metrics(store, ref.experiment_id)
        if metrics is not None:
            return metrics
        # Not stored yet (or unreadable): compute its figures (once per process).
        figures = _reference_figures(ref, state)
        if not store.exists(ref.experiment_id):
            extra = {}
            check = hub_reference_check(scenario, ref, figures["metrics"])
            if check is not None:
                extra["reference_check"] = check
            device = next(ref.model.parameters()).device  # where the reference was evaluated
            result = _result(ref.experiment_id, ref.kind, _reference_config(scenario, ref), figures, extra, device)
            # Stored meanwhile by a process that does not take the lock (an older version): its
            # figures come from the same models and evaluations.
            with contextlib.suppress(ExperimentExistsError):
                store.save(result, ref.model.state_dict())
        return figures["metrics"]


def _reference_figures(ref: ReferenceState, state: ScenarioState) -> dict:
    """:func:`model_figures` of a reference, computed once per process for its scenario, both
    reference ids and device (see :data:`_REFERENCE_FIGURES`); a private copy each call."""
    key = None
    if state is not None:
        key = (state.scenario.key, ref.experiment_id, state.original.experiment_id,
               state.retrained.experiment_id, str(state.device), ref.evals["train"].precision)
    with _STATES_LOCK:
        figures = _REFERENCE_FIGURES.get(key) if key is not None else None
    if figures is None:
        figures = model_figures(ref.evals, state, model_id=ref.experiment_id)
        if key is not None:
            with _STATES_LOCK:
                _REFERENCE_FIGURES[key] = figures
                while len(_REFERENCE_FIGURES) > MAX_REFERENCE_FIGURES:
                    _REFERENCE_FIGURES.popitem(last=False)
    return copy.deepcopy(figures)


def hub_reference_check(scenario: Scenario, ref: ReferenceState, metrics: dict) -> dict | None:
    """:func:`mucomp.reference_check.check_reference` of a Hub reference (None for local ones and
    for files nothing was published for)."""
    from mucomp.reference_check import check_reference

    if ref.source != "hub":
        return None
    filename = ref.checkpoint_id.rsplit("/", 1)[-1]
    return check_reference(scenario.dataset, ref.kind, scenario.forget_class, filename, ref.evals["test"], metrics)


def _stored_metrics(store: ExperimentStore, experiment_id: str) -> dict | None:
    """The ``metrics`` block of a stored reference result, or None when it is missing, unreadable
    or lacks a metric the Avg. Gap needs (then the caller recomputes the figures)."""
    if not store.exists(experiment_id):
        return None
    try:
        metrics = store.load(experiment_id).metrics
    except StoreError:
        return None
    return metrics if all(k in metrics for k in AVG_GAP_KEYS) else None


def clear_scenario_cache() -> None:
    """Forget every prepared scenario (and stored reference's figures) of this process."""
    with _STATES_LOCK:
        _STATES.clear()
        _REFERENCE_FIGURES.clear()


def _compact(evals: dict[str, Evaluation], scenario: Scenario) -> None:
    """Replace kept activations by the Gram matrices of the CKA subsets (all CKA needs)."""
    from mucomp.similarity import precompute_grams

    for evaluation in evals.values():
        precompute_grams(evaluation, scenario.cka_indices, drop_activations=True)


# ---------------------------------------------------------------------------------------------
# Every figure of one model, from its evaluations


def model_figures(
    evals: dict[str, Evaluation],
    state: ScenarioState,
    *,
    model_id: str,
    progress: ProgressFn | None = None,
) -> dict:
    """Every figure the pages show for one model, read from its train and test evaluations.

    Returns ``{"metrics", "attack", "cka", "embedding", "audits", "timings", "evaluation"}`` (``audits``:
    :func:`mucomp.audits.class_leakage` and :func:`mucomp.audits.layer_probes`); nothing here runs a
    model. ``model_id`` names the model (an experiment or reference id); nothing is cached under
    it: each model's figures are computed once, its UMAP layout included, and then stored.
    """
    from mucomp.embedding import embed
    from mucomp.privacy import feature_values, forget_logits, privacy_metrics
    from mucomp.similarity import cka_report

    scenario = state.scenario
    train, test = evals["train"], evals["test"]
    timings = {}

    start = time.perf_counter()
    metrics = model_metrics(train, test, scenario)
    report = _stage(progress, "privacy")
    report(0, 3)
    logits = forget_logits(scenario, train)
    values = feature_values(logits)  # once: the privacy score and the stored attack values share them
    privacy = privacy_metrics(scenario, train, test, state.retrained.evals["train"], values=values,
                              retrained_values=state.retrained_attack_values)
    report(2, 3)
    attack = {
        "indices": scenario.forget_indices.tolist(),
        "entropy": values["entropy"].tolist(),
        "confidence": values["confidence"].tolist(),
        "probs": softmax(logits).tolist(),
        "worst_case": privacy.pop("PS_worst_case"),  # the attack behind PS (51-point grid)
        "worst_case_exact": privacy.pop("PS_exact_worst_case"),  # the one behind PS_exact
    }
    report(3, 3)
    metrics.update(privacy)
    from mucomp.audits import class_leakage, layer_probes

    retrained_probs = softmax(forget_logits(scenario, state.retrained.evals["train"]))
    # The forgotten class of each forget image is its own label (one class, several, or a random set).
    forgotten = scenario.data.train.labels_np[scenario.forget_indices]
    leakage = class_leakage(attack["probs"], retrained_probs, forgotten)
    metrics["leakage_js"] = leakage["js_mean"]
    metrics["avg_gap"] = avg_gap(metrics, state.retrained_metrics or metrics)  # the Retrained: itself
    metrics["cost"] = None  # run_experiment sets the method's; references and uploads ran none
    timings["privacy"] = time.perf_counter() - start

    start = time.perf_counter()
    subsets = scenario.cka_indices
    probes = layer_probes(evals, subsets, layer_names(scenario.arch), seed=scenario.data_seed)
    timings["probes"] = time.perf_counter() - start

    start = time.perf_counter()
    report = _stage(progress, "similarity")
    cka = {}
    for position, (reference, ref_evals) in enumerate(state.reference_evals.items()):
        cka.update(cka_report({reference: ref_evals}, evals, subsets))
        report(position + 1, 2)
    timings["similarity"] = time.perf_counter() - start

    start = time.perf_counter()
    report = _stage(progress, "embedding")
    report(0, 1)
    indices = scenario.embedding_indices
    rows = train.positions(indices)
    layout = embed(train.features[rows], scenario.data_seed)
    embedding = {
        "indices": indices.tolist(),
        "x": layout[:, 0].tolist(),
        "y": layout[:, 1].tolist(),
        "pred": train.predictions[rows].tolist(),
        "probs_t2": softmax(train.logits[rows], 2.0).tolist(),
    }
    report(1, 1)
    timings["embedding"] = time.perf_counter() - start
    return {
        "metrics": metrics,
        "attack": attack,
        "cka": {"layers": layer_names(scenario.arch), **cka},
        "embedding": embedding,
        "audits": {"leakage": leakage, "probes": probes},
        "timings": timings,
        "evaluation": {"precision": train.precision, "device": torch.device(state.device).type},
    }


def evaluate_model(
    model: nn.Module, state: ScenarioState, *, model_id: str, progress: ProgressFn | None = None
) -> dict:
    """ONE forward pass per split of ``model``, then :func:`model_figures`; adds the evaluation
    time to ``timings``."""
    start = time.perf_counter()
    report = _stage(progress, "evaluating")
    report(0, 1)
    evals = evaluate_scenario(model, state.scenario, progress=report)
    seconds = time.perf_counter() - start
    figures = model_figures(evals, state, model_id=model_id, progress=progress)
    figures["timings"] = {"evaluation": seconds, **figures["timings"]}
    return figures


def _reference_config(scenario: Scenario, ref: ReferenceState) -> dict:
    return {
        **scenario.config_fields(),
        "seed": scenario.seed,
        "method": ref.kind,
        "base": None,
        "checkpoint": ref.checkpoint_id,
    }


def _result(experiment_id: str, kind: str, config: dict, figures: dict, extra: dict, device: torch.device) -> dict:
    # The environment of the process that ran it (code, libraries, device, precision, threads):
    # what a bundle records and `mucomp reproduce` compares and sets, not the exporting shell's.
    from mucomp.sharing.environment import environment

    return {
        "id": experiment_id,
        "kind": kind,
        "config": config,
        "code_version": __version__,
        "environment": environment(device),
        **figures,
        **extra,
    }


# ---------------------------------------------------------------------------------------------
# One experiment


def check_base(config: ExperimentConfig, store: ExperimentStore) -> Experiment | None:
    """The stored base experiment of ``config`` (None for the Original), checked to belong to the
    config's scenario before any work. ValueError names the base's scenario otherwise."""
    if config.base == "original":
        return None
    base = store.load(config.base)
    scenario = config.scenario
    base_scenario = Scenario.from_config(base.config)
    if (base_scenario.dataset, base_scenario.forget_set, base_scenario.arch) != (scenario.dataset, scenario.forget_set, scenario.arch):
        raise ValueError(
            f"base experiment {config.base} belongs to {base_scenario.dataset} / forget "
            f"{base_scenario.forget_set.text} / {base_scenario.arch}, not to this scenario; pick a base of the same scenario"
        )
    return base


def load_base_model(config: ExperimentConfig, state: ScenarioState, store: ExperimentStore,
                    base: Experiment | None = None) -> nn.Module:
    """A private copy of the base model: the Original, or a stored experiment of the same scenario
    (``base``: that experiment, already read by :func:`check_base`)."""
    if config.base == "original":
        return copy.deepcopy(state.original.model)
    base = base if base is not None else check_base(config, store)
    spec = state.scenario.spec
    return model_from_state_dict(state.scenario.arch, spec.num_classes, base.state_dict()).to(state.device)


def run_experiment(
    config: ExperimentConfig,
    store: ExperimentStore,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
    *,
    owner: str | None = None,
    references: ScenarioState | None = None,
) -> Experiment:
    """Run one experiment end to end and store it.

    Stages (``progress(stage, fraction, **figures)``): ``references`` (first experiment of a
    scenario in this process only), ``unlearning`` (per epoch, with ``epoch``, ``epochs``,
    ``forget_accuracy``), ``evaluating`` (images done), ``privacy``, ``similarity``,
    ``embedding``, ``saving``.

    ``references``: the scenario's :class:`ScenarioState` when the caller holds it already; by
    default it comes from :func:`prepare_scenario` (cached per process: a worker of the job API
    prepares each scenario once).

    Raises :class:`ExperimentStopped` (status ``"diverged"`` / ``"cancelled"`` / ``"failed"``)
    when the method did not complete: nothing is stored then. ValueError for a bad config.
    """
    from mucomp.embedding import settle_warm_up
    from mucomp.methods import get_method, run_unlearning

    info = get_method(config.method)
    scenario = config.scenario
    info.resolve_for(scenario, config.hyper())  # validate before any work
    base = check_base(config, store)
    state = _scenario_state(scenario, store, references, progress=progress, cancel=cancel)
    model = load_base_model(config, state, store, base)

    settle_warm_up()  # a background UMAP compilation must not run inside RT
    _stage(progress, "unlearning")(0, 1)

    def unlearning_progress(epoch, total, **figures):
        if progress is not None:
            progress("unlearning", epoch / total, epoch=epoch, epochs=total, **figures)

    outcome = run_unlearning(
        info.name, model, scenario, config.hyper(), config.seed,
        device=state.device, progress=unlearning_progress, cancelled=cancel,
    )
    if not outcome.ok:
        raise ExperimentStopped(outcome.status, outcome.message)
    experiment_id = store.new_id()
    figures = evaluate_model(model, state, model_id=experiment_id, progress=progress)
    figures["metrics"]["RT"] = outcome.rt_seconds
    figures["metrics"]["cost"] = dict(outcome.cost)
    figures["timings"] = {"warmup": outcome.warmup_seconds, "unlearning": outcome.rt_seconds,
                          "preparation": outcome.prep_seconds, "epoch_checks": outcome.eval_seconds,
                          **figures["timings"]}
    _stage(progress, "saving")(0, 1)
    resolved = {**config.to_dict(), **{k: outcome.hyper[k] for k in GRID_KEYS if k in outcome.hyper}}
    resolved["params"] = {k: v for k, v in outcome.hyper.items() if k not in GRID_KEYS}
    result = _result(experiment_id, "unlearned", resolved, figures, {
        "method_label": info.label,
        "epochs": outcome.epochs,
        "owner": owner,
    }, state.device)
    experiment = store.save(result, model.state_dict())
    _stage(progress, "saving")(1, 1)
    return experiment


def _scenario_state(
    scenario: Scenario, store: ExperimentStore, references: ScenarioState | None, **kwargs
) -> ScenarioState:
    if references is None:
        return prepare_scenario(scenario, store, **kwargs)
    if references.scenario.key != scenario.key:
        raise ValueError(f"the references given are of scenario {references.scenario.key}, not {scenario.key}")
    return references


def store_custom_model(
    model: nn.Module,
    scenario: Scenario,
    store: ExperimentStore,
    *,
    label: str,
    owner: str | None = None,
    progress: ProgressFn | None = None,
    references: ScenarioState | None = None,
    kind: str = "custom",
    config: dict | None = None,
    extra: dict | None = None,
    checks: Callable[[dict], dict] | None = None,
) -> Experiment:
    """Evaluate an uploaded (or otherwise external) model as is and store it as a ``custom``
    experiment of ``scenario`` (or ``kind="published"`` for a published unlearned checkpoint).
    ``label`` is shown in the table; it never reaches a path. ``config`` entries (method, source,
    recipe) and ``extra`` top-level entries are added to the stored result; ``checks(metrics)``
    may add more from the evaluation (e.g. a check against published accuracies) before the one
    save. ``references`` as in :func:`run_experiment`."""
    state = _scenario_state(scenario, store, references, progress=progress)
    model = model.to(state.device).eval()
    experiment_id = store.new_id()
    figures = evaluate_model(model, state, model_id=experiment_id, progress=progress)
    figures["metrics"]["RT"] = None
    figures["metrics"]["cost"] = None
    base_config = {**scenario.config_fields(), "seed": scenario.seed,
                   "method": "custom", "base": None, "epochs": None, "lr": None, "batch_size": None, "params": {}}
    base_config.update(config or {})
    tags = {"method_label": str(label)[:120], "owner": owner, **(extra or {})}
    if checks is not None:
        tags.update(checks(figures["metrics"]))
    result = _result(experiment_id, kind, base_config, figures, tags, state.device)
    return store.save(result, model.state_dict())
