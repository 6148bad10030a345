"""Many-model evaluation in the views (issue 32): Screen's F / Score / KLoM columns and the Attack
page's "Many models" tab, from ensemble records built of synthetic confidences run through the
challenge's metric functions (:mod:`mucomp.audits.challenge`); no model is trained.

The store holds hand-made results (digits, forget class 3): the Retrained reference, a GA
experiment whose configuration has an ensemble, an FT experiment whose configuration has none."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from mucomp import catalogue
from mucomp.audits.challenge import (
    challenge_epsilons,
    challenge_score,
    epsilon_resolution,
    example_points,
    forget_quality,
    klom,
    klom_p95,
)
from mucomp.data import Scenario
from mucomp.groups import group_id, train_seed_of
from mucomp.results import ensembles as ens
from mucomp.store import ExperimentStore
from mucomp.store.ensembles import (
    ENSEMBLE_FORMAT,
    EnsembleResult,
    ensemble_key,
    load_ensemble_results,
    retrained_ensemble_key,
    save_ensemble_result,
)
from mucomp.ui import tables
from mucomp.ui.figures import ensembles as ens_figures
from tests.test_adversarial import digits_weights, full_result

ROOT = Path(__file__).resolve().parents[1]
N_MODELS = 8
SCENARIO = Scenario("digits", 3, 0)


def _result(kind: str, method: str, **config) -> dict:
    base = full_result()
    config = {**base["config"], "forget": "class:3", "train_seed": 0, "data_seed": 0, "arch": "digits_cnn",
              "method": method, **config}
    result = {**base, "kind": kind, "config": config}
    result.pop("method_label")
    if kind != "unlearned":
        result["method_label"] = kind.capitalize()
    return result


def make_record(config: dict, forget: np.ndarray, *, kind: str = "unlearned", shift: float = 1.5,
                seed: int = 0, n: int = N_MODELS) -> dict:
    """An ensemble record of synthetic confidences, its figures computed with the challenge's functions."""
    rng = np.random.default_rng(seed)
    retrained = rng.normal(0.0, 1.0, (n, forget.size))
    unlearned = rng.normal(0.0, 1.0, (n, forget.size)) + shift * (np.arange(forget.size) % 3 == 0)
    if kind == "retrained":
        unlearned = retrained
    eps = challenge_epsilons(unlearned, retrained)
    quality = forget_quality(unlearned, retrained) if kind == "unlearned" else None
    values = klom(unlearned, retrained)
    half = n // 2
    return {
        "format": ENSEMBLE_FORMAT, "kind": kind, "config": config, "group": group_id(config),
        "key": ensemble_key(config) if kind == "unlearned" else retrained_ensemble_key(config),
        "train_seed": train_seed_of(config), "method": config["method"] if kind == "unlearned" else "retrained",
        "n_models": n, "n_retrained": n, "unlearn_seeds": list(range(n)), "retrained_seeds": list(range(1, n + 1)),
        "forget_indices": forget.tolist(), "forget_quality": quality,
        "score": None if quality is None else challenge_score(quality, 0.97, 0.98, 0.95, 0.96),
        "accuracies": {"unlearned_retain": 0.97, "retrained_retain": 0.98, "unlearned_test": 0.95,
                       "retrained_test": 0.96},
        "klom_p95": {"forget": klom_p95(values), "retain": 0.4, "test": 0.5},
        "epsilons": eps.tolist(), "points": example_points(eps, n).tolist(),
        "klom": {"forget": values.tolist(), "retain": [], "test": []},
        "confidences": {"unlearned": unlearned.round(4).tolist(), "retrained": retrained.round(4).tolist()},
        "resolution": epsilon_resolution(n),
        "self_score": forget_quality(retrained[:half], retrained[half:]) if kind == "retrained" else None,
        "member_seconds": [0.5] * n, "seconds": 10.0, "created": "2026-01-02T03:04:05+00:00",
        "mucomp_version": "0.1.0",
    }


