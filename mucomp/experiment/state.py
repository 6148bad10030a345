"""A scenario's references, prepared once per process: loaded or trained, evaluated once per
split, their figures stored once per store.

:func:`prepare_scenario` returns a :class:`ScenarioState` that every experiment of the scenario
reuses (kept in memory for the :data:`MAX_SCENARIO_STATES` most recently used scenarios). The
references' own figures are computed and stored once per store; a later process reads the
Retrained model's metrics back from its stored result instead.
"""

from __future__ import annotations

import contextlib
import copy
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mucomp import settings
from mucomp.config import reference_experiment_id
from mucomp.data import Scenario, clear_dataset_cache
from mucomp.evaluation import Evaluation, evaluate_scenario
from mucomp.experiment.figures import forget_probabilities, model_figures, result_record
from mucomp.locks import locked
from mucomp.methods.guard import data_tainted, forget_tainted
from mucomp.metrics import AVG_GAP_KEYS
from mucomp.precision import requested_precision
from mucomp.privacy import forget_feature_values
from mucomp.progress import CancelFn, ProgressFn, stage_reporter
from mucomp.reference_check import check_reference
from mucomp.references import default_source, load_reference
from mucomp.similarity import precompute_grams
from mucomp.store import ExperimentExistsError, ExperimentStore, StoreError
from mucomp.weights import weights_sha256


@dataclass
class ReferenceState:
    """A reference model of a scenario with its evaluations (never mutated)."""

    kind: str
    model: nn.Module
    checkpoint_id: str
    evals: dict[str, Evaluation]
    experiment_id: str
    source: str = "train"  # "trained" / "cache" (local) or "hub" (a published checkpoint)
    weights_sha256: str = ""  # :func:`mucomp.weights.weights_sha256` of the model evaluated here


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

    def reference_identity(self) -> dict[str, dict[str, str]]:
        """What an experiment's figures were computed against (stored as its ``references``):
        ``{"original" | "retrained": {"id": stored experiment id, "weights_sha256": hash}}``."""
        return {ref.kind: {"id": ref.experiment_id, "weights_sha256": ref.weights_sha256}
                for ref in (self.original, self.retrained)}

    @property
    def reference_evals(self) -> dict[str, dict[str, Evaluation]]:
        return {"original": self.original.evals, "retrained": self.retrained.evals}

    @cached_property
    def retrained_attack_values(self) -> dict[str, np.ndarray]:
        """The Retrained model's attack values on the forget images
        (:func:`mucomp.privacy.forget_feature_values`): fixed per scenario, computed once, read-only."""
        values = forget_feature_values(self.scenario, self.retrained.evals["train"])
        for array in values.values():
            array.setflags(write=False)
        return values

    @cached_property
    def retrained_forget_probs(self) -> np.ndarray:
        """The Retrained model's softmax (T = 1) on the forget images ``[n_forget, C]``, read-only."""
        probs = forget_probabilities(self.scenario, self.retrained.evals["train"])
        probs.setflags(write=False)
        return probs


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
    scenario = Scenario.of(scenario)
    device = torch.device(device) if device is not None else settings.default_device()
    source = source or default_source(scenario)
    # The precision too: a process that changes MUCOMP_PRECISION must not compare a model's
    # bf16 evaluation with references evaluated in fp32.
    key = (scenario.key, source, str(device), requested_precision(), str(store.root.resolve()))
    with _STATES_LOCK:
        state = _STATES.get(key)
        if state is not None:
            _STATES.move_to_end(key)
    if state is not None:
        return state
    if not scenario.by_class:  # draw and check the images now (too few to evaluate?), not after training
        scenario.forget_indices  # noqa: B018
    report = stage_reporter(progress, "references")
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
            ref.source, weights_sha256(ref.model.state_dict()),
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
            result = result_record(ref.experiment_id, ref.kind, _reference_config(scenario, ref), figures, extra, device)
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


def reload_tainted_data() -> None:
    """Forget the cached data sets and prepared scenarios of this process after a method wrote
    into them (:func:`mucomp.methods.guard.data_tainted`); the next run loads them again."""
    if data_tainted():
        clear_dataset_cache()
        clear_scenario_cache()
        forget_tainted()


def clear_scenario_cache() -> None:
    """Forget every prepared scenario (and stored reference's figures) of this process."""
    with _STATES_LOCK:
        _STATES.clear()
        _REFERENCE_FIGURES.clear()


def _compact(evals: dict[str, Evaluation], scenario: Scenario) -> None:
    """Replace kept activations by the Gram matrices of the CKA subsets (all CKA needs)."""
    for evaluation in evals.values():
        precompute_grams(evaluation, scenario.cka_indices, drop_activations=True)


def _reference_config(scenario: Scenario, ref: ReferenceState) -> dict:
    # A reference has no unlearning run: its unlearning seed is its training seed, as in every
    # stored reference since schema version 3.
    return {
        **scenario.config_fields(),
        "unlearn_seed": scenario.train_seed,
        "method": ref.kind,
        "base": None,
        "checkpoint": ref.checkpoint_id,
    }
