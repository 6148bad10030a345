"""Carrying out one job request in this process: what every backend's worker calls.

Imports the experiment layer (torch, the methods): only worker processes, Ray tasks and the
command line's inline executor import this module, never the pages.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mucomp.config import ExperimentConfig
from mucomp.execution.requests import (
    EvaluateUpload,
    MakeShadowPair,
    PrepareReferences,
    PullPublished,
    RunAudit,
    request_scenario,
    summary,
)
from mucomp.experiment import prepare_scenario, run_experiment, store_custom_model
from mucomp.experiment.audits import run_audits
from mucomp.experiment.shadows import shadow_pair
from mucomp.models import model_from_state_dict
from mucomp.sharing import zoo
from mucomp.store import ExperimentStore


def execute(
    request: Any,
    *,
    progress: Callable[..., None],
    cancel: Callable[[], bool],
    owner: str | None = None,
    store=None,
) -> tuple[str | None, dict]:
    """Carry out one request in this process; returns ``(experiment id or None, summary)``.

    ``store``: the experiment store (default: ``$MUCOMP_HOME/experiments`` as set now). Raises
    like the runner: :class:`~mucomp.experiment.ExperimentStopped` for a run that did not complete,
    ValueError / TypeError for a request that can't run.
    """
    store = store if store is not None else ExperimentStore()
    scenario = request_scenario(request)
    if scenario is None:
        raise TypeError(f"a job cannot run a {type(request).__name__}")
    if isinstance(request, ExperimentConfig):
        experiment = run_experiment(request, store, progress, cancel, owner=owner)
        return experiment.id, summary(experiment.result)
    if isinstance(request, PrepareReferences):
        prepare_scenario(scenario, store, progress=progress, cancel=cancel)
        return None, {}
    if isinstance(request, EvaluateUpload):
        model = model_from_state_dict(scenario.arch, scenario.spec.num_classes, request.weights)
        state = prepare_scenario(scenario, store, progress=progress, cancel=cancel)
        experiment = store_custom_model(model, scenario, store, label=request.label, owner=owner,
                                        progress=progress, references=state)
        return experiment.id, summary(experiment.result)
    if isinstance(request, RunAudit):
        blocks = run_audits(request.experiment_id, request.audits, store=store, shadows=request.shadows,
                            held_out=request.held_out, center=request.center, variance=request.variance,
                            steps=request.steps, seed_offset=request.seed_offset,
                            progress=progress, cancel=cancel)
        figures = {"ulira_acc": blocks["ulira"]["accuracy"]} if "ulira" in blocks else {}
        if "relearn" in blocks:
            figures["relearn_steps"] = blocks["relearn"]["relative"]
        return request.experiment_id, figures
    if isinstance(request, MakeShadowPair):
        def pair_progress(step: str, done: float) -> None:
            progress("shadows", done, seed=request.seed, step=step)

        pair = shadow_pair(request.spec, request.seed, cancel=cancel, progress=pair_progress)
        return None, {"seed": pair.seed, "seconds": pair.seconds, "cached": pair.cached}
    if isinstance(request, PullPublished):
        prepare_scenario(scenario, store, progress=progress, cancel=cancel)
        experiment = zoo.pull(request.repo, scenario, store, owner=owner, progress=progress)
        return experiment.id, summary(experiment.result)
    raise TypeError(f"a job cannot run a {type(request).__name__}")