@pytest.fixture(scope="module")
def forget() -> np.ndarray:
    return np.asarray(SCENARIO.forget_indices)


@pytest.fixture(scope="module")
def stored(tmp_path_factory, forget):
    """A private home for the module: Retrained, GA (with an ensemble), FT (without), plus an RL
    ensemble of the scenario whose experiment is not stored, and the Retrained ensemble. Tests that
    change the records put them back."""
    home = tmp_path_factory.mktemp("ensembles-home")
    patch = pytest.MonkeyPatch()
    patch.setenv("MUCOMP_HOME", str(home))
    st.cache_resource.clear()
    st.cache_data.clear()
    store = ExperimentStore(home / "experiments")
    weights = digits_weights()
    ids = {name: store.save(_result(kind, method, **extra), weights).id for name, kind, method, extra in (
        ("retrained", "retrained", "retrained", {}), ("ga", "unlearned", "ga", {}),
        ("ft", "unlearned", "ft", {"lr": 0.01, "params": {}}),
        ("odd", "unlearned", "ft", {"params": {"clip_grad_norm": 0.025}}))}  # a parameter FT does not take
    configs = {name: store.load(i).result["config"] for name, i in ids.items()}
    records = {"ga": make_record(configs["ga"], forget, shift=2.5),
               "rl": make_record({**configs["ga"], "method": "rl", "params": {}}, forget, shift=0.5, seed=1),
               "retrained": make_record(configs["retrained"], forget, kind="retrained", seed=2)}
    for record in records.values():
        save_ensemble_result(record)
    yield {"ids": ids, "configs": configs, "records": records, "home": home}
    st.cache_resource.clear()
    st.cache_data.clear()
    patch.undo()


def open_page(stored, page: str, a: str = "ga", b: str = "ft") -> AppTest:
    at = AppTest.from_file(str(ROOT / "Home.py"), default_timeout=60)
    at.run()
    at.session_state["mucomp_scenario"] = SCENARIO
    at.session_state["mucomp_model_a"], at.session_state["mucomp_model_b"] = stored["ids"][a], stored["ids"][b]
    if page.endswith("4_Attack.py"):
        at.session_state["mucomp_attack"] = {**at.session_state["mucomp_attack"], "tab": "ensembles"}
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _chart(at: AppTest, key: str) -> dict:
    return json.loads(next(c for c in at.get("plotly_chart") if c.key == key).proto.spec)


def _column_help(at: AppTest) -> dict[str, str]:
    columns = json.loads(at.dataframe[0].proto.columns)
    return {spec.get("label", name): spec.get("help", "") for name, spec in columns.items() if isinstance(spec, dict)}


# --- Screen -----------------------------------------------------------------------------------------


def test_screen_shows_the_ensemble_columns_for_configurations_with_a_record(stored):
    at = open_page(stored, "pages/2_Screen.py")
    view = at.dataframe[0].value.set_index("ID")
    ga, ft, retrained = (view.loc[stored["ids"][k]] for k in ("ga", "ft", "retrained"))
    record = stored["records"]["ga"]
    assert ga["F"] == pytest.approx(record["forget_quality"]) and ga["Score"] == pytest.approx(record["score"])
    assert ga["KLoM"] == pytest.approx(record["klom_p95"]["forget"]) and ga[ens.N_COLUMN] == N_MODELS
    for row in (ft, retrained):  # no ensemble of that configuration; a reference has none
        assert all(math.isnan(row[c]) for c in ens.ENSEMBLE_COLUMNS)
    helps = _column_help(at)
    assert f"N = {N_MODELS} (1 row)" in helps["F"] and "noise floor" in helps["F"]
    assert f"{stored['records']['retrained']['self_score']:.3f}" in helps["F"]
    assert "(lower is better" in helps["KLoM"] and "N = 8" in helps["KLoM"]
    # Coloured like the other privacy columns, on their fixed scales.
    css = at.dataframe[0].proto.arrow_data.styler.styles
    row = list(at.dataframe[0].value["ID"]).index(stored["ids"]["ga"])
    column = list(at.dataframe[0].value.columns).index("F")
    green = catalogue.COLOR_GROUPS["privacy"][1]
    expected = tables.tint(green, float(np.clip(record["forget_quality"], 0, 1)))
    assert re.search(rf"row{row}_col{column}[^{{]*\{{\s*background-color:\s*{expected}", css)
    assert any("F, Score" in h.value and "KLoM" in h.value for h in at.get("html"))


