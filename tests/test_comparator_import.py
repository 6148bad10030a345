"""Importing the published comparator's experiment files (issue 33, first half).

The two files in tests/data/comparator_cifar10_class3 (the comparator demo's Original and Retrained
of class 3, unchanged) plus an unlearned file made from the Original (same values, Type, Method and
settings of a FineTuning run), imported once into a private store; hostile variants are written by
the tests. No model is trained and no data set is read."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from mucomp import privacy
from mucomp.cli import main as cli_main
from mucomp.results import attack_view
from mucomp.results.imported import attack_reference_id, without_weights
from mucomp.sharing.comparator import (
    ComparatorImportError,
    experiment_id,
    import_comparator,
    method_of,
    read_source,
)
from mucomp.sharing.comparator_schema import MAX_FILE_BYTES
from mucomp.store import ExperimentExistsError, ExperimentStore
from tests.helpers import clear_app_caches, fresh_app_home

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).parent / "data" / "comparator_cifar10_class3"
ORIGINAL, RETRAINED = DATA / "original_0003.json", DATA / "retrained_a003.json"
#: A FineTuning run as the backend writes one (its figures: the Original's, so its curves hold).
UNLEARNED = {"ID": "0e42", "Type": "Unlearned", "Base": "0003", "Method": "FineTuning", "Epoch": 10, "BS": 128,
             "LR": 0.01, "RTE": 138.3, "FQS": 0.578, "CreatedAt": "2025-08-16 22:20:16"}


@pytest.fixture(scope="module")
def original() -> dict:
    return json.loads(ORIGINAL.read_text())


@pytest.fixture(scope="module")
def imported(tmp_path_factory, original):
    """A folder ``3/{id}.json`` of the three files, imported into a private MUCOMP_HOME."""
    base = tmp_path_factory.mktemp("comparator")
    folder = base / "files" / "3"
    folder.mkdir(parents=True)
    (folder / "0003.json").write_bytes(ORIGINAL.read_bytes())
    (folder / "a003.json").write_bytes(RETRAINED.read_bytes())
    (folder / "0e42.json").write_text(json.dumps({**original, **UNLEARNED}))
    home = base / "home"
    store = ExperimentStore(home / "experiments")
    done = import_comparator(store, base / "files")
    return {"home": home, "store": store, "done": done, "folder": folder,
            "files": {experiment_id(3, i): json.loads((folder / f"{i}.json").read_text()) for i in ("0003", "a003", "0e42")}}


def test_each_file_becomes_a_published_comparator_experiment_of_the_hub_scenario(imported):
    done, store = imported["done"], imported["store"]
    assert sorted(done.imported) == ["cmp3-0003", "cmp3-0e42", "cmp3-a003"] and done.notes == []
    assert done.scenarios == {"class:3"}
    for experiment_id_, file in imported["files"].items():
        result = store.load(experiment_id_).result
        config, metrics = result["config"], result["metrics"]
        assert result["kind"] == "comparator" and not store.has_weights(experiment_id_)
        assert (config["dataset"], config["forget"], config["train_seed"], config["arch"]) == (
            "cifar10", "class:3", 0, "resnet18_cifar")
        assert config["comparator_type"] == file["Type"] and result["comparator"]["sha256"]
        for key in ("UA", "RA", "TUA", "TRA"):  # the file's figures, exactly
            assert metrics[key] == file[key], (experiment_id_, key)
        assert metrics["accs"] == file["accs"] and metrics["t_accs"] == file["t_accs"]
        assert metrics["t_conf_dist"][5] == file["t_conf_dist"]["gt_5"]
        assert metrics["PS_published"] == (None if file["FQS"] == "N/A" else file["FQS"])
        assert metrics["RT"] == (None if file["RTE"] == "N/A" else file["RTE"])
        assert len(result["embedding"]["indices"]) == len(file["points"]) == 2000
        cka = file["cka"]["train"]["forget_class"]
        assert list(result["cka"]["original"]["train_forget"].values()) == [cka[k][k] for k in range(10)]
    unlearned = store.load("cmp3-0e42").result
    assert unlearned["config"]["method"] == "ft" and unlearned["config"]["base"] == "original"
    assert (unlearned["config"]["epochs"], unlearned["config"]["batch_size"], unlearned["config"]["lr"]) == (10, 128, 0.01)
    assert unlearned["method_label"] == "FineTuning (comparator)"


def test_methods_map_to_mucomps_where_the_algorithm_is_the_same(original):
    from mucomp.sharing.comparator_schema import ComparatorFile

    file = ComparatorFile.model_validate({**original, **UNLEARNED})
    for name, key in (("GradientAscent", "ga"), ("RandomLabeling", "rl"), ("SCRUB", "scrub"), ("SalUn", "salun_comparator"),
                      ("GA+FT", "comparator:GA+FT"), ("Custom", "comparator:Custom")):
        assert method_of(file.model_copy(update={"Method": name})) == (key, f"{name} (comparator)")


def test_the_sweep_on_the_stored_values_reproduces_the_stored_curves(imported):
    store = imported["store"]
    retrained = store.load("cmp3-a003").result["attack"]
    for experiment_id_, file in imported["files"].items():
        result = store.load(experiment_id_).result
        attack = result["attack"]
        assert attack["indices"] == retrained["indices"] == sorted(v["img"] for v in file["attack"]["values"])
        worst = 0.0
        for key, stored in file["attack"]["results"].items():
            metric, direction = key.split("_", 1)
            sweep = privacy.threshold_sweep(attack[metric], retrained[metric], metric)
            ours = sweep[sweep["direction"] == direction]
            for column in ("threshold", "fpr", "fnr", "attack_score"):
                assert np.round(ours[column].to_numpy(), 3).tolist() == [p[column] for p in stored], (key, column)
            worst = max(worst, ours["attack_score"].max())
        assert result["comparator"]["curves_reproduced"] is True
        assert math.isclose(result["metrics"]["PS"], 1.0 - worst)  # mucomp's PS on the matched 200 images
    assert store.load("cmp3-a003").result["metrics"]["PS"] == 1.0


def test_the_attack_view_pairs_an_import_with_the_comparators_retrained_model(imported):
    store = imported["store"]
    listing = store.light_results(dataset="cifar10", forget="class:3")
    model = store.load("cmp3-0e42").result
    assert attack_reference_id(model, listing) == "cmp3-a003"
    view = attack_view(model, store.load("cmp3-a003").result, "entropy", "worst_case")
    assert math.isclose(view.privacy_score, model["metrics"]["PS"])
    assert "without weights" in without_weights(model)


def _hostile(original: dict, case: str) -> bytes:
    if case == "nan":
        return json.dumps({**original, "UA": 0.5}).replace('"UA": 0.5', '"UA": NaN').encode()
    if case == "class_count":
        return json.dumps({**original, "accs": original["accs"][:9]}).encode()
    if case == "matrix_rows":
        rows = dict(original["label_dist"])
        rows.pop("gt_9")
        return json.dumps({**original, "label_dist": rows}).encode()
    if case == "string_number":
        return json.dumps({**original, "TRA": "0.961"}).encode()
    if case == "bool_class":
        return json.dumps({**original, "FC": True}).encode()
    if case == "truncated":
        return ORIGINAL.read_bytes()[:300_000]
    if case == "cka_shape":
        cka = json.loads(json.dumps(original["cka"]))
        cka["test"]["other_classes"] = cka["test"]["other_classes"][:9]
        return json.dumps({**original, "cka": cka}).encode()
    if case == "stray_attack_image":
        attack = {**original["attack"], "values": [*original["attack"]["values"][:199], {"img": 1, "entropy": 1.0,
                                                                                        "confidence": 0.5}]}
        return json.dumps({**original, "attack": attack}).encode()
    raise AssertionError(case)


HOSTILE = {"nan": "NaN is not a JSON number", "class_count": "accs", "matrix_rows": "label_dist",
           "string_number": "TRA", "bool_class": "FC", "truncated": "not valid JSON", "cka_shape": "10 x 10",
           "stray_attack_image": "not a point of the forget class"}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_hostile_file_is_refused_with_its_name_and_reason_and_nothing_changes(imported, original, tmp_path, case):
    store = imported["store"]
    before = {i: store.result_bytes(i) for i in store.ids()}
    folder = tmp_path / "3"
    folder.mkdir()
    (folder / "a003.json").write_bytes(RETRAINED.read_bytes())  # a good file beside it is not imported either
    (folder / "bad1.json").write_bytes(_hostile(original, case))
    with pytest.raises(ComparatorImportError) as refused:
        import_comparator(store, tmp_path, on_conflict="skip")
    assert len(refused.value.problems) == 1
    assert "3/bad1.json" in refused.value.problems[0] and HOSTILE[case] in refused.value.problems[0]
    assert {i: store.result_bytes(i) for i in store.ids()} == before


def test_an_oversized_file_is_refused_before_it_is_read(tmp_path):
    big = tmp_path / "huge.json"
    with open(big, "wb") as f:
        f.truncate(MAX_FILE_BYTES + 1)  # sparse: nothing is written, nothing may be read
    with pytest.raises(ValueError, match=r"huge\.json: larger than 16 MB"):
        read_source(big, "huge.json")


def test_importing_again_is_refused_or_skipped_never_overwritten(imported):
    store = imported["store"]
    with pytest.raises(ExperimentExistsError, match="cmp3-0003"):
        import_comparator(store, imported["folder"])
    done = import_comparator(store, imported["folder"], on_conflict="skip")
    assert done.imported == [] and sorted(done.skipped) == ["cmp3-0003", "cmp3-0e42", "cmp3-a003"]


def test_a_checkout_is_read_from_its_data_folders_once_per_experiment(imported, tmp_path):
    for sub in ("frontend/src/constants/data/3", "backend/data/3"):  # the backend holds the references again
        folder = tmp_path / sub
        folder.mkdir(parents=True)
        (folder / "0003.json").write_bytes(ORIGINAL.read_bytes())
        (folder / "a003.json").write_bytes(RETRAINED.read_bytes())
    (tmp_path / "package.json").write_text("{}")  # the repository's other JSON is not read
    done = import_comparator(imported["store"], tmp_path, on_conflict="skip")
    assert done.imported == [] and sorted(done.skipped) == ["cmp3-0003", "cmp3-a003"] and done.notes == []


def test_the_cli_imports_a_file_and_a_folder_and_names_a_bad_file(imported, original, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MUCOMP_HOME", str(tmp_path / "home"))
    single = tmp_path / "0e42.json"
    single.write_text(json.dumps({**original, **UNLEARNED}))
    assert cli_main(["import", str(single)]) == 0
    out = capsys.readouterr().out
    assert "imported 1 comparator experiment(s)" in out and "cmp3-0e42" in out and "a003.json" in out  # no Retrained: said
    assert cli_main(["import", str(imported["folder"])]) == 1  # 0e42 is stored already
    assert "cmp3-0e42" in capsys.readouterr().err
    assert cli_main(["import", "--skip-existing", str(imported["folder"])]) == 0
    assert "imported 2 comparator experiment(s)" in capsys.readouterr().out
    bad = tmp_path / "bad" / "3"
    bad.mkdir(parents=True)
    (bad / "f00d.json").write_bytes(_hostile(original, "nan"))
    assert cli_main(["import", str(bad.parent)]) == 1
    err = capsys.readouterr().err
    assert "3/f00d.json: not valid JSON (NaN is not a JSON number)" in err and "nothing was imported" in err
    assert cli_main(["list", "--dataset", "cifar10", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 3


def test_every_page_renders_the_imported_experiments(imported, monkeypatch):
    fresh_app_home(imported["home"], monkeypatch)
    at = AppTest.from_file(str(ROOT / "Home.py"), default_timeout=60)
    at.query_params.update({"dataset": "cifar10", "forget": "3", "seed": "0", "a": "cmp3-0003", "b": "cmp3-0e42"})
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    at.switch_page("pages/2_Screen.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert "Published (comparator)" in set(at.dataframe[0].value["Type"])
    assert any("imported from the published comparator" in c.value for c in at.caption)
    at.switch_page("pages/3_Contrast.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.warning, [w.value for w in at.warning]  # accuracy, matrices, embedding and CKA all drawn
    assert any("published comparator computes no class leakage" in i.value for i in at.info)
    at.switch_page("pages/4_Attack.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.warning, [w.value for w in at.warning]
    assert any("Images are not shown" in c.value for c in at.caption)  # no CIFAR-10 on disk: said
    assert any("without weights" in i.value for i in at.info)  # the audits can't re-run it: said
    clear_app_caches()
