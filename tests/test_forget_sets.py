"""Forget sets, separate training / unlearning / data seeds, replicate groups and their statistics
(issue 15): definitions on hand-made inputs, the schema reader for version-2 results, and the CLI
end to end on digits (references reused from the session's cache)."""

import json

import numpy as np
import pytest
from scipy import stats

from mucomp.data import Scenario
from mucomp.forget_sets import parse_forget, parse_index_text
from mucomp.groups import (
    group_id,
    group_summaries,
    rank_stability,
    resolved,
    retrained_by_train_seed,
    summarize,
    sweep_grid,
    t_interval,
)
from mucomp.metrics import accuracy_metrics
from mucomp.schema import check_result
from mucomp.seeds import parse_seeds
from mucomp.specs import DATASETS
from tests.test_metrics import make_eval, one_hot_logits

DIGITS = DATASETS["digits"]


def test_forget_set_texts_parse_to_canonical_forms():
    assert parse_forget("class:3", DIGITS).text == "class:3"
    assert parse_forget("class: 7 ", DIGITS).classes == (7,)
    assert parse_forget("classes:5,3,5", DIGITS).text == "classes:3,5"
    assert parse_forget("classes:4", DIGITS).text == "class:4"  # one class is a class set
    assert parse_forget("random:10%", DIGITS).percent == 10.0
    assert parse_forget("random:100", DIGITS).count == 100
    cifar = DATASETS["cifar10"]
    assert parse_forget("class:cat", cifar).classes == (3,)  # a name works too


@pytest.mark.parametrize("text, words", [
    ("class:10", "out of range"), ("classes:" + ",".join(map(str, range(10))), "at least one class to retain"),
    ("random:0%", "neither a share"), ("random:-3", "neither a share"), ("random:ten", "neither a share"),
    ("everything", "write class:K"), ("shuffle:3", "unknown forget-set kind"),
    ("indices:/nonexistent/file.txt", "does not exist"),
])
def test_bad_forget_sets_say_what_to_write(text, words):
    with pytest.raises(ValueError, match=words):
        parse_forget(text, DIGITS)


def test_index_text_is_validated_line_by_line(tmp_path):
    assert parse_index_text(b"5\n# a comment\n\n2\n7 # trailing\n") == (2, 5, 7)
    with pytest.raises(ValueError, match="line 2: '-1' is not a training index"):
        parse_index_text("3\n-1\n")
    with pytest.raises(ValueError, match="line 3: index 3 is listed twice"):
        parse_index_text("3\n4\n3\n")
    with pytest.raises(ValueError, match="not UTF-8"):
        parse_index_text(b"\xff\xfe3\n")
    with pytest.raises(ValueError, match="lists no index"):
        parse_index_text("# nothing\n")
    path = tmp_path / "forget.txt"
    path.write_text("\n".join(str(i) for i in (10, 20, 30, 40)))
    s = Scenario("digits", forget=f"indices:{path}")
    assert s.forget_indices.tolist() == [10, 20, 30, 40] and not s.by_class and s.forget_class is None
    assert s.forget_set.text.startswith("indices:") and s.key.startswith("digits-i")
    path.write_text("1\n2\n3\n99999\n")
    with pytest.raises(ValueError, match="lists index 99999, but the training split has 1347"):
        Scenario("digits", forget=f"indices:{path}").forget_indices  # noqa: B018


def test_random_forget_set_is_drawn_by_the_data_seed_only():
    s = Scenario("digits", forget="random:10%")
    assert s.forget_indices.size == round(0.1 * 1347) == 135
    assert np.array_equal(s.forget_indices, Scenario("digits", None, 4, "random:10%").forget_indices)  # training seed
    other = Scenario("digits", forget="random:10%", data_seed=1)
    assert not np.array_equal(s.forget_indices, other.forget_indices)
    assert s.retain_indices.size == 1347 - 135 and not np.isin(s.retain_indices, s.forget_indices).any()
    assert s.test_forget_indices.size == 0 and s.test_retain_indices.size == len(s.data.test)
    assert s.cka_indices["test_forget"].size == 0 and np.isin(s.cka_indices["train_forget"], s.forget_indices).all()
    assert s.key == "digits-r10p-s0" and other.key == "digits-r10p-s0-d1"
    assert Scenario("digits", forget="random:100").forget_indices.size == 100
    with pytest.raises(ValueError, match="between 4 and 1343"):  # 4 to forget, 4 to retain (CKA)
        Scenario("digits", forget="random:5000").forget_indices  # noqa: B018


