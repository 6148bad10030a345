"""The names scripts and older code import from ``mucomp.runner``, kept where the design's
contracts name them: the experiment config (:mod:`mucomp.config`) and running experiments
(:mod:`mucomp.experiment`). New code imports from those modules."""

from mucomp.config import (
    GRID_KEYS,
    MAX_RUNS,
    ExperimentConfig,
    TooManyRunsError,
    expand_grid,
    grid_size,
    plan_runs,
    reference_experiment_id,
)
from mucomp.experiment import (
    STAGES,
    ExperimentStopped,
    ReferenceState,
    ScenarioState,
    check_base,
    clear_scenario_cache,
    evaluate_model,
    load_base_model,
    model_figures,
    prepare_scenario,
    run_experiment,
    store_custom_model,
)

__all__ = [
    "GRID_KEYS", "MAX_RUNS", "STAGES", "ExperimentConfig", "ExperimentStopped", "ReferenceState", "ScenarioState",
    "TooManyRunsError", "check_base", "clear_scenario_cache", "evaluate_model", "expand_grid", "grid_size",
    "load_base_model", "model_figures", "plan_runs", "prepare_scenario", "reference_experiment_id",
    "run_experiment", "store_custom_model",
]
