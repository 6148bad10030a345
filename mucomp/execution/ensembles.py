"""Ensembles of the many-model evaluation as jobs of the job API: the requests
(:func:`ensemble_requests`), a blocking run through an executor (:func:`run_ensemble_jobs`) and
the time it will take, stated before it starts (:func:`ensemble_eta`); the ensembles themselves
are :mod:`mucomp.experiment.ensembles`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from mucomp.config import ExperimentConfig
from mucomp.data import Scenario
from mucomp.execution.backends import run_to_completion
from mucomp.execution.requests import MakeEnsembleMember, RunEnsemble
from mucomp.experiment.ensembles import EnsembleSpec, check_ensemble, missing_member_seeds, recorded_seconds
from mucomp.references import cache_path, default_source

#: Seconds one reference model trains on 2 CPU cores (mucomp.recipes' measured figures): the
#: estimate of a member before any was measured here. A Retrained member is one reference
#: training; an unlearned member is estimated at a Retrained member's measured seconds, else at
#: this too (the built-in methods' default budgets on digits take 0.2-1.5 x a reference training:
#: benchmarks/ensembles.py).
ESTIMATED_TRAINING_SECONDS = {"digits_cnn": 4.0, "vit_digits": 21.0, "fmnist_cnn": 96.0}
#: A Retrained member whose reference is trained already (by U-LiRA, or another scenario's
#: ensemble) costs its two evaluation passes: estimated at this share of a training until measured.
EVALUATION_SHARE = 0.05


def _median(values: list[float], what: str) -> tuple[float | None, str]:
    if not values:
        return None, ""
    return float(np.median(values)), f"measured: median of {len(values)} {what}"


def _retrained_cost(config: ExperimentConfig, n: int, fallback: float | None) -> dict[str, Any]:
    """The Retrained side: members missing, how many of them train a reference, seconds each."""
    spec = EnsembleSpec(config, "retrained")
    missing = missing_member_seeds(spec, n)
    to_train = [s for s in missing
                if not cache_path(Scenario.from_config(spec.member_config(s)), "retrained").exists()]
    records = recorded_seconds(spec)
    trained, based_on = _median([r["seconds"] for r in records if r["trained"]], "Retrained model(s) made here")
    if trained is None:
        trained, based_on = fallback, "estimate" if fallback is not None else "unknown"
    evaluation, _ = _median([r["evaluation_seconds"] for r in records], "")
    if evaluation is None and trained is not None:
        evaluation = trained * EVALUATION_SHARE
    cost = None if trained is None or evaluation is None else (
        len(to_train) * trained + (len(missing) - len(to_train)) * evaluation)
    return {"missing": len(missing), "to_train": len(to_train), "per_member": trained, "based_on": based_on,
            "seconds": cost}


def _unlearned_cost(config: ExperimentConfig, n: int, retrained: dict) -> dict[str, Any]:
    """The unlearned side: members missing and seconds each (its own measured members, else a
    Retrained member's measured or estimated seconds)."""
    spec = EnsembleSpec(config, "unlearned")
    missing = missing_member_seeds(spec, n)
    per, based_on = _median([r["seconds"] for r in recorded_seconds(spec)], "model(s) of this ensemble made here")
    if per is None:
        per = retrained["per_member"]
        based_on = "estimate: a Retrained model's time" if per is not None else "unknown"
    return {"missing": len(missing), "per_member": per, "based_on": based_on,
            "seconds": None if per is None else len(missing) * per}


def ensemble_eta(config: ExperimentConfig, n: int, *, workers: int = 1, allow_costly: bool = False) -> dict:
    """How long making the ``n``-model ensembles of ``config`` takes, stated before it starts.

    Returns ``{"seconds"`` (wall, None when there is no estimate for the architecture), ``"n"``,
    ``"workers"``, ``"missing": {"unlearned", "retrained"}`` (members not cached), ``"to_train"``
    (missing Retrained members whose reference is not trained yet), ``"original_to_train"`` (the
    Original is trained first: one more training's seconds), ``"per_member": {kind:
    seconds}`` and ``"based_on": {kind: text}}``. Per member: the median of the seconds the cached
    members of the same ensemble recorded when they were made (not when read); before any,
    :data:`ESTIMATED_TRAINING_SECONDS`. ``workers`` make members side by side (the wall is the
    total over ``workers``). :class:`~mucomp.experiment.ensembles.EnsembleError` as
    :func:`~mucomp.experiment.ensembles.check_ensemble`.
    """
    check_ensemble(config, n, allow_costly=allow_costly)
    workers = max(1, int(workers))
    fallback = ESTIMATED_TRAINING_SECONDS.get(Scenario.from_config(config).arch)
    retrained = _retrained_cost(config, n, fallback)
    unlearned = _unlearned_cost(config, n, retrained)
    sides = {"unlearned": unlearned, "retrained": retrained}
    total = None if unlearned["seconds"] is None or retrained["seconds"] is None else (
        unlearned["seconds"] + retrained["seconds"])
    scenario = Scenario.from_config(config)
    # The Original the unlearned members start from, trained first when no experiment did yet.
    original = (unlearned["missing"] > 0 and default_source(scenario) == "train"
                and not cache_path(scenario, "original").exists())
    if original and total is not None and retrained["per_member"] is not None:
        total += retrained["per_member"]
    return {"seconds": None if total is None else total / workers, "n": int(n), "workers": workers,
            "missing": {kind: side["missing"] for kind, side in sides.items()}, "to_train": retrained["to_train"],
            "original_to_train": original,
            "per_member": {kind: side["per_member"] for kind, side in sides.items()},
            "based_on": {kind: side["based_on"] for kind, side in sides.items()}}


def eta_text(eta: dict) -> str:
    """:func:`ensemble_eta` in one line, e.g. ``ETA about 1 min 20 s on 2 workers: 32 unlearned
    model(s) to make (1.9 s each, measured: ...); 32 Retrained model(s) (4.0 s each, estimate)``."""
    seconds = eta["seconds"]
    when = "unknown" if seconds is None else ("under a second" if seconds < 1 else f"about {duration(seconds)}")
    parts = []
    for kind, label in (("unlearned", "unlearned"), ("retrained", "Retrained")):
        missing, per = eta["missing"][kind], eta["per_member"][kind]
        if missing:
            each = "time unknown" if per is None else f"{per:.1f} s each"
            trained = ""
            if kind == "retrained" and eta["to_train"] < missing:
                trained = f", {missing - eta['to_train']} of them trained already: evaluated only"
            parts.append(f"{missing} {label} model(s) to make ({each}, {eta['based_on'][kind]}{trained})")
    if eta.get("original_to_train"):
        parts.append("the Original to train first")
    if not parts:
        return f"ETA {when}: every model of the {eta['n']}-model ensembles is cached; scoring only"
    where = f" on {eta['workers']} workers" if eta["workers"] > 1 else ""
    return f"ETA {when}{where}: " + "; ".join(parts)


def duration(seconds: float) -> str:
    """``seconds`` in words: ``42 s``, ``3 min 5 s``, ``2 h 10 min``."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, rest = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {rest} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def ensemble_requests(config: ExperimentConfig, n: int, *, parallel: bool = False, allow_costly: bool = False,
                      started_at: float | None = None) -> list:
    """The job-API requests that make and score the ``n``-model ensembles of ``config``: with
    ``parallel``, one :class:`~mucomp.execution.requests.MakeEnsembleMember` per member not cached
    yet (Retrained first: every method shares them), then the
    :class:`~mucomp.execution.requests.RunEnsemble` (which makes any member still missing itself,
    waiting for one another worker is making). Checks before any work that the ensemble can be
    made (:class:`~mucomp.experiment.ensembles.EnsembleError`)."""
    check_ensemble(config, n, allow_costly=allow_costly)
    started_at = time.time() if started_at is None else started_at
    requests: list = []
    if parallel:
        for kind in ("retrained", "unlearned"):
            spec = EnsembleSpec(config, kind)
            requests += [MakeEnsembleMember(spec, seed) for seed in missing_member_seeds(spec, n)]
    requests.append(RunEnsemble(config, int(n), allow_costly=allow_costly, started_at=started_at))
    return requests


def run_ensemble_jobs(
    config: ExperimentConfig,
    n: int,
    *,
    workers: int = 0,
    torch_threads: int | None = None,
    allow_costly: bool = False,
    follow: Callable[[list[dict]], None] | None = None,
    poll_s: float = 0.2,
    executor: str = "local",
    ray_address: str | None = None,
) -> dict:
    """Run :func:`ensemble_requests` through the job API and return the finished
    :class:`~mucomp.execution.requests.RunEnsemble` job's snapshot (its ``result``: F, the score,
    KLoM P95 of the forget set and the records' keys): in this process (``workers=0``, the inline
    executor) or on ``workers`` local worker processes (members side by side, ``torch_threads``
    each; default: the cores shared out), or with ``executor="ray"`` on a Ray cluster
    (``ray_address``; members made on its nodes side by side, ``torch_threads`` CPUs each, default
    1, and cached in this home: :mod:`mucomp.execution.ray_ensembles`). ``follow(snapshots)`` every
    ``poll_s`` seconds while they run (progress display). Ctrl-C cancels every job. Raises
    RuntimeError when the ensemble job does not complete."""
    parallel = workers > 1 or executor == "ray"
    requests = ensemble_requests(config, n, parallel=parallel, allow_costly=allow_costly)
    jobs = run_to_completion(requests, workers=workers, torch_threads=torch_threads, follow=follow, poll_s=poll_s,
                             executor=executor, ray_address=ray_address)
    final = jobs[-1]
    if final is None or final["state"] != "completed":
        failed = [j for j in jobs if j is not None and j["state"] != "completed"]
        why = failed[0]["message"] if failed else "the ensemble job was lost"
        state = failed[0]["state"] if failed else "?"
        raise RuntimeError(f"the {n}-model ensembles of {config.method} did not complete ({state}): {why}")
    return final
