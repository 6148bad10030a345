"""Screen's replicate groups and variance view, and Home's forget-set controls, through AppTest.

The Screen reads only the listing (configs and metrics), so the store here holds hand-made results
of known values; the statistics the page shows are checked against an independent t-interval."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from streamlit.testing.v1 import AppTest

from mucomp.store import ExperimentStore
from tests.helpers import clear_app_caches, fresh_app_home
from tests.test_adversarial import digits_weights, full_result

ROOT = Path(__file__).resolve().parents[1]
UA = {("ga", 1, 0.05): [0.10, 0.20, 0.15], ("ga", 2, 0.05): [0.05, 0.02, 0.08], ("ga", 1, 0.1): [0.3, 0.25, 0.35],
      ("ft", 1, 0.05): [0.60, 0.70, 0.65]}


@pytest.fixture()
def replicate_home(tmp_path, monkeypatch):
    fresh_app_home(tmp_path, monkeypatch)
    store = ExperimentStore(tmp_path / "experiments")
    weights = digits_weights()
    for (method, epochs, lr), values in UA.items():
        for seed, ua in enumerate(values):
            base = full_result()
            config = {**base["config"], "forget": "class:3", "train_seed": 0, "data_seed": 0, "arch": "digits_cnn",
                      "seed": seed, "method": method, "epochs": epochs, "lr": lr}
            label = "Gradient ascent (GA)" if method == "ga" else "Fine-tuning (FT)"
            store.save({**base, "config": config, "method_label": label, "metrics": {**base["metrics"], "UA": ua}},
                       weights)
    yield tmp_path
    clear_app_caches()


def test_screen_shows_each_group_with_its_t_interval_spread_ranks_and_sweep(replicate_home):
    at = AppTest.from_file(str(ROOT / "Home.py"), default_timeout=60)
    at.run()
    at.selectbox(key="home_forget").set_value(3).run()
    at.switch_page("pages/2_Screen.py").run()
    assert not at.exception, [e.value for e in at.exception]
    groups = next(df for df in at.dataframe if "vs best" in df.value.columns).value
    assert len(groups) == 4 and set(groups["n"]) == {3}
    for (method, epochs, lr), values in UA.items():
        row = groups[(groups["Hyper-parameters"].str.startswith(f"epochs {epochs}, lr {lr:g},"))
                     & (groups["Method"].str.contains("GA" if method == "ga" else "FT"))]
        low, high = stats.t.interval(0.95, 2, loc=np.mean(values), scale=stats.sem(values))
        assert row["UA"].iloc[0] == f"{np.mean(values) * 100:.1f} ± {(high - low) / 2 * 100:.1f}%"
    best = groups[groups["vs best"] == "best"]
    assert best["Hyper-parameters"].iloc[0].startswith("epochs 2, lr 0.05")  # lowest UA is the best forgetting
    assert set(groups["vs best"]) == {"best", "resolved", "not resolved"}
    figures = {c.key: json.loads(c.proto.spec) for c in at.get("plotly_chart")}
    spread = figures["screen_spread"]
    assert spread["layout"]["meta"]["metric"] == "UA" and len(spread["layout"]["meta"]["groups"]) == 4
    ranks = next(df for df in at.dataframe if "Ranked first" in df.value.columns).value
    assert ranks.iloc[0]["Ranks"] == "1 1 1"  # epochs 2 forgets most on every seed
    sweep = figures["screen_sweep"]  # ga: epochs x lr, the group means
    heat = sweep["data"][0]
    assert heat["x"] == ["1", "2"] and heat["y"] == ["0.05", "0.1"]
    assert heat["z"][0][0] == pytest.approx(np.mean(UA[("ga", 1, 0.05)]) * 100)
    assert heat["z"][1][1] is None  # epochs 2 x lr 0.1 was never run


def test_home_switches_the_forget_set_and_keeps_it_in_the_url(replicate_home):
    at = AppTest.from_file(str(ROOT / "Home.py"), default_timeout=60)
    at.run()
    at.selectbox(key="home_forget_kind").set_value("random").run()
    assert not at.exception, [e.value for e in at.exception]
    at.number_input(key="home_forget_percent").set_value(20.0).run()
    assert at.query_params["forget"] == "random:20%"
    assert any("20% of the training images" in c.value for c in at.caption)
    at.selectbox(key="home_forget_kind").set_value("classes").run()
    assert at.query_params["forget"] == "classes:3,4"  # from the default class 3 and the next
    at.multiselect(key="home_forget_classes").set_value([3, 5]).run()
    assert at.query_params["forget"] == "classes:3,5"
    at.number_input(key="home_data_seed").set_value(2).run()
    assert at.query_params["data_seed"] == "2" and not at.exception
