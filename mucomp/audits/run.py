"""On-demand audits of a stored experiment: U-LiRA and the relearning attack, then stored with it.

Both cost more than the one evaluation pass every experiment gets (U-LiRA makes 2 (K + M) shadow
models; relearning fine-tunes copies), so they run when asked, as jobs of the job API
(:class:`~mucomp.execution.requests.RunAudit`, :class:`~mucomp.execution.requests.MakeShadowPair`)
or inline, and :func:`run_audits` stores them with the experiment
(:func:`mucomp.store.update.update_audits`): ``result["audits"]["ulira"]`` /
``result["audits"]["relearn"]`` and the metrics ``ulira_acc`` / ``relearn_steps``.

Which experiments can be audited:

- U-LiRA: an unlearned experiment started from the Original (the shadows redo its method and
  hyper-parameters per training seed), the Original (no unlearning) and the Retrained reference
  (its own shadows: 0.5 by construction); on a data set whose references train locally in
  seconds (digits), unless ``allow_costly`` (each shadow pair trains two reference models with
  the data set's recipe: 200 epochs of ResNet-18 on CIFAR-10). Uploaded and published models
  have no recipe to redo.
- Relearning: every model (the Retrained model of the scenario is the baseline).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from mucomp.audits import relearn as relearn_mod
from mucomp.audits import ulira as ulira_mod

AUDITS = ("ulira", "relearn")
#: Data sets whose references train locally in seconds, so U-LiRA's shadows are affordable.
CHEAP_SHADOW_DATASETS = ("digits",)
#: The method whose default learning rate and batch size relearn models no method made.
RELEARN_FALLBACK_METHOD = "ft"

ProgressFn = Callable[..., None]
CancelFn = Callable[[], bool]


class AuditError(ValueError):
    """An audit that can't run for this experiment; the message says why and what to do."""


def normalise_audits(audits: Iterable[str] | str | None) -> tuple[str, ...]:
    """The requested audits in :data:`AUDITS` order; ValueError for an unknown name."""
    wanted = set(AUDITS if audits is None else ([audits] if isinstance(audits, str) else audits))
    unknown = sorted(wanted - set(AUDITS))
    if unknown or not wanted:
        raise ValueError(f"unknown audit(s) {unknown}; choose from {', '.join(AUDITS)}")
    return tuple(a for a in AUDITS if a in wanted)


def experiment_config(result: dict) -> Any:
    """The :class:`~mucomp.runner.ExperimentConfig` of a stored result (its scenario, method and
    resolved hyper-parameters; references get ``base="original"``)."""
    from mucomp.runner import ExperimentConfig

    config = dict(result.get("config") or {})
    known = set(ExperimentConfig.__dataclass_fields__)
    data = {k: v for k, v in config.items() if k in known}
    data["base"] = data.get("base") or "original"
    if not isinstance(data.get("params"), dict):
        data["params"] = {}
    data["method"] = str(data.get("method") or result.get("kind") or "custom")
    return ExperimentConfig.from_dict(data)


def shadow_spec(result: dict, *, seed_offset: int = 0, allow_costly: bool = False) -> ulira_mod.ShadowSpec:
    """The U-LiRA shadow family of a stored result; :class:`AuditError` when it has none."""
    kind = result.get("kind")
    config = experiment_config(result)
    dataset = config.dataset
    if dataset not in CHEAP_SHADOW_DATASETS and not allow_costly:
        raise AuditError(
            f"U-LiRA trains 2 x (K + M) reference models locally; on {dataset} each is a full training run "
            "(hours on a GPU), so mucomp runs it on digits only. From Python, pass allow_costly=True to "
            "mucomp.audits.run.run_audits to run it anyway")
    if kind == "original":
        return ulira_mod.ShadowSpec(config, "original", seed_offset)
    if kind == "retrained":
        return ulira_mod.ShadowSpec(config, "retrained", seed_offset)
    if kind != "unlearned":
        raise AuditError(f"U-LiRA re-makes a model with its method for other training seeds; a {kind} model has no "
                         "method to re-run. Run the relearning attack on it instead")
    if config.base != "original":
        raise AuditError(f"U-LiRA re-makes the model from the Original with other training seeds; this experiment "
                         f"started from {config.base}. Audit the experiment it started from, or re-run the method "
                         "from the Original")
    from mucomp.methods import available_methods

    if config.method not in available_methods():
        raise AuditError(f"the method {config.method!r} is not registered here; load its plugin (MUCOMP_PLUGINS) "
                         "to re-run it for the shadow models")
    return ulira_mod.ShadowSpec(config, "method", seed_offset)


