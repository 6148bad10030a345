"""Audits beyond the threshold attack, each a module of pure functions on evaluation outputs.

- :mod:`mucomp.audits.leakage`: where the forget images' probability mass goes, compared with the
  Retrained model (Jensen-Shannon divergence, the forgotten class's rank).
- :mod:`mucomp.audits.probes`: layer-wise decodability, a linear probe per named layer that tells
  forget images from retain images.
- :mod:`mucomp.audits.ulira`: U-LiRA, the per-example likelihood-ratio attack on shadow models
  (Hayes et al., SaTML 2025); on demand.
- :mod:`mucomp.audits.relearn`: the relearning attack (arXiv 2505.22310); on demand.
- :mod:`mucomp.audits.run`: runs the on-demand audits of a stored experiment and stores them.
"""

from mucomp.audits.leakage import class_leakage, js_divergence
from mucomp.audits.probes import layer_probes, probe_auc
from mucomp.audits.ulira import likelihood_ratio, phi, ulira_accuracy

__all__ = ["class_leakage", "js_divergence", "layer_probes", "likelihood_ratio", "phi", "probe_auc", "ulira_accuracy"]
