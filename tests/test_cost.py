"""RT measures the method only (one-time warm-up before the clock) and every run reports its
hardware-independent cost: samples forwarded, samples back-propagated, optimiser steps."""

import copy
import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from mucomp import compare
from mucomp.methods import UnlearnContext, get_method, register, run_unlearning, unregister
from mucomp.methods.unlearning import reset_warm_up, warm_up
from mucomp.ui import tables
from tests.helpers import same_weights

COST_KEYS = {"samples_forwarded", "samples_backpropagated", "optimizer_steps"}


@pytest.fixture(scope="module")
def sizes(digits_scenario):
    """(n_forget, n_retain) of the acceptance scenario."""
    return len(digits_scenario.forget_indices), len(digits_scenario.retain_indices)


def run(name, original, scenario, **hyper):
    model = copy.deepcopy(original)
    result = run_unlearning(name, model, scenario, hyper, device="cpu")
    assert result.status == "completed", result.message
    return result, model


# ---------------------------------------------------------------------------------------------
# Cost counts


def test_ft_counts_are_what_the_retain_set_implies(digits_scenario, original, sizes):
    _, n_retain = sizes
    result, _ = run("ft", original, digits_scenario, epochs=1, batch_size=32)
    assert result.cost == {
        "samples_forwarded": n_retain,
        "samples_backpropagated": n_retain,
        "optimizer_steps": math.ceil(n_retain / 32),
    }
    assert result.cost["optimizer_steps"] == result.steps
    assert all(type(v) is int for v in result.cost.values())


def test_ga_counts_are_what_the_forget_set_implies(digits_scenario, original, sizes):
    n_forget, _ = sizes
    result, _ = run("ga", original, digits_scenario, epochs=2, batch_size=16)
    assert result.cost == {
        "samples_forwarded": 2 * n_forget,
        "samples_backpropagated": 2 * n_forget,
        "optimizer_steps": 2 * math.ceil(n_forget / 16),
    }


def test_the_per_epoch_forget_checks_are_not_counted(digits_scenario, original, sizes):
    # Three epochs, three forget-accuracy passes over D_f: none of them in the counts.
    n_forget, _ = sizes
    result, _ = run("ga", original, digits_scenario, epochs=3, batch_size=64)
    assert len(result.epochs) == 3
    assert result.cost["samples_forwarded"] == result.cost["samples_backpropagated"] == 3 * n_forget
    ctx = UnlearnContext("ft", copy.deepcopy(original), digits_scenario, get_method("ft").resolve("digits"), 0)
    with ctx:
        before = ctx.cost
        ctx.forget_accuracy()
        assert ctx.cost == before == {"samples_forwarded": 0, "samples_backpropagated": 0, "optimizer_steps": 0}
        ctx.model(next(ctx.forget_batches(batch_size=5))[0])  # a forward of the method's own: counted
        assert ctx.cost["samples_forwarded"] == 5


def test_scrub_forwards_more_than_it_back_propagates(digits_scenario, original, sizes):
    # Each batch goes through the teacher (no grad) and the student (stepped).
    n_forget, n_retain = sizes
    result, model = run("scrub", original, digits_scenario, epochs=1, msteps=1, batch_size=32, forget_batch_size=16)
    assert not model._forward_pre_hooks  # the run's hooks are gone
    stepped = n_forget + n_retain
    assert result.cost == {
        "samples_forwarded": 2 * stepped,
        "samples_backpropagated": stepped,
        "optimizer_steps": math.ceil(n_forget / 16) + math.ceil(n_retain / 32),
    }


def test_salun_saliency_is_forwarded_but_not_back_propagated(digits_scenario, original, sizes):
    # The saliency gradient (preparation) is never stepped; RL's epoch over D_f + D_r is.
    n_forget, n_retain = sizes
    result, _ = run("salun", original, digits_scenario, epochs=1)
    assert result.cost["samples_forwarded"] == n_forget + (n_forget + n_retain)
    assert result.cost["samples_backpropagated"] == n_forget + n_retain


@pytest.fixture()
def mask_only():
    """A method that computes gradients (a saliency-like score) but never steps."""

    def mask_only_method(ctx):
        for _epoch in ctx.epochs():
            for images, labels in ctx.forget_batches():
                F.cross_entropy(ctx.model(images), labels).backward()
        ctx.model.zero_grad(set_to_none=True)

    register("cost_mask_only", defaults={"epochs": 1, "lr": 0.01, "batch_size": 32})(mask_only_method)
    yield "cost_mask_only"
    unregister("cost_mask_only")