def test_screen_without_records_shows_no_ensemble_columns(stored, tmp_path):
    folder = stored["home"] / "ensembles" / "results"
    folder.rename(tmp_path / "kept")
    try:
        at = open_page(stored, "pages/2_Screen.py")
    finally:
        (tmp_path / "kept").rename(folder)
    shown = list(at.dataframe[0].proto.column_order)
    assert "PS" in shown and not set(ens.ENSEMBLE_COLUMNS) & set(shown)
    assert "F" not in at.selectbox(key="screen_sort").options
    assert not any("KLoM" in h.value for h in at.get("html"))


# --- Attack: the Many models tab --------------------------------------------------------------------


def test_the_many_models_tab_draws_every_figure_of_the_record(stored, forget):
    at = open_page(stored, "pages/4_Attack.py")
    record = stored["records"]["ga"]
    assert any(m.label == "Forgetting quality F" and m.value == f"{record['forget_quality']:.3f}" for m in at.metric)
    assert any(f"N = {N_MODELS} unlearned and {N_MODELS} Retrained models resolve ε up to 2" in c.value
               for c in at.caption)
    buckets = _chart(at, "ensemble_buckets")
    bars, points = buckets["data"]
    assert sum(bars["y"]) == forget.size and points["y"] == [1.0, 0.5, 0.25, 0.125, 0.0]
    assert buckets["layout"]["legend"]["y"] < 0  # under the chart, like the other figures
    methods = _chart(at, "ensemble_methods")
    assert set(methods["data"][0]["y"]) == {"ga", "rl"}  # every unlearned ensemble of the scenario
    floor = stored["records"]["retrained"]["self_score"]
    assert methods["data"][1]["name"].startswith("Retrained against itself") and f"{floor:.3f}" in methods["data"][1]["name"]
    top = int(ens.epsilon_ranking(EnsembleResult.model_validate(record))["index"].iloc[0])
    grid = _chart(at, "ensemble_grid")
    assert grid["data"][1]["customdata"][0][0] == top  # the highest ε first
    first = _chart(at, "ensemble_distributions")
    assert first["layout"]["title"]["text"].startswith(f"Image #{top}:")
    assert [t["name"] for t in first["data"]] == [f"A: ga · {stored['ids']['ga']}: {N_MODELS} models",
                                                  f"Retrained: {N_MODELS} models"]
    assert sum(first["data"][0]["y"]) == N_MODELS and sum(first["data"][1]["y"]) == N_MODELS
    klom_chart = _chart(at, "ensemble_klom")
    assert len(klom_chart["data"][0]["y"]) == forget.size
    # A click on a KLoM bar picks the image whose distributions are drawn.
    other = int(forget[5]) if int(forget[5]) != top else int(forget[6])
    at.session_state["ensemble_klom"] = {"selection": {"points": [{"customdata": [other, 0.0]}],
                                                       "point_indices": [0], "box": [], "lasso": []}}
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert _chart(at, "ensemble_distributions")["layout"]["title"]["text"].startswith(f"Image #{other}:")


class RecordingQueue:
    """The job API as the page sees it, two workers, keeping what is submitted (nothing runs)."""

    workers = 2

    def __init__(self):
        self.submitted: list = []

    def jobs(self) -> list:
        return []

    def submit(self, requests, **options) -> list[str]:
        self.submitted.append((list(requests), options))
        return [f"job-{k}" for k in range(len(requests))]


