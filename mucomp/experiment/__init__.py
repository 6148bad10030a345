"""Running experiments: a scenario's references (:mod:`~mucomp.experiment.state`), one model's
figures from one evaluation pass (:mod:`~mucomp.experiment.figures`) and one unlearning run end
to end (:mod:`~mucomp.experiment.run`); U-LiRA's shadow models and the relearning attack, which
train models, are in :mod:`~mucomp.experiment.shadows` and :mod:`~mucomp.experiment.relearn`."""

from mucomp.experiment.figures import STAGES, evaluate_model, model_figures, result_record
from mucomp.experiment.run import (
    ExperimentStopped,
    check_base,
    load_base_model,
    run_experiment,
    store_custom_model,
)
from mucomp.experiment.state import (
    MAX_SCENARIO_STATES,
    ReferenceState,
    ScenarioState,
    clear_scenario_cache,
    hub_reference_check,
    prepare_scenario,
    reload_tainted_data,
)

__all__ = [
    "MAX_SCENARIO_STATES", "STAGES", "ExperimentStopped", "ReferenceState", "ScenarioState", "check_base",
    "clear_scenario_cache", "evaluate_model", "hub_reference_check", "load_base_model", "model_figures",
    "prepare_scenario", "reload_tainted_data", "result_record", "run_experiment", "store_custom_model",
]
