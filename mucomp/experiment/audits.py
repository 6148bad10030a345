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

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from mucomp import __version__, settings
from mucomp.audits.eligibility import AUDITS, AuditError, normalise_audits, shadow_mode
from mucomp.audits.relearn import DEFAULT_SHARE, DEFAULT_STEPS
from mucomp.audits.ulira import DEFAULT_HELD_OUT, DEFAULT_SHADOWS, shadow_seeds
from mucomp.config import ExperimentConfig
from mucomp.data import Scenario
from mucomp.experiment.relearn import forget_accuracy, relearn_audit
from mucomp.experiment.shadows import ShadowSpec, model_phi, pair_path, run_ulira
from mucomp.forget_sets import kind_of
from mucomp.methods import available_methods, get_method
from mucomp.models import model_from_state_dict
from mucomp.progress import CancelFn, ProgressFn, stage_reporter
from mucomp.references import load_reference
from mucomp.store import ExperimentStore, now_iso
from mucomp.store.update import update_audits

#: The method whose default learning rate and batch size are the relearning protocol of a data set
#: and architecture, for every model (plain fine-tuning: what an attacker with some data would run).
RELEARN_METHOD = "ft"


def experiment_config(result: dict) -> ExperimentConfig:
    """The :class:`~mucomp.config.ExperimentConfig` of a stored result (its scenario, method and
    resolved hyper-parameters; references get ``base="original"``)."""
    config = dict(result.get("config") or {})
    known = {*ExperimentConfig.__dataclass_fields__, "seed"}
    data = {k: v for k, v in config.items() if k in known}
    data["base"] = data.get("base") or "original"
    if not isinstance(data.get("params"), dict):
        data["params"] = {}
    data["method"] = str(data.get("method") or result.get("kind") or "custom")
    return ExperimentConfig.from_dict(data)


def shadow_spec(result: dict, *, seed_offset: int = 0, allow_costly: bool = False) -> ShadowSpec:
    """The U-LiRA shadow family of a stored result (:func:`mucomp.audits.eligibility.shadow_mode`);
    :class:`AuditError` when it has none."""
    mode = shadow_mode(result, allow_costly=allow_costly)
    config = experiment_config(result)
    if mode == "method" and config.method not in available_methods():
        raise AuditError(f"the method {config.method!r} is not registered here; load its plugin (MUCOMP_PLUGINS) "
                         "to re-run it for the shadow models")
    return ShadowSpec(config, mode, seed_offset)


def relearn_settings(result: dict) -> tuple[float, int]:
    """``(lr, batch_size)`` of the relearning attack: one protocol per data set, architecture and
    forget-set kind, the same for every model whatever method made it (FT's defaults there), so
    that every model of a scenario and its Retrained model are attacked alike."""
    config = result.get("config") or {}
    forget_kind = kind_of(config.get("forget"))
    defaults = get_method(RELEARN_METHOD).resolve(config.get("dataset", "digits"), {}, config.get("arch"), forget_kind)
    return float(defaults["lr"]), int(defaults["batch_size"])


def missing_shadow_seeds(spec: ShadowSpec, shadows: int, held_out: int) -> list[int]:
    """The training seeds of the shadow pairs :func:`~mucomp.experiment.shadows.run_ulira` needs
    that are not cached yet (what a parallel submission sends to separate workers)."""
    seeds = shadow_seeds(shadows + held_out, exclude=[spec.scenario.train_seed])
    return [s for s in seeds if not pair_path(spec, s).exists()]


def _model(experiment: Any, scenario: Scenario, device: torch.device) -> torch.nn.Module:
    model = model_from_state_dict(scenario.arch, scenario.spec.num_classes, experiment.state_dict())
    return model.to(device).eval()


