"""Audits beyond the threshold attack, each a module of pure functions on evaluation outputs.

- :mod:`mucomp.audits.leakage`: where the forget images' probability mass goes, compared with the
  Retrained model (Jensen-Shannon divergence, the forgotten class's rank).
- :mod:`mucomp.audits.probes`: layer-wise decodability, a linear probe per named layer that tells
  forget images from retain images.
"""

from mucomp.audits.leakage import class_leakage, js_divergence
from mucomp.audits.probes import layer_probes, probe_auc

__all__ = ["class_leakage", "js_divergence", "layer_probes", "probe_auc"]
