"""The names scripts and older code import from ``mucomp.compare``: the view functions of
:mod:`mucomp.results` and the metric catalogue of :mod:`mucomp.catalogue`. New code imports from
those modules."""

from mucomp.catalogue import COLUMN_HELP, METRIC_DIRECTIONS, METRIC_KEYS, TYPE_LABELS
from mucomp.results import *  # noqa: F403
from mucomp.results import __all__ as _results_names

__all__ = ["COLUMN_HELP", "METRIC_DIRECTIONS", "METRIC_KEYS", "TYPE_LABELS", *_results_names]
