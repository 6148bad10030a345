"""MIA-Efficacy (SalUn's SVC protocol) and a model's privacy figures on a scenario (see
:mod:`mucomp.privacy`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from mucomp.metrics import softmax
from mucomp.privacy.attack import feature_values, logits_array
from mucomp.privacy.strategies import worst_attacks

if TYPE_CHECKING:  # pragma: no cover - imported for type hints only
    from mucomp.data import Scenario
    from mucomp.evaluation import Evaluation

# ---------------------------------------------------------------------------------------------
# MIA-Efficacy (SalUn's SVC protocol)


@dataclass(frozen=True)
class MIAReport:
    """The outcome of :func:`mia_report`.

    ``efficacy``: share of forget images the SVC calls non-members (higher = more forgotten).
    ``svc_holdout_accuracy``: accuracy of an SVC fitted on the other part, on a held-out,
    class-balanced part of members and non-members (0.5 = the feature carries no membership
    signal, so the efficacy says little); NaN when ``holdout_share`` is 0.
    Counts: members / non-members used for the final fit, the held-out part of each, forget images.
    """

    efficacy: float
    svc_holdout_accuracy: float
    n_members: int
    n_non_members: int
    n_holdout_per_class: int
    n_forget: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def true_class_probability(source: Any) -> np.ndarray:
    """``softmax(logits)[i, label_i]`` (T = 1) per sample, float64 ``[n]``, computed stably.

    ``source`` is an :class:`~mucomp.evaluation.Evaluation` (anything with ``logits`` and
    ``labels``) or a ``(logits, labels)`` pair.
    """
    if hasattr(source, "logits") and hasattr(source, "labels"):
        logits, labels = source.logits, source.labels
    elif isinstance(source, (tuple, list)) and len(source) == 2:
        logits, labels = source
    else:
        raise ValueError("pass an Evaluation or a (logits, labels) pair")
    z = logits_array(logits)
    labels = np.asarray(labels)
    if labels.shape != (z.shape[0],) or (labels.size and not np.issubdtype(labels.dtype, np.integer)):
        raise ValueError(f"labels must be {z.shape[0]} integers (one per row of logits), got shape {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= z.shape[1]):
        raise ValueError(f"labels must lie in [0, {z.shape[1] - 1}]")
    if z.shape[0] == 0:
        return np.zeros(0)
    return softmax(z)[np.arange(z.shape[0]), labels]


def _svc():
    from sklearn.svm import SVC

    return SVC(C=3.0, kernel="rbf", gamma="auto")


#: Members (and as many non-members) at most in the SVC that checks the attack's own accuracy
#: (mucomp's diagnostic, not SalUn's protocol): libsvm's fit grows with the square of the sample,
#: and a held-out accuracy needs no more than a few thousand points.
HOLDOUT_CHECK_CAP = 2000


def _svc_predict(clf: Any, x: np.ndarray, chunk: int = 2048) -> np.ndarray:
    """``clf.predict(x[:, None])`` of a fitted binary RBF :func:`_svc` on a 1-D feature, from its
    support vectors with numpy (the decision function sum_i a_i exp(-gamma (x - s_i)^2) + b, > 0 for
    ``classes_[1]``, as libsvm): the same labels about 3x faster than libsvm's own loop on the
    ~10,000 support vectors of a full-scale data set."""
    support = clf.support_vectors_[:, 0]
    coef, gamma, intercept = clf.dual_coef_[0], float(clf._gamma), float(clf.intercept_[0])
    decision = np.empty(x.size)
    for lo in range(0, x.size, chunk):
        gap = x[lo:lo + chunk, None] - support[None, :]
        decision[lo:lo + chunk] = np.exp(-gamma * gap * gap) @ coef + intercept
    return np.where(decision > 0, clf.classes_[1], clf.classes_[0])


def mia_report(
    model_eval_retain: Any,
    model_eval_test: Any,
    model_eval_forget: Any,
    *,
    seed: int = 0,
    holdout_share: float = 0.2,
) -> MIAReport:
    """MIA-Efficacy of one model by SalUn's protocol, with a check of the attack's own accuracy.

    Parameters
    ----------
    model_eval_retain:
        The model's outputs on the *members*: retain training images (an Evaluation or
        ``(logits, labels)``), e.g. ``train_eval.select(scenario.mia_indices[0])``.
    model_eval_test:
        The model's outputs on the *non-members*: test-retain images, e.g.
        ``test_eval.select(scenario.mia_indices[1])``.
    model_eval_forget:
        The model's outputs on the forget images (``train_eval.select(scenario.forget_indices)``).
    seed:
        The experiment seed; drives the balancing and the held-out split.
    holdout_share:
        Share of each class held out to measure the SVC's accuracy, in ``[0, 0.5]``; 0 skips it.

    Feature: the true-class probability (T = 1). Members and non-members are balanced to equal
    counts (the larger side subsampled, seeded) if they are not already. The efficacy comes from an
    RBF SVC (C = 3, gamma = "auto") fitted on ALL members and non-members, exactly as SalUn; the
    held-out accuracy from a second SVC on at most :data:`HOLDOUT_CHECK_CAP` of each side (seeded),
    fitted on the other ``1 - holdout_share`` of them.
    """
    from mucomp.data import seeded_rng

    if not 0.0 <= float(holdout_share) <= 0.5:
        raise ValueError(f"holdout_share must lie in [0, 0.5], got {holdout_share!r}")
    members = true_class_probability(model_eval_retain)
    non_members = true_class_probability(model_eval_test)
    forget = true_class_probability(model_eval_forget)
    if members.size == 0 or non_members.size == 0:
        raise ValueError("MIA-Efficacy needs members (retain train) and non-members (test-retain); one set is empty")
    if forget.size == 0:
        raise ValueError("MIA-Efficacy needs at least one forget image")
    count = min(members.size, non_members.size)
    if members.size != non_members.size:
        rng = seeded_rng(seed, "mia-balance")
        if members.size > count:
            members = members[np.sort(rng.choice(members.size, count, replace=False))]
        else:
            non_members = non_members[np.sort(rng.choice(non_members.size, count, replace=False))]

    x = np.concatenate([members, non_members])[:, None]
    y = np.concatenate([np.ones(count), np.zeros(count)])
    clf = _svc().fit(x, y)
    efficacy = float(np.mean(_svc_predict(clf, forget) == 0))

    # The check: a second SVC on at most HOLDOUT_CHECK_CAP per side, held-out accuracy on the rest.
    checked = min(count, HOLDOUT_CHECK_CAP)
    held = int(round(holdout_share * checked))
    accuracy = float("nan")
    if held > 0:  # holdout_share <= 0.5 leaves at least one sample per class to fit on
        rng = seeded_rng(seed, "mia-holdout")
        rows = np.concatenate([np.sort(rng.choice(count, checked, replace=False)),
                               count + np.sort(rng.choice(count, checked, replace=False))]) if checked < count \
            else np.arange(2 * count)
        is_held = np.zeros(2 * checked, dtype=bool)
        is_held[rng.choice(checked, held, replace=False)] = True
        is_held[checked + rng.choice(checked, held, replace=False)] = True
        xs, ys = x[rows], y[rows]
        check = _svc().fit(xs[~is_held], ys[~is_held])
        accuracy = float(np.mean(_svc_predict(check, xs[is_held, 0]) == ys[is_held]))
    return MIAReport(efficacy, accuracy, count, count, held, int(forget.size))


def mia_efficacy(model_eval_retain: Any, model_eval_test: Any, model_eval_forget: Any, *, seed: int = 0) -> float:
    """MIA-Efficacy in ``[0, 1]``: share of forget images SalUn's SVC calls non-members.

    The contract form of :func:`mia_report` (same inputs; skips the held-out check).
    """
    return mia_report(model_eval_retain, model_eval_test, model_eval_forget, seed=seed, holdout_share=0.0).efficacy


# ---------------------------------------------------------------------------------------------
# Scenario-level wiring


def scenario_mia_report(
    scenario: Scenario, train_eval: Evaluation, test_eval: Evaluation, *, holdout_share: float = 0.2
) -> MIAReport:
    """:func:`mia_report` on a scenario's fixed subsets, from whole-split evaluations of one model."""
    members, non_members = scenario.mia_indices
    return mia_report(
        train_eval.select(members),
        test_eval.select(non_members),
        train_eval.select(scenario.forget_indices),
        seed=scenario.train_seed,
        holdout_share=holdout_share,
    )


