"""Guards that refuse bad input before any work: seeds out of range, grids too large."""

import time

import pytest

from mucomp.data import MAX_SEED, Scenario, validate_seed
from mucomp.runner import MAX_RUNS, ExperimentConfig, TooManyRunsError, expand_grid, grid_size


@pytest.mark.parametrize("seed", [2**32, 99999999999999999999, -1])
def test_scenario_refuses_seeds_outside_32_bits_at_once(seed):
    start = time.perf_counter()
    with pytest.raises(ValueError, match=r"seed must be in \[0, 2\*\*32\), got"):
        Scenario("digits", 3, seed)
    assert time.perf_counter() - start < 0.1


@pytest.mark.parametrize("seed", [1.5, True, "3", None])
def test_scenario_refuses_non_integer_seeds(seed):
    with pytest.raises(ValueError, match="seed must be an integer"):
        Scenario("digits", 3, seed)


def test_largest_seed_works():
    import numpy as np

    assert MAX_SEED == 2**32
    scenario = Scenario("digits", 3, 2**32 - 1)
    assert scenario.train_seed == 2**32 - 1 and type(scenario.train_seed) is int
    assert Scenario("digits", 3, np.uint64(2**32 - 1)).train_seed == 2**32 - 1
    assert validate_seed(0) == 0
    with pytest.raises(ValueError, match="seed must be in"):
        ExperimentConfig("digits", 3, 2**32)  # an experiment config validates through Scenario


def test_embedding_uses_the_same_seed_rule():
    import numpy as np

    from mucomp.embedding import embed

    with pytest.raises(ValueError, match=r"seed must be in \[0, 2\*\*32\)"):
        embed(np.zeros((20, 4)), 2**32)


def _grid(*lengths: int) -> dict[str, list]:
    return {f"p{i}": list(range(n)) for i, n in enumerate(lengths)}


def test_grid_size_is_the_product_and_validates():
    assert grid_size({}) == 1
    assert grid_size({"epochs": [1, 2], "lr": [0.1, 0.2, 0.3]}) == 6
    assert grid_size(_grid(1000, 1000, 1000, 1000)) == 10**12
    with pytest.raises(ValueError, match="non-empty list"):
        grid_size({"epochs": []})
    with pytest.raises(ValueError, match="non-empty list"):
        grid_size({"epochs": 3})


def test_expand_grid_limit():
    config = ExperimentConfig("digits", 3, 0, "ga")
    assert MAX_RUNS == 256
    assert len(expand_grid(config, _grid(16, 16))) == 256
    start = time.perf_counter()
    with pytest.raises(TooManyRunsError) as info:
        expand_grid(config, _grid(257))
    assert time.perf_counter() - start < 0.1
    assert isinstance(info.value, ValueError)
    assert str(info.value) == (
        "this grid makes 257 runs; at most 256 can be submitted at once: narrow the grid or use fewer seeds, or raise the limit "
        "(--max-runs N on the command line)"
    )
    assert len(expand_grid(config, _grid(257), max_runs=None)) == 257
    assert len(expand_grid(config, _grid(3, 4), max_runs=12)) == 12
    with pytest.raises(TooManyRunsError, match="makes 12 runs; at most 11 can be submitted"):
        expand_grid(config, _grid(3, 4), max_runs=11)


def test_a_million_run_grid_is_refused_in_milliseconds():
    config = ExperimentConfig("digits", 3, 0, "ga")
    grid = {"epochs": list(range(1, 101)), "lr": [i / 1e4 for i in range(100)], "batch_size": list(range(1, 101))}
    start = time.perf_counter()
    with pytest.raises(TooManyRunsError, match="this grid makes 1,000,000 runs"):
        expand_grid(config, grid)
    assert time.perf_counter() - start < 0.5


def test_a_grid_that_spells_one_run_twice_makes_it_once():
    # 0.05, 5e-2 and 0.050 are one learning rate; seeds 1 and 1 one seed.
    from mucomp.config import plan_runs

    config = ExperimentConfig("digits", 3, 0, "ga")
    runs = plan_runs(config, {"lr": [0.05, 5e-2, 0.050], "epochs": [1, 2]}, unlearn_seeds=[1, 1, 2])
    assert [(r.lr, r.epochs, r.unlearn_seed) for r in runs] == [(0.05, 1, 1), (0.05, 1, 2), (0.05, 2, 1), (0.05, 2, 2)]
    assert len(expand_grid(config, {"lr": [0.05, 0.1]})) == 2
