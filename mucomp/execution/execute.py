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
    MakeEnsembleMember,
    MakeShadowPair,
    PrepareReferences,
    PullPublished,
    RunAudit,
    RunEnsemble,
    request_scenario,
    summary,
)
from mucomp.experiment import prepare_scenario, run_experiment, store_custom_model
from mucomp.experiment.audits import run_audits
from mucomp.experiment.ensembles import ensemble_member, run_ensemble
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
    if isinstance(request, (MakeEnsembleMember, RunEnsemble)):
        return None, _ensemble_job(request, progress, cancel)
    if isinstance(request, PullPublished):
        prepare_scenario(scenario, store, progress=progress, cancel=cancel)
        experiment = zoo.pull(request.repo, scenario, store, owner=owner, progress=progress)
        return experiment.id, summary(experiment.result)
    raise TypeError(f"a job cannot run a {type(request).__name__}")


def _ensemble_job(request: MakeEnsembleMember | RunEnsemble, progress: Callable[..., None],
                  cancel: Callable[[], bool]) -> dict:
    """One ensemble member made (stage ``member``), or the ensembles made, scored and stored
    (stages ``members``, with ``member`` / ``members``, then ``scoring``); returns the summary."""
    if isinstance(request, MakeEnsembleMember):
        return member_job(request, progress, cancel)
    return ensemble_summary(ensemble_records(request, progress, cancel))


def member_job(request: MakeEnsembleMember, progress: Callable[..., None], cancel: Callable[[], bool]) -> dict:
    """Make (or find cached) the member of ``request`` under ``$MUCOMP_HOME`` (stage ``member``);
    returns the job's summary."""
    def member_progress(step: str, done: float) -> None:
        progress("member", done, kind=request.spec.kind, seed=request.seed, step=step)

    member = ensemble_member(request.spec, request.seed, cancel=cancel, progress=member_progress)
    return {"kind": request.spec.kind, "seed": member.seed, "seconds": member.seconds, "cached": member.cached}


def ensemble_records(request: RunEnsemble, progress: Callable[..., None], cancel: Callable[[], bool], *,
                     save: bool = True) -> dict:
    """Make (or load) the members of ``request`` under ``$MUCOMP_HOME`` and score them (stages
    ``members``, then ``scoring``); returns both records, stored there when ``save``."""
    def members_progress(done: float, total: int, **figures) -> None:
        stage, fraction = ("members", done / total) if done < total else ("scoring", 0.0)
        progress(stage, fraction, member=min(int(done) + 1, total), members=total, **figures)

    return run_ensemble(request.config, request.n, cancel=cancel, progress=members_progress,
                        allow_costly=request.allow_costly, started_at=request.started_at, save=save)


def ensemble_summary(records: dict) -> dict:
    """A finished ensemble job's summary from its two records."""
    unlearned = records["unlearned"]
    return {"ensemble_F": unlearned.forget_quality, "ensemble_score": unlearned.score,
            "klom_p95_forget": unlearned.klom_p95.forget, "n_models": unlearned.n_models, "key": unlearned.key,
            "retrained_key": records["retrained"].key}