def relearn_settings(result: dict) -> tuple[float, int]:
    """``(lr, batch_size)`` of the relearning attack: the defaults of the experiment's method for
    its data set (FT's for references, uploads and methods not registered here)."""
    from mucomp.methods import available_methods, get_method

    config = result.get("config") or {}
    method = config.get("method") if result.get("kind") == "unlearned" else None
    if method not in available_methods():
        method = RELEARN_FALLBACK_METHOD
    forget_kind = str(config.get("forget") or "class:").split(":", 1)[0]
    defaults = get_method(method).resolve(config.get("dataset", "digits"), {}, config.get("arch"), forget_kind)
    return float(defaults["lr"]), int(defaults["batch_size"])


def missing_shadow_seeds(spec: ulira_mod.ShadowSpec, shadows: int, held_out: int) -> list[int]:
    """The training seeds of the shadow pairs :func:`ulira_mod.run_ulira` needs that are not
    cached yet (what a parallel submission sends to separate workers)."""
    seeds = ulira_mod.shadow_seeds(shadows + held_out, exclude=[spec.scenario.seed])
    return [s for s in seeds if not ulira_mod.pair_path(spec, s).exists()]


def _stage(progress: ProgressFn | None, stage: str) -> Callable[..., None]:
    def report(done: float, total: float, **figures: Any) -> None:
        if progress is not None:
            progress(stage, min(max(done / total, 0.0), 1.0) if total else 1.0, **figures)

    return report


def _model(experiment: Any, scenario: Any, device: Any) -> Any:
    from mucomp.models import model_from_state_dict

    arch = getattr(scenario, "arch", None) or scenario.spec.arch
    model = model_from_state_dict(arch, scenario.spec.num_classes, experiment.state_dict())
    return model.to(device).eval()


def run_audits(
    experiment_id: str,
    audits: Sequence[str] | str | None = AUDITS,
    *,
    store: Any = None,
    shadows: int = ulira_mod.DEFAULT_SHADOWS,
    held_out: int = ulira_mod.DEFAULT_HELD_OUT,
    steps: int = relearn_mod.DEFAULT_STEPS,
    share: float = relearn_mod.DEFAULT_SHARE,
    seed_offset: int = 0,
    allow_costly: bool = False,
    device: Any = None,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
    save: bool = True,
) -> dict[str, dict]:
    """Compute the ``audits`` of a stored experiment and store them with it; returns the blocks.

    Stages (``progress(stage, fraction, **figures)``): ``shadows`` (U-LiRA's pairs, with
    ``pair`` / ``pairs``), ``ulira``, ``relearning``, ``saving``. Every block gets
    ``computed_at`` and ``code_version``. Raises :class:`AuditError` for an audit that can't run
    for this experiment (before any work), :class:`~mucomp.audits.ulira.ShadowError` when a
    shadow model does not complete, and the store's errors.
    """
    import torch

    from mucomp import __version__, settings
    from mucomp.store import ExperimentStore, now_iso

    audits = normalise_audits(audits)
    store = store if store is not None else ExperimentStore()
    experiment = store.load(experiment_id)
    result = experiment.result
    config = experiment_config(result)
    scenario = config.scenario
    spec = shadow_spec(result, seed_offset=seed_offset, allow_costly=allow_costly) if "ulira" in audits else None
    device = torch.device(device) if device is not None else settings.default_device()
    model = _model(experiment, scenario, device)
    blocks: dict[str, dict] = {}
    metrics: dict[str, Any] = {}
    if spec is not None:
        report = _stage(progress, "shadows")
        report(0, 1)
        target = ulira_mod.model_phi(model, scenario)

        def pairs_progress(done: float, total: float, **figures: Any) -> None:
            report(done, total, pair=min(int(done) + 1, total), pairs=total, **figures)

        block = ulira_mod.run_ulira(spec, target, shadows=shadows, held_out=held_out, device=device, cancel=cancel,
                                    progress=pairs_progress)
        _stage(progress, "ulira")(1, 1)
        blocks["ulira"] = block
        metrics["ulira_acc"] = block["accuracy"]
    if "relearn" in audits:
        from mucomp.references import load_reference

        report = _stage(progress, "relearning")
        report(0, 1)
        lr, batch_size = relearn_settings(result)
        retrained = load_reference(scenario, "retrained", device=device, cancelled=cancel).model
        original = load_reference(scenario, "original", device=device, cancelled=cancel).model
        split = scenario.data.train
        seed = int(getattr(scenario, "data_seed", scenario.seed))
        block = relearn_mod.relearn_audit(
            model, retrained, 0.0, scenario, lr=lr, batch_size=batch_size, steps=steps, share=share, seed=seed,
            cancel=cancel, progress=report,
            original_eval=lambda indices: relearn_mod.forget_accuracy(original, split, np.asarray(indices)),
        )
        blocks["relearn"] = block
        metrics["relearn_steps"] = block["relative"]
    stamp = {"computed_at": now_iso(), "code_version": __version__}
    for block in blocks.values():
        block.update(stamp)
    if save:
        report = _stage(progress, "saving")
        report(0, 1)
        from mucomp.store.update import update_audits

        update_audits(store, experiment_id, blocks, metrics)
        report(1, 1)
    return blocks


