"""Privacy audit: membership-inference attacks against the Retrained model, as docs/definitions.md defines them.

- :mod:`mucomp.privacy.attack`: the attack features, the attack score and the threshold sweeps;
- :mod:`mucomp.privacy.strategies`: the Attack page's threshold strategies, the privacy scores and
  the per-sample attribution;
- :mod:`mucomp.privacy.mia`: MIA-Efficacy and a model's privacy figures on a scenario.

Everything here reads logits (or values derived from them); nothing runs a model.

Attack features (one value per forget image, from its logits ``z``):

- ``"entropy"``: entropy (natural log) of ``softmax(z / 2)``, in ``[0, ln C]``.
- ``"confidence"``: top-1 log-odds ``log p_max - log(1 - p_max)`` with ``p = softmax(z)``
  (the published system calls it "confidence"), computed as ``z_max - logsumexp(z without the
  top-1 entry)``. Finite for every finite input.

Threshold attack. The attacker sees one feature value and must say which model produced it: the
unlearned model ``U`` or the Retrained model ``V``, evaluated on the same forget images. For a
threshold ``t`` and a direction,

- ``"above_unlearn"``: values ``>= t`` are called "unlearned". Positives are ``U``:
  ``TPR = mean(U >= t)``, ``FPR = mean(V >= t)``, ``FNR = 1 - TPR``.
- ``"above_retrain"``: the same with ``U`` and ``V`` swapped.

Values are first clipped into the metric's display range (:data:`METRIC_RANGES`), as the
published system does. :func:`attack_score` turns one ``(FPR, FNR)`` into an epsilon-style score
in ``[0, 1]`` (0: no better than chance, 1: perfectly separated), and the privacy score is one
minus the worst attack score over both features, both directions and every threshold.

Two sweeps exist: :func:`threshold_sweep` evaluates ``n`` thresholds evenly spaced over the range
(``numpy.linspace``; the 51-point grid the Attack page draws and the published system stores), and
:func:`threshold_sweep_exact` evaluates every distinct (clipped) value as a threshold, which
reaches every ``(FPR, FNR)`` pair any threshold in the range can give. The strategies search the
exact sweep unless given ``n_thresholds``.

Two privacy scores are stored for every model (:func:`privacy_metrics`):

- ``PS``: the published definition, the worst attack over the :data:`PUBLISHED_GRID` thresholds
  of each metric's range (values clipped), comparable with the published system's figures;
- ``PS_exact``: the worst attack over every distinct value of either model as a threshold, values
  NOT clipped (so values beyond the display range still separate). Any grid threshold's
  ``(FPR, FNR)`` is also reached by some unclipped value threshold, hence ``PS_exact <= PS``.

MIA-Efficacy (:func:`mia_report`, :func:`mia_efficacy`) follows SalUn's ``SVC_MIA``: an RBF SVC
(``C = 3``, ``gamma = "auto"``) on the true-class probability learns members (retain training
images) vs non-members (test-retain images); the efficacy is the share of forget images it calls
non-members.
"""

from __future__ import annotations

from mucomp.privacy.attack import (
    DEFAULT_THRESHOLDS,
    DELTA,
    DIRECTIONS,
    LOGODDS_MAX,
    METRIC_RANGES,
    METRICS,
    PUBLISHED_GRID,
    RATE_EPS,
    STRATEGIES,
    SWEEP_COLUMNS,
    attack_features,
    attack_score,
    attack_scores,
    candidate_thresholds,
    check_direction,
    check_metric,
    clip_values,
    exact_thresholds,
    feature_values,
    grid_thresholds,
    logits_array,
    sweep_curve,
    threshold_sweep,
    threshold_sweep_exact,
    value_pair,
)
from mucomp.privacy.mia import (
    MIAReport,
    forget_feature_values,
    forget_logits,
    mia_efficacy,
    mia_report,
    privacy_metrics,
    scenario_mia_report,
    true_class_probability,
)
from mucomp.privacy.strategies import (
    AttackChoice,
    Attribution,
    attribute_samples,
    common_threshold,
    custom_threshold,
    max_attack_score,
    max_success_rate,
    privacy_score,
    worst_attacks,
    worst_case,
)

__all__ = [
    "AttackChoice",
    "Attribution",
    "DEFAULT_THRESHOLDS",
    "DELTA",
    "DIRECTIONS",
    "LOGODDS_MAX",
    "METRICS",
    "METRIC_RANGES",
    "MIAReport",
    "PUBLISHED_GRID",
    "RATE_EPS",
    "STRATEGIES",
    "SWEEP_COLUMNS",
    "attack_features",
    "attack_score",
    "attack_scores",
    "attribute_samples",
    "candidate_thresholds",
    "check_direction",
    "check_metric",
    "clip_values",
    "common_threshold",
    "custom_threshold",
    "exact_thresholds",
    "feature_values",
    "forget_feature_values",
    "forget_logits",
    "grid_thresholds",
    "logits_array",
    "max_attack_score",
    "max_success_rate",
    "mia_efficacy",
    "mia_report",
    "privacy_metrics",
    "privacy_score",
    "scenario_mia_report",
    "sweep_curve",
    "threshold_sweep",
    "threshold_sweep_exact",
    "true_class_probability",
    "value_pair",
    "worst_attacks",
    "worst_case",
]
