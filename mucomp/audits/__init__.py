"""Audits beyond the threshold attack: pure functions on evaluation outputs (no model runs here;
the on-demand ones train models in :mod:`mucomp.experiment.shadows` / :mod:`~mucomp.experiment.relearn`).

- :mod:`mucomp.audits.leakage`: where the forget images' probability mass goes, compared with the
  Retrained model (Jensen-Shannon divergence, the forgotten class's rank).
- :mod:`mucomp.audits.probes`: layer-wise decodability, a linear probe per named layer that tells
  forget images from retain images.
- :mod:`mucomp.audits.ulira`: U-LiRA, the per-example likelihood-ratio attack on shadow models
  (Hayes et al., SaTML 2025): its estimator and accuracy; on demand.
- :mod:`mucomp.audits.challenge`: many-model evaluation: the NeurIPS-2023 challenge's forgetting
  quality F (per-example ε over N unlearned vs N retrained models) and EasyDUB's KLoM.
- :mod:`mucomp.audits.relearn`: the relearning attack's split and summary (arXiv 2505.22310); on demand.
- :mod:`mucomp.audits.eligibility`: which on-demand audits a stored experiment can have.
- :mod:`mucomp.experiment.audits` runs the on-demand audits of a stored experiment and stores them.
"""

from mucomp.audits.challenge import (
    challenge_epsilons,
    challenge_score,
    epsilon_resolution,
    example_points,
    forget_quality,
    klom,
    klom_p95,
    logit_scaled_confidence,
    margin,
)
from mucomp.audits.leakage import class_leakage, js_divergence
from mucomp.audits.probes import layer_probes, probe_auc
from mucomp.audits.ulira import likelihood_ratio, phi, ulira_accuracy

__all__ = ["challenge_epsilons", "challenge_score", "class_leakage", "epsilon_resolution", "example_points",
           "forget_quality", "js_divergence", "klom", "klom_p95", "layer_probes", "likelihood_ratio",
           "logit_scaled_confidence", "margin", "phi", "probe_auc", "ulira_accuracy"]