def test_a_configuration_without_an_ensemble_says_how_to_make_one(stored, monkeypatch):
    from mucomp.execution import MakeEnsembleMember, RunEnsemble
    from mucomp.ui import session

    queue = RecordingQueue()
    monkeypatch.setattr(session, "get_queue", lambda: queue)
    at = open_page(stored, "pages/4_Attack.py", a="ft", b="ft")
    assert any("No ensemble yet" in i.value for i in at.info)
    command = at.code[0].value
    assert command.startswith("mucomp ensemble --dataset digits --forget class:3 --seed 0 --method ft")
    assert "--lr 0.01" in command and command.endswith("--n 32")  # 32 on digits
    assert at.selectbox(key="ensemble_n").value == 32
    assert at.button(key="ensemble_run").label == "Make the ensembles"
    # The estimate, said before the job starts: nothing is cached in this home, so every model is to make.
    assert any(c.value.startswith("ETA about") and "32 unlearned model(s) to make" in c.value for c in at.caption)
    assert not at.button(key="ensemble_run").disabled
    # The button queues the models side by side (two workers), the Retrained ones first, then the scoring job.
    at.selectbox(key="ensemble_n").set_value(4).run()
    at.button(key="ensemble_run").click().run()
    assert not at.exception, [e.value for e in at.exception]
    [(requests, options)] = queue.submitted
    members = [r for r in requests if isinstance(r, MakeEnsembleMember)]
    assert [r.spec.kind for r in members] == ["retrained"] * 4 + ["unlearned"] * 4
    assert isinstance(requests[-1], RunEnsemble) and requests[-1].n == 4 and requests[-1].config.method == "ft"
    assert ensemble_key(requests[-1].config.to_dict()) == ensemble_key(stored["configs"]["ft"])
    assert options["owner"] == at.session_state["mucomp_owner"]
    # A configuration the ensemble job would refuse: said before anything is queued, the button off.
    at.session_state["mucomp_model_a"] = at.session_state["mucomp_model_b"] = stored["ids"]["odd"]
    at.run()
    assert any("can't be made here" in i.value and "no hyper-parameter" in i.value for i in at.info), \
        [i.value for i in at.info]
    assert at.button(key="ensemble_run").disabled


def test_a_hostile_record_does_not_break_the_pages_and_is_reported(stored):
    bad = dict(stored["records"]["rl"])
    bad["epsilons"] = bad["epsilons"][:-3]  # lengths that disagree
    folder = stored["home"] / "ensembles" / "results"
    good = (folder / f"{bad['key']}.json").read_bytes()
    (folder / f"{bad['key']}.json").write_text(json.dumps(bad))
    (folder / "g-0000000000-s0.json").write_text('{"format": NaN}')
    try:
        pages = [open_page(stored, page) for page in ("pages/2_Screen.py", "pages/4_Attack.py")]
    finally:
        (folder / f"{bad['key']}.json").write_bytes(good)
        (folder / "g-0000000000-s0.json").unlink()
    for at in pages:
        warning = next(w.value for w in at.warning if "ensemble record" in w.value)
        assert warning.startswith("2 ensemble record(s) can't be read") and "epsilons has" in warning
        assert "NaN" in warning
    methods = _chart(at, "ensemble_methods")  # the good records are still drawn
    assert list(methods["data"][0]["y"]) == ["ga"]


# --- the figure data and texts, without a page ------------------------------------------------------


@pytest.fixture(scope="module")
def record(forget) -> EnsembleResult:
    config = {**_result("unlearned", "ga")["config"]}
    return EnsembleResult.model_validate(make_record(config, forget, shift=2.5))


