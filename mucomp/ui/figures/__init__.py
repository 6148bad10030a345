"""Pure plotly figure builders, one module per page (:mod:`~mucomp.ui.figures.screen`,
:mod:`~mucomp.ui.figures.contrast`, :mod:`~mucomp.ui.figures.attack`) on shared conventions
(:mod:`~mucomp.ui.figures.common`). Inputs in, a new ``plotly.graph_objects.Figure`` out; none
reads files, session state or Streamlit."""

from mucomp.ui.figures.attack import (
    FLAGGED_COLOR,
    UNFLAGGED_COLOR,
    attack_curves_figure,
    attack_distribution_figure,
    beyond_range,
    histogram_counts,
    probability_bars_figure,
    relearn_figure,
    signed_log,
    ulira_lr_figure,
)
from mucomp.ui.figures.common import (
    CLASS_COLORS,
    CURVE_COLORS,
    DIM_COLOR,
    DIM_OPACITY,
    FORGET_COLOR,
    FORGET_FILL,
    FORGET_SYMBOL,
    METRIC_AXIS_TITLES,
    MODEL_COLORS,
    RETAIN_SYMBOL,
    TEMPLATE,
    axis_title,
    class_color,
)
from mucomp.ui.figures.contrast import (
    cka_figure,
    class_accuracy_figure,
    class_difference_figure,
    embedding_figure,
    leakage_figure,
    prediction_matrix_figure,
    probe_figure,
    selection_ids,
    selection_indices,
)
from mucomp.ui.figures.screen import epoch_figure, pareto_figure

__all__ = [
    "CLASS_COLORS", "CURVE_COLORS", "DIM_COLOR", "DIM_OPACITY", "FLAGGED_COLOR", "FORGET_COLOR", "FORGET_FILL",
    "FORGET_SYMBOL", "METRIC_AXIS_TITLES", "MODEL_COLORS", "RETAIN_SYMBOL", "TEMPLATE", "UNFLAGGED_COLOR",
    "attack_curves_figure", "attack_distribution_figure", "axis_title", "beyond_range", "class_accuracy_figure",
    "class_color", "class_difference_figure", "cka_figure", "embedding_figure", "epoch_figure", "histogram_counts",
    "leakage_figure", "pareto_figure", "prediction_matrix_figure", "probability_bars_figure", "probe_figure",
    "relearn_figure", "selection_ids", "selection_indices", "signed_log", "ulira_lr_figure",
]