def audit_requests(
    experiment_id: str,
    audits: Sequence[str] | str | None = AUDITS,
    *,
    store: Any = None,
    parallel: bool = False,
    shadows: int = ulira_mod.DEFAULT_SHADOWS,
    held_out: int = ulira_mod.DEFAULT_HELD_OUT,
    steps: int = relearn_mod.DEFAULT_STEPS,
    seed_offset: int = 0,
) -> list:
    """The job-API requests that audit one experiment: with ``parallel``, one
    :class:`~mucomp.execution.requests.MakeShadowPair` per shadow pair not cached yet (workers
    make them side by side), then the :class:`~mucomp.execution.requests.RunAudit` (which makes
    any pair still missing itself, waiting for one another worker is making). Checks before any
    work that the audits can run (:class:`AuditError`)."""
    from mucomp.execution.requests import MakeShadowPair, RunAudit
    from mucomp.store import ExperimentStore

    audits = normalise_audits(audits)
    store = store if store is not None else ExperimentStore()
    result = store.load(experiment_id).result
    config = experiment_config(result)
    requests: list = []
    if "ulira" in audits:
        spec = shadow_spec(result, seed_offset=seed_offset)
        if parallel:
            requests += [MakeShadowPair(spec, seed) for seed in missing_shadow_seeds(spec, shadows, held_out)]
    requests.append(RunAudit(experiment_id, config.scenario, audits, shadows=shadows, held_out=held_out, steps=steps,
                             seed_offset=seed_offset, method=config.method if result.get("kind") == "unlearned" else None))
    return requests


def run_audit_jobs(
    experiment_id: str,
    audits: Sequence[str] | str | None = AUDITS,
    *,
    workers: int = 0,
    torch_threads: int | None = None,
    shadows: int = ulira_mod.DEFAULT_SHADOWS,
    held_out: int = ulira_mod.DEFAULT_HELD_OUT,
    steps: int = relearn_mod.DEFAULT_STEPS,
    seed_offset: int = 0,
    follow: Callable[[list[dict]], None] | None = None,
    poll_s: float = 0.2,
) -> dict:
    """Run :func:`audit_requests` through the job API and return the finished audit job's
    snapshot: in this process (``workers=0``, the inline executor) or on ``workers`` local worker
    processes (shadow pairs side by side, ``torch_threads`` each; default: the cores shared out).
    ``follow(snapshots)`` is called every ``poll_s`` seconds while they run (progress display).
    Ctrl-C cancels every job. Raises RuntimeError when the audit job does not complete."""
    import os

    from mucomp.execution import make_executor

    requests = audit_requests(experiment_id, audits, parallel=workers > 1, shadows=shadows, held_out=held_out,
                              steps=steps, seed_offset=seed_offset)
    if workers and workers > 0:
        count = min(int(workers), len(requests))
        threads = torch_threads or max(1, (os.cpu_count() or 1) // count)
        executor = make_executor("local", workers=count, torch_threads=threads, warm_umap=False)
    else:
        executor = make_executor("inline")
    try:
        ids = executor.submit(requests, max_runs=None)
        try:
            while not executor.wait(poll_s, ids):
                if follow is not None:
                    follow([j for j in (executor.get(i) for i in ids) if j is not None])
        except KeyboardInterrupt:
            for job_id in ids:
                executor.cancel(job_id)
            executor.wait(10, ids)
            raise
        jobs = [executor.get(i) for i in ids]
    finally:
        executor.shutdown()
    final = jobs[-1]
    if final is None or final["state"] != "completed":
        failed = [j for j in jobs if j is not None and j["state"] != "completed"]
        why = failed[0]["message"] if failed else "the audit job was lost"
        raise RuntimeError(f"the audit of {experiment_id} did not complete ({(failed or [{}])[0].get('state', '?')}): {why}")
    return final


__all__ = [
    "AUDITS", "AuditError", "audit_requests", "experiment_config", "missing_shadow_seeds", "normalise_audits",
    "relearn_settings", "run_audit_jobs", "run_audits", "shadow_spec",
]