def test_accuracies_of_a_random_set_are_over_images():
    # train images 0..5 with labels; forget images are train indices 1 and 4.
    train = make_eval([0, 0, 1, 1, 2, 2], one_hot_logits([0, 1, 1, 0, 2, 2]))
    test = make_eval([0, 1, 2, 2], one_hot_logits([0, 1, 0, 2]), "test")

    class Images:  # a scenario whose forget set is images (what accuracy_metrics reads of it)
        forget_set, by_class, forget_indices = object(), False, np.array([1, 4])

    m = accuracy_metrics(train, test, Images())
    assert m["UA"] == pytest.approx(0.5)  # index 1 wrong (0 -> 1), index 4 right
    assert m["RA"] == pytest.approx(3 / 4)  # retain indices 0, 2, 3, 5: only 3 is wrong
    assert m["TUA"] is None and m["TRA"] == pytest.approx(3 / 4)


def test_several_forget_classes_average_their_accuracies():
    train = make_eval([0, 0, 1, 1, 2, 2], one_hot_logits([0, 1, 1, 1, 0, 0]))
    test = make_eval([0, 1, 2], one_hot_logits([0, 0, 2]), "test")
    m = accuracy_metrics(train, test, [0, 2])
    assert m["UA"] == pytest.approx((0.5 + 0.0) / 2) and m["RA"] == pytest.approx(1.0)
    assert m["TUA"] == pytest.approx(1.0) and m["TRA"] == pytest.approx(0.0)


def test_seed_lists():
    assert parse_seeds("0-4") == [0, 1, 2, 3, 4]
    assert parse_seeds("3, 0-1, 3") == [3, 0, 1]
    for bad, words in (("4-2", "backwards"), ("a", "not a seed"), ("", "no seed"), ("0-5000", "more than")):
        with pytest.raises(ValueError, match=words):
            parse_seeds(bad)


def test_group_id_ignores_only_the_seeds():
    config = {"dataset": "digits", "forget": "class:3", "method": "ga", "epochs": 5, "params": {"a": 1},
              "seed": 0, "train_seed": 0, "data_seed": 0}
    assert group_id(config) == group_id({**config, "seed": 7, "train_seed": 2})
    assert group_id(config) == group_id(dict(reversed(list(config.items()))))
    assert group_id(config) != group_id({**config, "data_seed": 1})
    assert group_id(config) != group_id({**config, "params": {"a": 2}})


def test_t_interval_matches_scipy_and_handles_small_n():
    values = [0.1, 0.3, 0.2, 0.25, 0.15]
    entry = t_interval(values)
    low, high = stats.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=stats.sem(values))
    assert entry["n"] == 5 and entry["low"] == pytest.approx(low) and entry["high"] == pytest.approx(high)
    assert t_interval([0.4, None])["low"] is None and t_interval([0.4])["mean"] == 0.4
    assert t_interval([])["n"] == 0
    assert resolved({"low": 0, "high": 1}, {"low": 2, "high": 3}) is True
    assert resolved({"low": 0, "high": 2.5}, {"low": 2, "high": 3}) is False
    assert resolved({"low": None, "high": None}, {"low": 2, "high": 3}) is None


def _member(gid, method, ua, train_seed, seed, **config):
    return {"id": f"{method}{train_seed}{seed}", "kind": "unlearned", "group": gid,
            "config": {"dataset": "digits", "forget": "class:3", "data_seed": 0, "arch": "digits_cnn",
                       "method": method, "train_seed": train_seed, "seed": seed, **config},
            "metrics": {"UA": ua, "RA": 0.9}}