def test_a_method_that_never_steps_back_propagates_nothing(digits_scenario, original, sizes, mask_only):
    n_forget, _ = sizes
    model = copy.deepcopy(original)
    result = run_unlearning(mask_only, model, digits_scenario)
    assert result.status == "completed", result.message
    assert result.cost == {"samples_forwarded": n_forget, "samples_backpropagated": 0, "optimizer_steps": 0}
    assert same_weights(model, original)


def test_hooks_come_off_even_when_the_run_stops(digits_scenario, original):
    stopped = copy.deepcopy(original)
    assert not stopped._forward_pre_hooks
    result = run_unlearning("ga", stopped, digits_scenario, {"lr": 1e6, "clip_grad_norm": 0, "epochs": 3})
    assert result.status == "diverged"
    assert not stopped._forward_pre_hooks
    assert result.cost["optimizer_steps"] == result.steps > 0
    assert result.cost["samples_backpropagated"] <= result.cost["samples_forwarded"]


# ---------------------------------------------------------------------------------------------
# Warm-up


def test_warm_up_leaves_the_model_and_the_random_state_unchanged(digits_scenario, original):
    reset_warm_up()
    model = copy.deepcopy(original).eval()
    snapshot = copy.deepcopy(model)
    rng = torch.get_rng_state()
    seconds = warm_up(model, digits_scenario, 32, "cpu")
    assert seconds > 0
    assert same_weights(model, snapshot)  # weights and BatchNorm statistics, bit for bit
    assert not model.training and all(p.grad is None for p in model.parameters())
    assert torch.equal(torch.get_rng_state(), rng)
    assert warm_up(model, digits_scenario, 32, "cpu") == 0.0  # once per process, class, device, shape


def test_same_config_same_weights_whether_the_process_is_warm_or_not(digits_scenario, original):
    reset_warm_up()
    cold, cold_model = run("rl", original, digits_scenario, epochs=1)  # random labels: uses the generator
    warm, warm_model = run("rl", original, digits_scenario, epochs=1)
    assert cold.warmup_seconds > 0 and warm.warmup_seconds == 0.0
    assert same_weights(cold_model, warm_model)
    assert not same_weights(cold_model, original)
    assert cold.cost == warm.cost


# ---------------------------------------------------------------------------------------------
# Stored results and the Screen table


def _result(experiment_id, cost="absent", **metrics):
    result = {
        "id": experiment_id, "kind": "unlearned", "schema_version": 1, "created_at": "2026-01-01T00:00:00+00:00",
        "config": {"dataset": "digits", "forget_class": 3, "seed": 0, "method": "ga", "base": "original",
                   "epochs": 1, "lr": 0.01, "batch_size": 32, "params": {}},
        "metrics": {"UA": 0.1, "RT": 1.5, **metrics},
    }
    if cost != "absent":
        result["metrics"]["cost"] = cost
    return result


def test_the_screen_table_shows_cost_after_rt_and_old_results_still_show():
    counts = {"samples_forwarded": 24680, "samples_backpropagated": 12340, "optimizer_steps": 386}
    results = [_result("aaaa", counts), _result("bbbb"), _result("cccc", None),
               _result("dddd", {"samples_backpropagated": "lots"})]
    table = compare.experiment_table(results)
    columns = list(table.columns)
    assert columns.index("Cost") == columns.index("RT") + 1
    assert table["Cost"].tolist()[0] == 12340.0 and table["Cost"].isna().tolist() == [False, True, True, True]
    assert "Hardware-independent" in compare.COLUMN_HELP["Cost"]
    html = tables.styled(tables.readable(table, None), ["efficiency"]).to_html()
    assert "12.3k" in html
    assert compare.cost_summary(results[0]) == (
        "Cost: 12.3k samples back-propagated, 24.7k forwarded, 386 optimiser steps.")
    assert compare.cost_summary(results[1]) == "" and compare.cost_summary(results[2]) == ""


@pytest.mark.parametrize(
    ("value", "text"),
    [(0, "0"), (950, "950"), (1210, "1.21k"), (12345, "12.3k"), (999_999, "1M"), (4_500_000, "4.5M"),
     (None, "—"), (np.nan, "—"), ("x", "—")],
)
def test_compact_count(value, text):
    assert compare.compact_count(value) == text


def test_a_table_of_stored_results_without_cost_is_unchanged_otherwise():
    table = compare.experiment_table([_result("aaaa")])
    assert isinstance(table, pd.DataFrame) and table.loc[0, "RT"] == 1.5 and math.isnan(table.loc[0, "Cost"])