def test_buckets_and_ranking_agree_with_the_stored_points(record):
    buckets = ens.epsilon_buckets(record)
    assert buckets["images"].sum() == len(record.forget_indices)
    assert buckets["contribution"].sum() == pytest.approx(record.forget_quality)
    assert buckets["label"].iloc[-1] == "ε ≥ 2" and buckets["points"].iloc[-1] == 0.0
    ranking = ens.epsilon_ranking(record)
    assert ranking["epsilon"].is_monotonic_decreasing and ranking["rank"].tolist()[:3] == [1, 2, 3]
    row = ranking.iloc[0]
    confs = np.asarray(record.confidences.unlearned)[:, record.forget_indices.index(int(row["index"]))]
    assert row["unlearned_median"] == pytest.approx(np.median(confs))
    shown = ens.confidence_distributions(record, int(row["index"]))
    assert shown["unlearned"].tolist() == confs.tolist() and shown["epsilon"] == row["epsilon"]
    with pytest.raises(ValueError, match="not a forget image"):
        ens.confidence_distributions(record, -1)
    frame = ens.klom_frame(record)
    assert frame["klom"].is_monotonic_decreasing and frame.attrs["p95"] == record.klom_p95.forget
    stripped = record.model_copy(update={"confidences": record.confidences.model_copy(update={"unlearned": []})})
    assert ens.confidence_distributions(stripped, int(row["index"])) is None
    assert ens.epsilon_ranking(stripped)["unlearned_median"].isna().all()


def test_table_columns_and_tooltips(record):
    results = [{"id": "aaaa", "kind": "unlearned", "config": record.config},
               {"id": "bbbb", "kind": "unlearned", "config": {**record.config, "lr": 0.2}},
               {"id": "cccc", "kind": "original", "config": record.config}]
    table = pd.DataFrame({"ID": ["cccc", "aaaa", "bbbb"], "UA": [1.0, 0.1, 0.2]})
    out = ens.with_ensemble_columns(table, results, [record])
    assert out["F"].tolist()[1] == record.forget_quality and out[ens.N_COLUMN].tolist()[1] == N_MODELS
    assert out["F"].isna().tolist() == [True, False, True] and out["ID"].tolist() == table["ID"].tolist()
    assert ens.has_ensembles(out) and not ens.has_ensembles(ens.with_ensemble_columns(table, results, []))
    assert "N = 8 (1 row)" in ens.ensemble_column_help("Score", out)
    assert catalogue.direction("F") == "higher" and catalogue.direction("KLoM") == "lower"
    klom_scale = tables.goodness(pd.Series([0.0, 11.5, 50.0, np.nan]), "KLoM")
    assert klom_scale[:3].tolist() == [1.0, 0.0, 0.0] and np.isnan(klom_scale[3])
    assert tables.goodness(pd.Series([0.25]), "F").tolist() == [0.25]
    assert tables.scale_note("privacy", None, ["PS", "MIA", "Avg. Gap"]) == \
        "PS, MIA darkest at 100 %, Avg. Gap at 0 % (linear)"
    assert "F, Score at 1, KLoM at 0" in tables.scale_note("privacy")


def test_method_scores_texts_and_figures(stored):
    records, problems = load_ensemble_results()
    assert problems == []
    config = stored["configs"]["ga"]
    scores, floor = ens.method_scores(records, config)
    assert sorted(scores["method"]) == ["ga", "rl"] and scores["F"].is_monotonic_decreasing
    assert scores.loc[scores["method"] == "ga", "current"].item() and floor == stored["records"]["retrained"]["self_score"]
    other = {**config, "forget": "class:4", "forget_class": 4}
    assert ens.method_scores(records, other)[0].empty and ens.method_scores(records, other)[1] is None
    labels = ens.record_labels(records, [{"id": "x", "kind": "unlearned", "config": config, "method_label": "GA"}])
    assert labels[ensemble_key(config)] == "Gradient ascent (GA)"  # a built-in's own label, not the stored text
    assert "`mucomp ensemble " in ens.no_ensemble_text(config, 8) and "--n 8`" in ens.no_ensemble_text(config, 8)
    assert "'a b'" in ens.ensemble_command({**config, "method": "a b"}, 4)  # quoted for the shell
    assert ens.default_ensemble_size("digits") == 32 and ens.default_ensemble_size("fashion_mnist") == 8
    ranking_fig = ens_figures.method_scores_figure(scores, None)
    assert len(ranking_fig.data) == 1  # no noise floor without a Retrained self-score