def test_group_summaries_gap_to_the_retrained_of_each_training_seed_and_ranks():
    retrained = [{"id": f"r{t}", "kind": "retrained", "group": None, "metrics": {"UA": 0.1 * t, "RA": 1.0},
                  "config": {"dataset": "digits", "forget": "class:3", "data_seed": 0, "arch": "digits_cnn",
                             "method": "retrained", "train_seed": t, "seed": t}} for t in (0, 1)]
    ga = [_member("g-aaaaaaaaaa", "ga", ua, t, s) for ua, t, s in ((0.2, 0, 0), (0.4, 0, 1), (0.3, 1, 0))]
    ft = [_member("g-bbbbbbbbbb", "ft", ua, t, s) for ua, t, s in ((0.5, 0, 0), (0.1, 0, 1), (0.6, 1, 0))]
    summaries = group_summaries(retrained + ga + ft)
    assert [g["group"] for g in summaries] == ["g-aaaaaaaaaa", "g-bbbbbbbbbb"] and summaries[0]["n"] == 3
    ua = summaries[0]["metrics"]["UA"]
    assert ua["mean"] == pytest.approx(0.3)
    assert ua["gap"]["mean"] == pytest.approx(np.mean([0.2 - 0.0, 0.4 - 0.0, 0.3 - 0.1]))
    assert summaries[0]["train_seeds"] == [0, 1] and summaries[0]["seeds"] == [0, 1]
    assert group_summaries(retrained + ga + ft, method="ft")[0]["group"] == "g-bbbbbbbbbb"
    ranks = rank_stability({"ga": ga, "ft": ft}, "UA")  # lower UA ranks first
    assert ranks["ga"]["ranks"] == [1, 2, 1] and ranks["ft"]["first"] == pytest.approx(1 / 3)
    assert summarize(ga, metrics=("UA", "PS")).keys() == {"UA"}  # a metric nobody has is left out


def test_for_forgotten_images_groups_rank_and_compare_by_the_gap_to_the_retrained_model():
    from mucomp.ui import variance

    def member(group, method, ua, seed):
        entry = _member(group, method, ua, 0, seed)
        entry["config"]["forget"] = "random:10%"
        return entry

    retrained = {"id": "r0", "kind": "retrained", "group": None, "metrics": {"UA": 0.95, "RA": 1.0},
                 "config": {"dataset": "digits", "forget": "random:10%", "data_seed": 0, "arch": "digits_cnn",
                            "method": "retrained", "train_seed": 0, "seed": 0}}
    # GA forgets far too much (UA 0.2 against the Retrained model's 0.95); FT stays close to it.
    ga = [member("g-aaaaaaaaaa", "ga", ua, s) for s, ua in enumerate((0.20, 0.25, 0.22))]
    ft = [member("g-bbbbbbbbbb", "ft", ua, s) for s, ua in enumerate((0.97, 0.93, 0.99))]
    entries = [retrained, *ga, *ft]
    ranks = rank_stability({"ga": ga, "ft": ft}, "UA", forget="random:10%", retrained=retrained_by_train_seed(entries, "UA"))
    assert ranks["ft"]["ranks"] == [1, 1, 1] and ranks["ga"]["first"] == 0
    assert rank_stability({"ga": ga, "ft": ft}, "UA")["ga"]["ranks"] == [1, 1, 1]  # a class set: lower UA wins
    frame = variance.group_frame(group_summaries(entries), "UA").set_index("Method")
    assert frame.loc["ft", "vs best"] == "best" and frame.loc["ga", "vs best"] == "resolved"


def test_sweep_grid_places_group_means():
    summaries = [{"config": {"epochs": e, "lr": lr}, "metrics": {"UA": {"mean": e * lr, "n": 2}}}
                 for e in (1, 3) for lr in (0.1, 0.01)]
    grid = sweep_grid(summaries, "epochs", "lr", "UA")
    assert grid["x"] == [1, 3] and grid["y"] == [0.01, 0.1]
    assert grid["z"] == [[pytest.approx(0.01), pytest.approx(0.03)], [pytest.approx(0.1), pytest.approx(0.3)]]
    assert grid["n"] == [[2, 2], [2, 2]]