def forget_logits(scenario: Scenario, train_eval: Evaluation) -> np.ndarray:
    """Logits ``[n_forget, C]`` of every forget-class training image, in ``scenario.forget_indices`` order."""
    return train_eval.select(scenario.forget_indices).logits


def forget_feature_values(scenario: Scenario, train_eval: Evaluation) -> dict[str, np.ndarray]:
    """:func:`feature_values` of :func:`forget_logits`: one model's attack values on the forget images."""
    return feature_values(forget_logits(scenario, train_eval))


def privacy_metrics(
    scenario: Scenario,
    train_eval: Evaluation,
    test_eval: Evaluation,
    retrained_train_eval: Evaluation | None,
    *,
    holdout_share: float = 0.2,
    values: Mapping[str, Any] | None = None,
    retrained_values: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The privacy figures of one model, with the CLI's metric keys.

    ``train_eval`` / ``test_eval``: the model's whole-split evaluations; ``retrained_train_eval``:
    the Retrained model's train-split evaluation. ``values`` / ``retrained_values``: the two
    models' attack values on the forget images (:func:`forget_feature_values`) when the caller
    has them already; each one given is used instead of recomputing it from the evaluation
    (``retrained_train_eval`` may then be ``None``). Returns ``{"PS": float, "PS_exact": float,
    "MIA_efficacy": float, "MIA_svc_accuracy": float, "PS_worst_case": ..., "PS_exact_worst_case":
    ...}``, the last two the :meth:`AttackChoice.as_dict` of the attack behind each score.
    """
    if values is None:
        values = forget_feature_values(scenario, train_eval)
    if retrained_values is None:
        if retrained_train_eval is None:
            raise ValueError("pass retrained_train_eval or retrained_values (the Retrained model's attack values)")
        retrained_values = forget_feature_values(scenario, retrained_train_eval)
    worst = worst_attacks(values, retrained_values)
    report = scenario_mia_report(scenario, train_eval, test_eval, holdout_share=holdout_share)
    return {
        "PS": float(worst["grid"].privacy_score),  # in [0, 1]: see privacy_score
        "PS_exact": float(worst["exact"].privacy_score),
        "MIA_efficacy": report.efficacy,
        "MIA_svc_accuracy": report.svc_holdout_accuracy,
        "PS_worst_case": worst["grid"].as_dict(),
        "PS_exact_worst_case": worst["exact"].as_dict(),
    }
