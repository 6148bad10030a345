"""The on-demand audits of a stored experiment as jobs of the job API: the requests
(:func:`audit_requests`) and a blocking run through an executor (:func:`run_audit_jobs`); the
audits themselves are :mod:`mucomp.experiment.audits`."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from mucomp.audits.eligibility import AUDITS, normalise_audits
from mucomp.audits.relearn import DEFAULT_STEPS
from mucomp.audits.ulira import DEFAULT_HELD_OUT, DEFAULT_SHADOWS
from mucomp.data import Scenario
from mucomp.execution.backends import run_to_completion
from mucomp.execution.requests import MakeShadowPair, RunAudit
from mucomp.experiment.audits import experiment_config, missing_shadow_seeds, shadow_spec
from mucomp.store import ExperimentStore


def audit_requests(
    experiment_id: str,
    audits: Sequence[str] | str | None = AUDITS,
    *,
    store: ExperimentStore | None = None,
    parallel: bool = False,
    shadows: int = DEFAULT_SHADOWS,
    held_out: int = DEFAULT_HELD_OUT,
    center: str = "median",
    variance: str | None = None,
    steps: int = DEFAULT_STEPS,
    seed_offset: int = 0,
) -> list:
    """The job-API requests that audit one experiment: with ``parallel``, one
    :class:`~mucomp.execution.requests.MakeShadowPair` per shadow pair not cached yet (workers
    make them side by side), then the :class:`~mucomp.execution.requests.RunAudit` (which makes
    any pair still missing itself, waiting for one another worker is making). Checks before any
    work that the audits can run (:class:`AuditError`)."""
    audits = normalise_audits(audits)
    store = store if store is not None else ExperimentStore()
    result = store.load(experiment_id).result
    config = experiment_config(result)
    requests: list = []
    if "ulira" in audits:
        spec = shadow_spec(result, seed_offset=seed_offset)
        if parallel:
            requests += [MakeShadowPair(spec, seed) for seed in missing_shadow_seeds(spec, shadows, held_out)]
    requests.append(RunAudit(experiment_id, Scenario.from_config(config), audits, shadows=shadows, held_out=held_out,
                             center=center, variance=variance, steps=steps, seed_offset=seed_offset, method=config.method if result.get("kind") == "unlearned" else None))
    return requests


def run_audit_jobs(
    experiment_id: str,
    audits: Sequence[str] | str | None = AUDITS,
    *,
    workers: int = 0,
    torch_threads: int | None = None,
    shadows: int = DEFAULT_SHADOWS,
    held_out: int = DEFAULT_HELD_OUT,
    center: str = "median",
    variance: str | None = None,
    steps: int = DEFAULT_STEPS,
    seed_offset: int = 0,
    follow: Callable[[list[dict]], None] | None = None,
    poll_s: float = 0.2,
) -> dict:
    """Run :func:`audit_requests` through the job API and return the finished audit job's
    snapshot: in this process (``workers=0``, the inline executor) or on ``workers`` local worker
    processes (shadow pairs side by side, ``torch_threads`` each; default: the cores shared out).
    ``follow(snapshots)`` is called every ``poll_s`` seconds while they run (progress display).
    Ctrl-C cancels every job. Raises RuntimeError when the audit job does not complete."""
    requests = audit_requests(experiment_id, audits, parallel=workers > 1, shadows=shadows, held_out=held_out,
                              center=center, variance=variance, steps=steps, seed_offset=seed_offset)
    jobs = run_to_completion(requests, workers=workers, torch_threads=torch_threads, follow=follow, poll_s=poll_s)
    final = jobs[-1]
    if final is None or final["state"] != "completed":
        failed = [j for j in jobs if j is not None and j["state"] != "completed"]
        why = failed[0]["message"] if failed else "the audit job was lost"
        raise RuntimeError(f"the audit of {experiment_id} did not complete ({(failed or [{}])[0].get('state', '?')}): {why}")
    return final