def test_version_2_results_keep_their_seed_as_every_seed():
    old = {"schema_version": 2, "id": "abcd1234", "kind": "unlearned", "created_at": "2025-01-01T00:00:00+00:00",
           "config": {"dataset": "digits", "forget_class": 3, "seed": 5, "method": "ga", "base": "original",
                      "epochs": 2, "lr": 0.1, "batch_size": 32, "params": {}},
           "metrics": {"UA": 0.1, "RA": 0.9, "TRA": 0.9}}
    upgraded = check_result(old)
    config = upgraded["config"]
    assert upgraded["schema_version"] == 4 and config["forget"] == "class:3"
    assert (config["unlearn_seed"], config["train_seed"], config["data_seed"]) == (5, 5, 5)
    assert config["arch"] == "digits_cnn" and upgraded["group"] == group_id(config)
    assert Scenario.from_config(config) == Scenario("digits", 3, 5, data_seed=5)
    with pytest.raises(ValueError, match="contradicts"):
        check_result({**upgraded, "config": {**config, "forget": "class:4"}})


def _cli(capsys, *args) -> tuple[int, str, str]:
    from mucomp.cli import main

    capsys.readouterr()
    try:
        code = main(list(args))
    except SystemExit as exit_:
        code = exit_.code
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_replicates_form_one_group_and_summary_gives_their_t_interval(digits_references, capsys):
    # In this process (--workers 0): that replicates run in a worker by default is
    # tests/test_cli_grid_worker.py's subject; this test is about the group they form.
    code, out, err = _cli(capsys, "run", "--forget-class", "3", "--method", "ga", "--seeds", "0-2", "--workers", "0",
                          "--json", "--quiet")
    assert code == 0, err
    results = json.loads(out)
    assert len(results) == 3 and sorted(r["config"]["unlearn_seed"] for r in results) == [0, 1, 2]
    assert {r["config"]["train_seed"] for r in results} == {0} and len({r["group"] for r in results}) == 1
    assert len({r["attack"]["entropy"][0] for r in results}) == 3  # each seed runs differently
    group = results[0]["group"]
    code, out, err = _cli(capsys, "summary", "--group", group, "--json")
    assert code == 0, err
    summary = json.loads(out)
    varying = [m for m in ("UA", "RA", "TRA", "PS_exact", "MIA_efficacy") if len({r["metrics"][m] for r in results}) > 1]
    assert varying
    for metric in varying:
        values = [r["metrics"][metric] for r in results]
        low, high = stats.t.interval(0.95, 2, loc=np.mean(values), scale=stats.sem(values))
        assert summary["metrics"][metric]["n"] == 3
        assert summary["metrics"][metric]["mean"] == pytest.approx(np.mean(values))
        assert summary["metrics"][metric]["low"] == pytest.approx(low)
        assert summary["metrics"][metric]["high"] == pytest.approx(high)
    assert "gap" in summary["metrics"]["UA"]  # to the stored Retrained of training seed 0
    code, out, _ = _cli(capsys, "summary", "--method", "ga")
    assert code == 0 and group in out and "±" in out
    code, _, err = _cli(capsys, "summary", "--group", "g-0000000000")
    assert code == 2 and "no stored experiment belongs to group" in err
    code, _, err = _cli(capsys, "run", "--forget-class", "3", "--forget", "class:3", "--method", "ga")
    assert code == 2 and "not both" in err
    code, _, err = _cli(capsys, "run", "--method", "ga")
    assert code == 2 and "say what to forget" in err
    code, _, err = _cli(capsys, "run", "--forget", "random:200%", "--method", "ga")
    assert code == 2 and "neither a share" in err


def test_cli_two_forgotten_classes_the_retrained_reference_forgets_both(digits_references, capsys):
    # A one-epoch GA run prepares the scenario's references (its Retrained model is what the
    # retrain method would train again: test_methods checks that the two are the same).
    code, out, err = _cli(capsys, "run", "--forget", "classes:3,5", "--method", "ga", "--epochs", "1",
                          "--json", "--quiet")
    assert code == 0, err
    result = json.loads(out)
    assert result["config"]["forget"] == "classes:3,5" and result["config"]["forget_class"] is None
    assert len(result["attack"]["indices"]) == int(np.isin(Scenario("digits", 3).data.train.labels_np, [3, 5]).sum())
    from mucomp.store import ExperimentStore

    store = ExperimentStore()
    entries = store.entries(dataset="digits", forget="classes:3,5", train_seed=0)
    retrained = store.load(next(e["id"] for e in entries if e["kind"] == "retrained")).result["metrics"]
    assert retrained["accs"][3] == 0.0 and retrained["accs"][5] == 0.0 and retrained["UA"] == 0.0
    assert retrained["RA"] > 0.9
    # Every page renders the two-class scenario, with both classes marked.
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    root = Path(__file__).resolve().parents[1]
    original = next(e["id"] for e in entries if e["kind"] == "original")
    at = AppTest.from_file(str(root / "Home.py"), default_timeout=120)
    at.query_params.update({"dataset": "digits", "forget": "classes:3,5", "seed": "0", "a": result["id"], "b": original})
    at.run()
    for page in ("pages/1_Build.py", "pages/2_Screen.py", "pages/3_Contrast.py", "pages/4_Attack.py"):
        at.switch_page(page).run()
        assert not at.exception, (page, [e.value for e in at.exception])
    at.switch_page("pages/3_Contrast.py").run()
    figure = json.loads(next(c for c in at.get("plotly_chart") if c.key == "contrast_accuracy").proto.spec)
    assert figure["layout"]["meta"]["forget_class"] == [3, 5]
    assert sum(shape.get("name") == "forget_class" for shape in figure["layout"]["shapes"]) == 2


