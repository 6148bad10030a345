"""Tables and figure data from stored results, for the Screen, Contrast and Attack pages, the CLI
and the static report (torch-free: reading results never imports torch or UMAP).

- :mod:`mucomp.results.access`: validation at the boundary, scenario checks, labels.
- :mod:`mucomp.results.screen`: the experiment table, cost counts, Pareto front, epoch curves.
- :mod:`mucomp.results.contrast`: class-wise accuracy, prediction matrices, the twin embedding,
  layer-wise CKA, the stored leakage and probes.
- :mod:`mucomp.results.attack`: the threshold attack per strategy, instance probabilities, the
  stored U-LiRA and relearning audits.
"""

from mucomp.results.access import (
    IncompatibleResultsError,
    MissingBlockError,
    as_result,
    block,
    check_same_scenario,
    experiment_label,
    failed_reference_check,
    forget_classes_of,
    reference_check_warnings,
    scenario_of,
    unreproduced_references,
)
from mucomp.results.attack import (
    METRIC_LABELS,
    STRATEGY_ALIASES,
    STRATEGY_LABELS,
    AttackValues,
    AttackView,
    attack_values,
    attack_view,
    clearest_first,
    instance_probabilities,
    relearn_frame,
    relearn_summary_text,
    stored_audits,
    ulira_ranking,
)
from mucomp.results.contrast import (
    CKA_COLUMNS,
    CKA_REFERENCES,
    STORED_EMBEDDING_TEMPERATURE,
    cka_frame_for,
    cka_layers,
    class_accuracies,
    class_accuracy,
    probe_frame,
    retain_gap,
    retain_gap_of,
    stored_audit,
    stored_prediction_matrix,
    twin_embedding,
)
from mucomp.results.screen import (
    COST_KEYS,
    PRIVACY_READING,
    TABLE_COLUMNS,
    compact_count,
    cost_count,
    cost_summary,
    epoch_curves,
    experiment_table,
    front_of_experiments,
    pareto_front,
    timings_table,
)

__all__ = [
    "CKA_COLUMNS", "CKA_REFERENCES", "COST_KEYS", "METRIC_LABELS", "PRIVACY_READING", "STORED_EMBEDDING_TEMPERATURE",
    "STRATEGY_ALIASES", "STRATEGY_LABELS", "TABLE_COLUMNS", "AttackValues", "AttackView", "IncompatibleResultsError",
    "MissingBlockError", "as_result", "attack_values", "attack_view", "block", "clearest_first", "check_same_scenario", "cka_frame_for",
    "cka_layers", "class_accuracies", "class_accuracy", "compact_count", "cost_count", "cost_summary", "epoch_curves",
    "experiment_label", "experiment_table", "front_of_experiments", "failed_reference_check", "forget_classes_of", "instance_probabilities",
    "pareto_front", "probe_frame", "timings_table", "reference_check_warnings", "relearn_frame", "relearn_summary_text", "retain_gap",
    "retain_gap_of", "scenario_of", "stored_audit", "stored_audits", "stored_prediction_matrix", "twin_embedding",
    "ulira_ranking", "unreproduced_references",
]
