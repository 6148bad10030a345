"""Every figure of one model, read from its ONE forward pass per split, and the stored result.

:func:`evaluate_model` runs the pass (:func:`mucomp.evaluation.evaluate_scenario`) and
:func:`model_figures` computes every figure the pages show from it; nothing here runs the model a
second time. Each stage is timed and stored in ``timings`` (seconds).

A stored result (``result.json``, see :mod:`mucomp.store`) holds:

- ``id``, ``kind`` (``original`` / ``retrained`` / ``unlearned`` / ``custom`` / ``published``),
  ``schema_version``, ``created_at``, ``code_version``, ``owner`` (browser session that made it,
  or null), ``method_label``;
- ``config``: the scenario (``dataset``, ``forget`` and, for one class, ``forget_class``,
  ``train_seed``, ``data_seed``, ``arch``; ``forget_indices`` for an index set), the
  ``unlearn_seed``, ``method``, ``base``, ``epochs``, ``lr``, ``batch_size``, ``params`` (the
  method's own hyper-parameters as used); ``group``: the replicate group (unlearned experiments);
- ``metrics``: ``UA``, ``RA``, ``TUA``, ``TRA``, ``RT`` (s; null for references and uploads),
  ``cost`` (``samples_forwarded``, ``samples_backpropagated``, ``optimizer_steps``; null for
  references and uploads), ``PS``, ``PS_exact``, ``MIA_efficacy``, ``MIA_svc_accuracy``,
  ``avg_gap``, ``leakage_js``, ``accs``, ``t_accs`` ([C]), ``label_dist``, ``conf_dist``,
  ``t_label_dist``, ``t_conf_dist`` ([C][C]);
- ``attack``: per forget training image (``indices``, in scenario order): ``entropy``,
  ``confidence`` (top-1 log-odds), ``probs`` ([n][C], softmax at T = 1, to
  :data:`STORED_PROBABILITY_DECIMALS` places), and ``worst_case`` /
  ``worst_case_exact`` (the strongest threshold attack against the Retrained model);
- ``cka``: ``layers`` and ``{"original" | "retrained": {subset: {layer: CKA}}}``;
- ``embedding``: the model's own UMAP layout of the scenario's embedding subset: ``indices``,
  ``x``, ``y``, ``pred``, ``labels`` (true classes), ``probs_t2`` ([n][C], softmax at T = 2, to
  :data:`STORED_PROBABILITY_DECIMALS` places);
- ``audits``: ``leakage`` and ``probes`` (:mod:`mucomp.audits`), later ``ulira`` / ``relearn``;
- ``epochs``: per-epoch records; ``timings``: seconds per stage; ``evaluation``: the
  ``precision`` and ``device`` of the pass; ``environment``: :func:`mucomp.environment.environment`
  of the process that ran it.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np

from mucomp import __version__
from mucomp.audits import class_leakage, layer_probes
from mucomp.embedding import embed
from mucomp.environment import environment
from mucomp.evaluation import Evaluation, evaluate_scenario
from mucomp.metrics import avg_gap, model_metrics, softmax
from mucomp.models import layer_names
from mucomp.privacy import feature_values, forget_logits, privacy_metrics
from mucomp.progress import EXPERIMENT_STAGES, ProgressFn, stage_reporter
from mucomp.similarity import cka_report

if TYPE_CHECKING:
    import torch
    from torch import nn

    from mucomp.data import Scenario
    from mucomp.experiment.state import ScenarioState

#: The stages of an experiment, in order, as its progress reports them.
STAGES = EXPERIMENT_STAGES

#: Decimal places of the stored per-image probabilities. They are only displayed (bars and
#: hover text in per-cent); every number computed from them is computed before storing, from full
#: precision. Four places keep a Fashion-MNIST result (6,000 forget images x 10 classes) under
#: 2 MB: the full 17 digits took 1.4 MB for the attack block alone.
STORED_PROBABILITY_DECIMALS = 4


def stored_probabilities(probs: np.ndarray) -> list[list[float]]:
    """``probs`` ``[n, C]`` rounded to :data:`STORED_PROBABILITY_DECIMALS` places, as JSON lists."""
    return np.round(np.asarray(probs, dtype=np.float64), STORED_PROBABILITY_DECIMALS).tolist()


def _privacy_figures(evals: dict[str, Evaluation], state: ScenarioState) -> tuple[dict, dict, dict]:
    """``(privacy metrics, attack block, leakage block)`` of one model against the Retrained model."""
    scenario = state.scenario
    logits = forget_logits(scenario, evals["train"])
    values = feature_values(logits)  # once: the privacy score and the stored attack values share them
    privacy = privacy_metrics(scenario, evals["train"], evals["test"], None, values=values,
                              retrained_values=state.retrained_attack_values)
    probs = softmax(logits)
    attack = {
        "indices": scenario.forget_indices.tolist(),
        "entropy": values["entropy"].tolist(),
        "confidence": values["confidence"].tolist(),
        "probs": stored_probabilities(probs),
        "worst_case": privacy.pop("PS_worst_case"),  # the attack behind PS (51-point grid)
        "worst_case_exact": privacy.pop("PS_exact_worst_case"),  # the one behind PS_exact
    }
    # The forgotten class of each forget image is its own label (one class, several, or a random set).
    forgotten = scenario.data.train.labels_np[scenario.forget_indices]
    leakage = class_leakage(probs, state.retrained_forget_probs, forgotten)
    return privacy, attack, leakage


def _embedding_figures(train: Evaluation, scenario: Scenario) -> dict:
    """The model's own UMAP layout of the scenario's embedding subset (seeded by the data seed)."""
    indices = scenario.embedding_indices
    rows = train.positions(indices)
    layout = embed(train.features[rows], scenario.data_seed)
    return {
        "indices": indices.tolist(),
        "x": layout[:, 0].tolist(),
        "y": layout[:, 1].tolist(),
        "pred": train.predictions[rows].tolist(),
        "labels": scenario.data.train.labels_np[indices].tolist(),
        "probs_t2": stored_probabilities(softmax(train.logits[rows], 2.0)),
    }


def model_figures(
    evals: dict[str, Evaluation],
    state: ScenarioState,
    *,
    model_id: str,
    progress: ProgressFn | None = None,
) -> dict:
    """Every figure the pages show for one model, read from its train and test evaluations.

    Returns ``{"metrics", "attack", "cka", "embedding", "audits", "timings", "evaluation"}``;
    nothing here runs a model. ``model_id`` names the model in messages; each model's figures are
    computed once, its UMAP layout included, and then stored.
    """
    scenario = state.scenario
    timings: dict[str, float] = {}
    start = time.perf_counter()
    metrics = model_metrics(evals["train"], evals["test"], scenario)
    timings["accuracy"] = time.perf_counter() - start

    start = time.perf_counter()
    report = stage_reporter(progress, "privacy")
    report(0, 1)
    privacy, attack, leakage = _privacy_figures(evals, state)
    metrics.update(privacy)
    metrics["leakage_js"] = leakage["js_mean"]
    metrics["avg_gap"] = avg_gap(metrics, state.retrained_metrics or metrics)  # the Retrained: itself
    metrics["cost"] = None  # run_experiment sets the method's; references and uploads ran none
    report(1, 1)
    timings["privacy"] = time.perf_counter() - start

    start = time.perf_counter()
    subsets = scenario.cka_indices
    probes = layer_probes(evals, subsets, layer_names(scenario.arch), seed=scenario.data_seed)
    timings["probes"] = time.perf_counter() - start

    start = time.perf_counter()
    report = stage_reporter(progress, "similarity")
    cka = {}
    for position, (reference, ref_evals) in enumerate(state.reference_evals.items()):
        cka.update(cka_report({reference: ref_evals}, evals, subsets))
        report(position + 1, 2)
    timings["similarity"] = time.perf_counter() - start

    start = time.perf_counter()
    report = stage_reporter(progress, "embedding")
    report(0, 1)
    embedding = _embedding_figures(evals["train"], scenario)
    report(1, 1)
    timings["embedding"] = time.perf_counter() - start
    return {
        "metrics": metrics,
        "attack": attack,
        "cka": {"layers": layer_names(scenario.arch), **cka},
        "embedding": embedding,
        "audits": {"leakage": leakage, "probes": probes},
        "timings": timings,
        "evaluation": {"precision": evals["train"].precision, "device": state.device.type},
    }


def evaluate_model(
    model: nn.Module, state: ScenarioState, *, model_id: str, progress: ProgressFn | None = None
) -> dict:
    """ONE forward pass per split of ``model``, then :func:`model_figures`; adds the pass's time
    to ``timings`` as ``evaluation``."""
    start = time.perf_counter()
    report = stage_reporter(progress, "evaluating")
    report(0, 1)
    evals = evaluate_scenario(model, state.scenario, progress=report)
    seconds = time.perf_counter() - start
    figures = model_figures(evals, state, model_id=model_id, progress=progress)
    figures["timings"] = {"evaluation": seconds, **figures["timings"]}
    return figures


def result_record(experiment_id: str, kind: str, config: dict, figures: dict, extra: dict,
                  device: torch.device | str) -> dict:
    """The stored result of one model: its id, kind, config, figures and ``extra`` top-level
    entries, with the code version and the environment of the process that ran it (what a
    bundle records and ``mucomp reproduce`` compares and sets, not the exporting shell's)."""
    return {
        "id": experiment_id,
        "kind": kind,
        "config": config,
        "code_version": __version__,
        "environment": environment(device),
        **figures,
        **extra,
    }


def forget_probabilities(scenario: Scenario, train_eval: Evaluation) -> np.ndarray:
    """Softmax (T = 1) of a model's forget-image logits, ``[n_forget, C]``."""
    return softmax(forget_logits(scenario, train_eval))

