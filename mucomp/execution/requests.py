"""What can be submitted as a job, and how a worker carries it out.

Requests: an :class:`~mucomp.config.ExperimentConfig` (one unlearning run),
:class:`PrepareReferences` (load or train a scenario's references and store their results),
:class:`EvaluateUpload` (evaluate a validated uploaded state dict as a *custom* experiment),
:class:`PullPublished` (store a published unlearned model), :class:`RunAudit` (on-demand audits
of a stored experiment, stored with it), :class:`MakeShadowPair` (one of U-LiRA's shadow pairs,
cached for the audits), :class:`MakeEnsembleMember` (one model of an ensemble, cached) and
:class:`RunEnsemble` (the ensembles of a method configuration, scored and stored).
Requests are plain picklable data: they travel to worker processes and Ray tasks.

:func:`execute` runs one request in the current process with the environment it was submitted
under (:data:`~mucomp.execution.jobs.JOB_ENV`; :mod:`mucomp.execution.execute`); every backend
calls it. This module is torch-free: the pages that submit jobs never import torch.
"""

from __future__ import annotations

import contextlib
import importlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mucomp.catalogue import BUILTIN_METHODS, JOB_SUMMARY_KEYS
from mucomp.config import ExperimentConfig
from mucomp.data import Scenario

if TYPE_CHECKING:
    import torch

    from mucomp.experiment.ensembles import EnsembleSpec
    from mucomp.experiment.shadows import ShadowSpec

#: Metrics copied into a finished job's summary (the "done" line shows them).
SUMMARY_KEYS = JOB_SUMMARY_KEYS


@dataclass(frozen=True)
class PrepareReferences:
    """Load or train both reference models of ``scenario``, evaluate them once, store their results."""

    scenario: Scenario


@dataclass
class EvaluateUpload:
    """Evaluate an uploaded, already validated state dict of ``scenario``'s architecture as is and
    store it as a ``custom`` experiment labelled ``label`` (``weights``: name -> CPU tensor)."""

    scenario: Scenario
    weights: dict[str, torch.Tensor] = field(repr=False)
    label: str = "Uploaded model"


@dataclass(frozen=True)
class PullPublished:
    """Download the published unlearned model of ``repo`` for ``scenario`` (:mod:`mucomp.sharing.zoo`),
    evaluate it and store it as a ``published`` experiment."""

    scenario: Scenario
    repo: str


@dataclass(frozen=True)
class RunAudit:
    """Compute on-demand audits (``"ulira"``, ``"relearn"``) of stored experiment
    ``experiment_id`` of ``scenario`` and store them with it (:func:`mucomp.experiment.audits.run_audits`).

    ``shadows`` / ``held_out``: U-LiRA's K fitted and M held-out shadow pairs; ``center`` /
    ``variance``: its Gaussians' estimator (:func:`mucomp.audits.ulira.likelihood_ratio`; ``None``:
    the default for K); ``steps``: the relearning budget; ``method``: the experiment's method (a worker imports the module that
    registered it)."""

    experiment_id: str
    scenario: Scenario
    audits: tuple[str, ...] = ("ulira", "relearn")
    shadows: int = 8
    held_out: int = 4
    center: str = "median"
    variance: str | None = None
    steps: int = 50
    seed_offset: int = 0
    method: str | None = None


@dataclass(frozen=True)
class MakeShadowPair:
    """Make (or find cached) U-LiRA shadow pair ``seed`` of ``spec``
    (:class:`mucomp.experiment.shadows.ShadowSpec`); stores nothing in the experiment store.
    Several of these on several workers make an audit's shadows side by side."""

    spec: ShadowSpec
    seed: int

    @property
    def scenario(self) -> Scenario:
        return self.spec.scenario

    @property
    def method(self) -> str | None:
        return self.spec.config.method if self.spec.mode == "method" else None


@dataclass(frozen=True)
class MakeEnsembleMember:
    """Make (or find cached) member ``seed`` of the ensemble ``spec``
    (:class:`mucomp.experiment.ensembles.EnsembleSpec`: a training seed of the Retrained
    ensemble, an unlearning seed of an unlearned one); stores nothing but the member's cache file.
    Several of these on several workers make an ensemble's models side by side."""

    spec: EnsembleSpec
    seed: int

    @property
    def scenario(self) -> Scenario:
        return self.spec.scenario

    @property
    def method(self) -> str | None:
        return self.spec.method


@dataclass(frozen=True)
class RunEnsemble:
    """Make (or load) the ``n`` Retrained and ``n`` unlearned models of method configuration
    ``config`` (from the Original of its training seed), score them and store both records
    (:func:`mucomp.experiment.ensembles.run_ensemble`). ``started_at``: ``time.time()`` when the
    ensemble's first job was submitted (the record's wall time counts from there)."""

    config: ExperimentConfig
    n: int
    allow_costly: bool = False
    started_at: float | None = None

    @property
    def scenario(self) -> Scenario:
        return Scenario.from_config(self.config)

    @property
    def method(self) -> str:
        return self.config.method


def request_scenario(request: Any) -> Scenario | None:
    """The scenario a request belongs to (None for anything else)."""
    if isinstance(request, ExperimentConfig):
        return Scenario.from_config(request)
    if isinstance(request, (PrepareReferences, EvaluateUpload, PullPublished)):
        return Scenario.of(request.scenario)
    scenario = getattr(request, "scenario", None)
    return scenario if isinstance(scenario, Scenario) else None


def method_origin(request: Any) -> str | None:
    """Where the worker finds a non-built-in method of ``request``: ``"module NAME"`` for a method
    registered by an importable module (plugin files and entry points load by themselves)."""
    name = getattr(request, "method", None)
    if not isinstance(name, str) or name in BUILTIN_METHODS:
        return None  # a built-in registers itself wherever mucomp.methods is imported
    from mucomp.methods import available_methods  # plugins only: the registry imports torch

    info = available_methods().get(name)
    if info is None or info.builtin or not info.source.startswith("module "):
        return None
    module = info.module
    if module in ("", "__main__", "__mp_main__"):
        raise ValueError(
            f"the method {name!r} is registered by the main script, which worker processes do not run; "
            "register it in a plugin file (MUCOMP_PLUGINS) or an importable module"
        )
    return f"module {module}"


@contextlib.contextmanager
def job_environment_applied(env: dict[str, str | None]) -> Iterator[None]:
    """Set the submitted environment for the duration of a job, then put the old one back."""
    old = {name: os.environ.get(name) for name in env}
    try:
        _set_environment(env)
        yield
    finally:
        _set_environment(old)


def _set_environment(values: dict[str, str | None]) -> None:
    for name, value in values.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def ensure_method(origin: str | None) -> None:
    """Import the module a method came from (see :func:`method_origin`) so it is registered here."""
    if origin and origin.startswith("module "):
        importlib.import_module(origin.removeprefix("module "))


def summary(result: dict | None) -> dict:
    """The few metrics of a stored result that a finished job's line shows."""
    metrics = (result or {}).get("metrics") or {}
    return {key: metrics.get(key) for key in SUMMARY_KEYS if key in metrics}