def _ulira_block(model: torch.nn.Module, scenario: Scenario, spec: ShadowSpec, *, shadows: int, held_out: int,
                 estimator: dict, device: torch.device, cancel: CancelFn | None, progress: ProgressFn | None) -> dict:
    report = stage_reporter(progress, "shadows")
    report(0, 1)
    target = model_phi(model, scenario)

    def pairs_progress(done: float, total: float, **figures: Any) -> None:
        report(done, total, pair=min(int(done) + 1, total), pairs=total, **figures)

    block = run_ulira(spec, target, shadows=shadows, held_out=held_out, device=device, cancel=cancel,
                      progress=pairs_progress, **estimator)
    stage_reporter(progress, "ulira")(1, 1)
    return block


def _relearn_block(model: torch.nn.Module, result: dict, scenario: Scenario, *, steps: int, share: float,
                   device: torch.device, cancel: CancelFn | None, progress: ProgressFn | None) -> dict:
    report = stage_reporter(progress, "relearning")
    report(0, 1)
    lr, batch_size = relearn_settings(result)
    retrained = load_reference(scenario, "retrained", device=device, cancelled=cancel).model
    original = load_reference(scenario, "original", device=device, cancelled=cancel).model
    split = scenario.data.train
    return relearn_audit(
        model, retrained, 0.0, scenario, lr=lr, batch_size=batch_size, steps=steps, share=share,
        seed=scenario.data_seed, cancel=cancel, progress=report,
        original_eval=lambda indices: forget_accuracy(original, split, np.asarray(indices)),
    )


def run_audits(
    experiment_id: str,
    audits: Sequence[str] | str | None = AUDITS,
    *,
    store: ExperimentStore | None = None,
    shadows: int = DEFAULT_SHADOWS,
    held_out: int = DEFAULT_HELD_OUT,
    center: str = "median",
    variance: str | None = None,
    steps: int = DEFAULT_STEPS,
    share: float = DEFAULT_SHARE,
    seed_offset: int = 0,
    allow_costly: bool = False,
    device: Any = None,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
    save: bool = True,
) -> dict[str, dict]:
    """Compute the ``audits`` of a stored experiment and store them with it; returns the blocks.

    ``center`` / ``variance``: U-LiRA's estimator (:func:`mucomp.audits.ulira.likelihood_ratio`).
    Stages (``progress(stage, fraction, **figures)``): ``shadows`` (U-LiRA's pairs, with
    ``pair`` / ``pairs``), ``ulira``, ``relearning``, ``saving``. Every block gets
    ``computed_at`` and ``code_version``. Raises :class:`AuditError` for an audit that can't run
    for this experiment (before any work), :class:`~mucomp.progress.RunStopped` when a shadow
    model does not complete, and the store's errors.
    """
    audits = normalise_audits(audits)
    store = store if store is not None else ExperimentStore()
    experiment = store.load(experiment_id)
    result = experiment.result
    scenario = Scenario.from_config(experiment_config(result))
    spec = shadow_spec(result, seed_offset=seed_offset, allow_costly=allow_costly) if "ulira" in audits else None
    device = torch.device(device) if device is not None else settings.default_device()
    model = _model(experiment, scenario, device)
    blocks: dict[str, dict] = {}
    metrics: dict[str, Any] = {}
    if spec is not None:
        blocks["ulira"] = _ulira_block(model, scenario, spec, shadows=shadows, held_out=held_out,
                                       estimator={"center": center, "variance": variance}, device=device,
                                       cancel=cancel, progress=progress)
        metrics["ulira_acc"] = blocks["ulira"]["accuracy"]
    if "relearn" in audits:
        blocks["relearn"] = _relearn_block(model, result, scenario, steps=steps, share=share, device=device,
                                           cancel=cancel, progress=progress)
        metrics["relearn_steps"] = blocks["relearn"]["relative"]
    stamp = {"computed_at": now_iso(), "code_version": __version__}
    for block in blocks.values():
        block.update(stamp)
    if save:
        report = stage_reporter(progress, "saving")
        report(0, 1)
        update_audits(store, experiment_id, blocks, metrics)
        report(1, 1)
    return blocks