def test_the_retrained_model_of_a_random_forget_set_treats_it_as_unseen(digits_references):
    """random:10% of digits holds round(0.1 x 1,347) training images, and the Retrained model
    (trained without them) is about as accurate on them as on the test set: within 0.05."""
    from mucomp.evaluation import evaluate_scenario
    from mucomp.metrics import accuracy_metrics
    from mucomp.references import load_reference

    scenario = Scenario("digits", forget="random:10%")
    assert scenario.forget_indices.size == round(0.1 * scenario.data.train.labels_np.size) == 135
    retrained = load_reference(scenario, "retrained")
    evals = evaluate_scenario(retrained.model, scenario, layers=())
    metrics = accuracy_metrics(evals["train"], evals["test"], scenario)
    assert metrics["TUA"] is None and metrics["TRA"] > 0.9  # TRA is the accuracy over the whole test set
    assert abs(metrics["UA"] - metrics["TRA"]) <= 0.05, metrics


def test_twin_embedding_marks_the_images_of_a_random_forget_set():
    from mucomp.compare import twin_embedding
    from tests.test_adversarial import full_result

    config = {**full_result()["config"], "forget_class": None, "forget": "random:10%", "train_seed": 0, "data_seed": 0}
    result = {**full_result(id="rand0001"), "config": config}
    result["embedding"] = {**result["embedding"], "indices": [3, 4, 13], "x": [0.0, 1.0, 2.0], "y": [1.0, 0.0, 2.0],
                           "pred": [0, 1, 2], "probs_t2": [[0.1] * 10] * 3}
    points = twin_embedding(result, result, labels=np.arange(20) % 10)
    assert points.set_index("index")["is_forget"].to_dict() == {3: True, 4: False, 13: True}  # attack.indices


def test_random_and_index_forget_sets_on_cifar10_take_the_published_random_forgetting_defaults():
    from mucomp.methods import get_method
    from mucomp.methods.registry import register

    for method, expected in {"ft": {"epochs": 10, "lr": 0.01}, "ga": {"epochs": 5, "lr": 1e-4},
                             "salun": {"epochs": 10, "lr": 0.013, "mask_ratio": 0.5}}.items():
        info = get_method(method)
        classwise = info.resolve("cifar10", {})
        for kind in ("random", "indices"):
            values = info.resolve("cifar10", {}, None, kind)
            assert {k: values[k] for k in expected} == expected, (method, kind)
            assert values["batch_size"] == classwise["batch_size"]  # only epochs / lr differ
            assert "Unlearn-" in info.sources_for("cifar10", None, kind)["lr"]
        assert info.resolve("cifar10", {}, None, "classes") == classwise
        # The ViT recipe overrides the ResNet random-forgetting one; digits has none of its own.
        assert info.resolve("cifar10", {}, "vit_b16_cifar", "random") == info.resolve("cifar10", {}, "vit_b16_cifar")
        assert info.resolve_for(Scenario("digits", forget="random:10%")) == info.resolve("digits", {})
    assert get_method("ga").resolve("cifar10", {"lr": 0.5}, None, "random")["lr"] == 0.5  # the user's value wins
    with pytest.raises(ValueError, match="unknown data set 'mnist:random'"):
        register("bad_random_key", defaults={"mnist:random": {"epochs": 1}})(lambda ctx: None)
