"""One experiment end to end: base model -> method -> one evaluation pass per split -> store.

:func:`run_experiment` copies the base model (a cached reference is never mutated), runs the
unlearning method, then :func:`~mucomp.experiment.figures.evaluate_model` computes every figure
from ONE forward pass per split, and the store saves it atomically. :func:`store_custom_model`
evaluates an external model (an upload, a published checkpoint) the same way.

Progress is reported as ``progress(stage, fraction, **figures)`` with ``stage`` one of
:data:`~mucomp.experiment.figures.STAGES`.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable

from torch import nn

from mucomp.config import ExperimentConfig, base_problem
from mucomp.data import Scenario
from mucomp.embedding import settle_warm_up
from mucomp.experiment.figures import evaluate_model, result_record
from mucomp.experiment.state import ScenarioState, prepare_scenario
from mucomp.methods import get_method, run_unlearning
from mucomp.models import model_from_state_dict
from mucomp.progress import CancelFn, ProgressFn, RunStopped, stage_reporter
from mucomp.store import Experiment, ExperimentStore


class ExperimentStopped(RunStopped):
    """An experiment ended without a result: ``status`` is ``"diverged"``, ``"cancelled"`` or
    ``"failed"`` (an exception inside the method); the message says why."""


def check_base(config: ExperimentConfig, store: ExperimentStore) -> Experiment | None:
    """The stored base experiment of ``config`` (None for the Original), checked by
    :func:`mucomp.config.base_problem` before any work; ValueError with its message otherwise."""
    if config.base == "original":
        return None
    base = store.load(config.base)
    problem = base_problem(config, base.id, base.config)
    if problem is not None:
        raise ValueError(problem)
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
    info = get_method(config.method)
    scenario = Scenario.from_config(config)
    info.resolve_for(scenario, config.hyper())  # validate before any work
    base = check_base(config, store)
    clock = time.perf_counter()
    state = _scenario_state(scenario, store, references, progress=progress, cancel=cancel)
    setup = {"references": time.perf_counter() - clock}  # ~0 once this process holds the scenario
    clock = time.perf_counter()
    model = load_base_model(config, state, store, base)
    setup["base_model"] = time.perf_counter() - clock
    clock = time.perf_counter()
    settle_warm_up()  # a background UMAP compilation must not run inside RT
    setup["umap_compile_wait"] = time.perf_counter() - clock
    stage_reporter(progress, "unlearning")(0, 1)

    def unlearning_progress(epoch, total, **figures):
        if progress is not None:
            progress("unlearning", epoch / total, epoch=epoch, epochs=total, **figures)

    outcome = run_unlearning(
        info.name, model, scenario, config.hyper(), config.unlearn_seed,
        device=state.device, progress=unlearning_progress, cancelled=cancel,
    )
    if not outcome.ok:
        raise ExperimentStopped(outcome.status, outcome.message)
    experiment_id = store.new_id()
    figures = evaluate_model(model, state, model_id=experiment_id, progress=progress)
    figures["metrics"]["RT"] = outcome.rt_seconds
    figures["metrics"]["cost"] = dict(outcome.cost)
    figures["timings"] = {**setup, "warmup": outcome.warmup_seconds, "unlearning": outcome.rt_seconds,
                          "preparation": outcome.prep_seconds, "epoch_checks": outcome.eval_seconds,
                          **figures["timings"]}
    stage_reporter(progress, "saving")(0, 1)
    resolved = info.stored_config(config)  # the one rule Build's "this exact run exists" compares with
    result = result_record(experiment_id, "unlearned", resolved, figures, {
        "method_label": info.label,
        "epochs": outcome.epochs,
        "owner": owner,
        "references": state.reference_identity(),
    }, state.device)
    experiment = store.save(result, model.state_dict())
    stage_reporter(progress, "saving")(1, 1)
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
    base_config = {**scenario.config_fields(), "unlearn_seed": scenario.train_seed,
                   "method": "custom", "base": None, "epochs": None, "lr": None, "batch_size": None, "params": {}}
    base_config.update(config or {})
    tags = {"method_label": str(label)[:120], "owner": owner, "references": state.reference_identity(), **(extra or {})}
    if checks is not None:
        tags.update(checks(figures["metrics"]))
    result = result_record(experiment_id, kind, base_config, figures, tags, state.device)
    return store.save(result, model.state_dict())
