"""The one job API: the app and the CLI submit runs, reference preparations and uploads here.

Backends share :class:`~mucomp.execution.jobs.Executor`'s API (``submit``, ``jobs``, ``get``,
``cancel``, ``busy``, ``wait``, ``shutdown``):

- ``local`` (:class:`~mucomp.execution.local.LocalExecutor`, the app's default): spawned worker
  processes (``MUCOMP_WORKERS``, default 1) with ``MUCOMP_TORCH_THREADS`` torch threads each;
- ``inline`` (:class:`~mucomp.execution.inline.InlineExecutor`): a thread of the calling process,
  for ``mucomp run`` without ``--workers`` (the command is its own process already);
- ``ray`` (:class:`~mucomp.execution.ray_backend.RayExecutor`, extra ``mucomp[ray]``): one Ray task
  per job on a cluster; results return to the driver, which stores them.
"""

from __future__ import annotations

from mucomp.config import MAX_RUNS, SubmissionError, TooManyRunsError, check_run_count
from mucomp.execution.backends import BACKENDS, make_executor
from mucomp.execution.inline import InlineExecutor, JobQueue
from mucomp.execution.jobs import (
    FINISHED,
    MAX_QUEUED_PER_OWNER,
    STATES,
    STOPPED,
    Executor,
    Job,
    JobOutcome,
    QueueFullError,
    carry_out,
)
from mucomp.execution.local import LocalExecutor, shared_executor
from mucomp.execution.requests import (
    EvaluateUpload,
    MakeEnsembleMember,
    MakeShadowPair,
    PrepareReferences,
    PullPublished,
    RunAudit,
    RunEnsemble,
    request_scenario,
)

__all__ = [
    "BACKENDS", "FINISHED", "MAX_QUEUED_PER_OWNER", "MAX_RUNS", "STATES", "STOPPED", "EvaluateUpload", "PullPublished",
    "Executor", "InlineExecutor", "Job", "JobOutcome", "JobQueue", "LocalExecutor", "MakeEnsembleMember", "MakeShadowPair",
    "PrepareReferences", "QueueFullError", "RunAudit", "RunEnsemble",
    "SubmissionError", "TooManyRunsError", "carry_out", "check_run_count", "make_executor", "request_scenario",
    "shared_executor",
]
