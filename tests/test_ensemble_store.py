"""The typed store of ensemble results (mucomp.store.ensembles): keys, round trip, atomic writes,
and hostile files refused with the file and the reason while the listing goes on."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from mucomp.store import ensembles as es
from mucomp.store.ensembles import (
    ENSEMBLE_FORMAT,
    EnsembleFileError,
    EnsembleResult,
    ensemble_key,
    ensemble_result_for,
    load_ensemble_results,
    retrained_ensemble_key,
    retrained_result_for,
    save_ensemble_result,
)

CONFIG = {"dataset": "digits", "forget_class": 3, "unlearn_seed": 0, "method": "ga", "base": "original",
          "epochs": 12, "lr": 0.05, "batch_size": 32, "params": {"clip_grad_norm": 0.025}, "forget": "class:3",
          "train_seed": 0, "data_seed": 0, "arch": "digits_cnn"}
RETRAINED_CONFIG = {**CONFIG, "method": "retrained", "epochs": None, "lr": None, "batch_size": None, "params": {}}


def ensemble_record(config: dict = CONFIG, *, kind: str = "unlearned", n_models: int = 4, n_forget: int = 6,
                    seed: int = 0, shift: float = 1.0) -> dict:
    """A valid record of synthetic numbers: confidences drawn for ``n_models`` unlearned and as many
    Retrained models (the unlearned ones ``shift`` higher), the per-example figures derived from them
    with plain numpy (ranks and bucket points the way the challenge assigns them)."""
    rng = np.random.default_rng(seed)
    retrained = rng.normal(0.0, 1.0, (n_models, n_forget))
    unlearned = retrained + shift if kind == "unlearned" else retrained
    gap = np.abs(unlearned.mean(0) - retrained.mean(0))
    max_eps = float(math.ceil(math.log(n_models - 1))) if n_models > 2 else 0.5
    epsilons = np.clip(gap * 2.0, 0.0, 50.0)
    buckets = int(max_eps / 0.5)
    points = np.where(epsilons >= max_eps, 0.0, 2.0 ** -np.floor(epsilons / 0.5))
    klom = np.abs(unlearned - retrained).mean(0)
    unlearned_kind = kind == "unlearned"
    key = ensemble_key(config) if unlearned_kind else retrained_ensemble_key(config)
    from mucomp.groups import group_id

    return {
        "format": ENSEMBLE_FORMAT, "key": key, "kind": kind, "config": dict(config), "group": group_id(config),
        "train_seed": int(config.get("train_seed", 0)), "method": config["method"] if unlearned_kind else "retrained",
        "n_models": n_models, "n_retrained": n_models, "unlearn_seeds": list(range(n_models)),
        "retrained_seeds": list(range(100, 100 + n_models)), "forget_indices": list(range(10, 10 + n_forget)),
        "forget_quality": float(points.mean()) if unlearned_kind else None,
        "score": float(points.mean()) * 0.95 if unlearned_kind else None,
        "accuracies": {"unlearned_retain": 0.95, "retrained_retain": 0.97, "unlearned_test": 0.93,
                       "retrained_test": 0.95},
        "klom_p95": {"forget": float(np.percentile(klom, 95)), "retain": 0.1, "test": 0.2},
        "epsilons": epsilons.tolist(), "points": points.tolist(),
        "klom": {"forget": klom.tolist(), "retain": [0.0, 0.1], "test": [0.2]},
        "confidences": {"unlearned": unlearned.tolist(), "retrained": retrained.tolist()},
        "resolution": {"max_epsilon": max_eps, "buckets": buckets},
        "self_score": 0.8 if not unlearned_kind else None,
        "member_seconds": [0.5] * n_models, "seconds": 3.0 + n_models,
        "created": "2026-01-02T03:04:05+00:00", "mucomp_version": "0.1.0",
    }


def test_keys_follow_the_one_rule():
    key = ensemble_key(CONFIG)
    from mucomp.groups import group_id

    assert key == f"{group_id(CONFIG)}-s0"
    assert ensemble_key({**CONFIG, "unlearn_seed": 7}) == key  # members differ by unlearning seed
    assert ensemble_key({**CONFIG, "train_seed": 1}) != key  # another Original
    assert ensemble_key({**CONFIG, "lr": 0.01}) != key  # another configuration
    retrained = retrained_ensemble_key(CONFIG)
    assert retrained.startswith("retrained-")
    # The scenario alone: the method, its hyper-parameters and the Original's seed do not matter,
    # the forget set and the data seed do; the short and the canonical forms agree.
    assert retrained_ensemble_key(RETRAINED_CONFIG) == retrained
    assert retrained_ensemble_key({**CONFIG, "train_seed": 3}) == retrained
    assert retrained_ensemble_key({"dataset": "digits", "forget_class": 3}) == retrained
    assert retrained_ensemble_key({**CONFIG, "forget": "class:4", "forget_class": 4}) != retrained
    assert retrained_ensemble_key({**CONFIG, "data_seed": 1}) != retrained


def test_round_trip_and_lookup(tmp_path):
    unlearned, retrained = ensemble_record(), ensemble_record(RETRAINED_CONFIG, kind="retrained")
    path = save_ensemble_result(unlearned, home=tmp_path)
    assert path == tmp_path / "ensembles" / "results" / f"{ensemble_key(CONFIG)}.json"
    save_ensemble_result(EnsembleResult.model_validate(retrained), home=tmp_path)
    records, problems = load_ensemble_results(tmp_path)
    assert problems == [] and len(records) == 2
    found = ensemble_result_for({**CONFIG, "unlearn_seed": 3}, records)
    assert found is not None and found.to_json_dict() == unlearned
    assert retrained_result_for(CONFIG, records).to_json_dict() == retrained
    assert ensemble_result_for({**CONFIG, "lr": 0.2}, records) is None
    assert retrained_result_for({**CONFIG, "forget": "class:5", "forget_class": 5}, records) is None


def test_default_home_is_mucomp_home(tmp_path, monkeypatch):
    monkeypatch.setenv("MUCOMP_HOME", str(tmp_path))
    path = save_ensemble_result(ensemble_record())
    assert path.parent == tmp_path / "ensembles" / "results"
    assert len(load_ensemble_results()[0]) == 1


def test_a_larger_ensemble_replaces_the_record(tmp_path):
    save_ensemble_result(ensemble_record(n_models=4), home=tmp_path)
    save_ensemble_result(ensemble_record(n_models=8), home=tmp_path)
    records, _ = load_ensemble_results(tmp_path)
    assert [r.n_models for r in records] == [8]


def test_write_is_atomic(tmp_path, monkeypatch):
    first = save_ensemble_result(ensemble_record(n_models=4), home=tmp_path)
    before = first.read_bytes()

    def killed(src, dst):
        raise OSError("killed mid-rename")

    monkeypatch.setattr(es.os, "replace", killed)
    with pytest.raises(OSError):
        save_ensemble_result(ensemble_record(n_models=8), home=tmp_path)
    assert first.read_bytes() == before  # the old record, whole
    assert sorted(p.name for p in first.parent.iterdir()) == [first.name]  # no temporary left


def test_invalid_record_is_refused_on_save(tmp_path):
    bad = ensemble_record()
    bad["epsilons"] = bad["epsilons"][:-1]
    with pytest.raises(EnsembleFileError, match="epsilons has 5 entries"):
        save_ensemble_result(bad, home=tmp_path)
    assert not (tmp_path / "ensembles" / "results").exists() or not any((tmp_path / "ensembles" / "results").iterdir())


def _hostile(record: dict, change) -> dict:
    record = json.loads(json.dumps(record))
    change(record)
    return record


HOSTILE = {
    "string_for_a_number": (lambda r: r.update(forget_quality="0.5"), "forget_quality"),
    "bool_for_an_int": (lambda r: r.update(n_models=True), "n_models"),
    "lengths_disagree": (lambda r: r["points"].append(0.5), "points has 7 entries"),
    "confidence_rows_disagree": (lambda r: r["confidences"]["unlearned"].pop(), "confidences.unlearned has 3 rows"),
    "short_confidence_row": (lambda r: r["confidences"]["retrained"][0].pop(), "a row of confidences.retrained"),
    "seeds_disagree": (lambda r: r["unlearn_seeds"].pop(), "unlearn_seeds has 3 entries"),
    "fraction_out_of_range": (lambda r: r.update(forget_quality=1.5), "forget_quality"),
    "epsilon_out_of_range": (lambda r: r["epsilons"].__setitem__(0, -1.0), "epsilons"),
    "newer_format": (lambda r: r.update(format=ENSEMBLE_FORMAT + 1), "upgrade mucomp"),
    "key_of_another_config": (lambda r: r["config"].update(lr=0.5), "does not match"),
    "not_a_time": (lambda r: r.update(created="yesterday"), "created"),
    "missing_field": (lambda r: r.pop("klom"), "klom"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_record_files_are_refused_with_the_reason(tmp_path, name):
    change, reason = HOSTILE[name]
    save_ensemble_result(ensemble_record(RETRAINED_CONFIG, kind="retrained"), home=tmp_path)
    record = _hostile(ensemble_record(), change)
    folder = tmp_path / "ensembles" / "results"
    path = folder / f"{ensemble_key(CONFIG)}.json"
    path.write_text(json.dumps(record))
    records, problems = load_ensemble_results(tmp_path)
    assert [r.kind for r in records] == ["retrained"]  # the good record is still listed
    assert len(problems) == 1 and str(path) in problems[0] and reason in problems[0], problems


@pytest.mark.parametrize("content,reason", [
    (b'{"format": NaN}', "NaN is not a JSON number"),
    (b"[1, 2, 3]", "not a JSON object"),
    (b"{not json", "not valid JSON"),
    (b"{\"a\": \"\xff\"}", "not UTF-8"),
    (b"[" * 100_000 + b"]" * 100_000, "nested more than"),
])
def test_garbage_files_are_refused(tmp_path, content, reason):
    folder = tmp_path / "ensembles" / "results"
    folder.mkdir(parents=True)
    (folder / "g-0000000000-s0.json").write_bytes(content)
    records, problems = load_ensemble_results(tmp_path)
    assert records == [] and len(problems) == 1 and reason in problems[0], problems


def test_nan_in_a_list_is_refused(tmp_path):
    record = ensemble_record()
    text = json.dumps(record).replace(json.dumps(record["epsilons"][0]), "NaN", 1)
    folder = tmp_path / "ensembles" / "results"
    folder.mkdir(parents=True)
    (folder / f"{record['key']}.json").write_text(text)
    _, problems = load_ensemble_results(tmp_path)
    assert len(problems) == 1 and "NaN" in problems[0]
    record["klom_p95"]["forget"] = float("nan")
    with pytest.raises(EnsembleFileError, match="klom_p95"):
        save_ensemble_result(record, home=tmp_path)


def test_oversize_and_odd_files(tmp_path, monkeypatch):
    monkeypatch.setattr(es, "MAX_ENSEMBLE_BYTES", 1000)
    folder = tmp_path / "ensembles" / "results"
    folder.mkdir(parents=True)
    (folder / "g-0000000000-s0.json").write_text(" " * 2000 + "{}")
    (folder / "g-0000000000-s1.json").mkdir()  # a folder with a record's name
    (folder / ".tmp-g-0000000000-s2-1-ab.json").write_text("{")  # a writer's temporary: not listed
    (folder / "notes.txt").write_text("not a record")  # not listed either
    records, problems = load_ensemble_results(tmp_path)
    assert records == []
    assert len(problems) == 2
    assert any("larger than" in p and "s0.json" in p for p in problems)
    assert any("not a regular file" in p and "s1.json" in p for p in problems)
    with pytest.raises(EnsembleFileError, match="larger than"):
        save_ensemble_result(ensemble_record(), home=tmp_path)


def test_renamed_file_is_refused(tmp_path):
    path = save_ensemble_result(ensemble_record(), home=tmp_path)
    path.rename(path.with_name("g-0123456789-s0.json"))
    records, problems = load_ensemble_results(tmp_path)
    assert records == [] and "renamed" in problems[0]


def test_unlistable_folder_is_reported(tmp_path):
    (tmp_path / "ensembles").mkdir()
    (tmp_path / "ensembles" / "results").write_text("a file where the folder should be")
    records, problems = load_ensemble_results(tmp_path)
    assert records == [] and len(problems) == 1 and "can't be listed" in problems[0]
    assert load_ensemble_results(tmp_path / "nowhere") == ([], [])


def test_unreadable_file_is_reported(tmp_path, monkeypatch):
    path = save_ensemble_result(ensemble_record(), home=tmp_path)

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(es, "open", denied, raising=False)  # the module's reads only (root reads any file)
    records, problems = load_ensemble_results(tmp_path)
    assert records == [] and str(path) in problems[0] and "Permission denied" in problems[0]


def test_a_changed_file_is_read_again(tmp_path):
    path = save_ensemble_result(ensemble_record(n_models=4), home=tmp_path)
    assert load_ensemble_results(tmp_path)[0][0].n_models == 4
    path.write_text("{")
    assert load_ensemble_results(tmp_path)[0] == []


def test_reading_imports_no_torch():
    import subprocess
    import sys

    code = ("import sys; from mucomp.store.ensembles import load_ensemble_results; load_ensemble_results(); "
            "assert 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[1])
