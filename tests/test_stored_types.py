"""Every stored field typed and bounded (issue 30).

- the audit metrics and the ``audits`` blocks are typed: a wrong one is refused at import and, when
  planted on disk, listed as unreadable while every listing (the Screen table, ``mucomp list``,
  ``mucomp summary``) still works;
- sizes are bounded before anything is parsed, unknown fields are small, and the listing index
  carries only the fields it lists;
- a replicate group is derived from the config, never taken from a stored label;
- a read-only store still runs ``mucomp references`` and ``mucomp reproduce`` when everything is
  stored.
"""

from __future__ import annotations

import io
import json
import math
import os
import stat
import time
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest

from mucomp import catalogue, schema
from mucomp.cli import main as cli_main
from mucomp.groups import group_id, group_summaries
from mucomp.names import MAX_RESULT_BYTES
from mucomp.results.screen import experiment_table
from mucomp.store import ExperimentStore, StoreError, UnreadableExperimentError

C = 10
PLANTED_AT = "2025-01-31T12:00:00+00:00"


def config(method: str = "ga", **changes) -> dict:
    """A current-version digits config (class 3)."""
    return {"dataset": "digits", "forget": "class:3", "forget_class": 3, "unlearn_seed": 0, "train_seed": 0,
            "data_seed": 0, "arch": "digits_cnn", "method": method, "base": "original", "epochs": 2, "lr": 0.05,
            "batch_size": 32, "params": {}, **changes}


def result(**extra) -> dict:
    """A small valid unlearned result of the current schema (no id: the store makes one)."""
    out = {"kind": "unlearned", "method_label": "Gradient ascent (GA)", "config": config(),
           "metrics": {"UA": 0.5, "RA": 0.99, "TUA": 0.4, "TRA": 0.98, "RT": 0.1, "PS": 0.3, "leakage_js": 0.2,
                       "accs": [0.9] * C}}
    out.update(extra)
    return out


def weights(seed: int = 0) -> dict:
    from mucomp.models import seeded_model

    return seeded_model("digits_cnn", C, seed).state_dict()


def real_audits(n: int = 6) -> dict:
    """Audit blocks as mucomp's own producers make them (the pure functions behind each)."""
    from mucomp.audits import class_leakage
    from mucomp.audits.relearn import relearn_summary
    from mucomp.audits.ulira import ulira_report

    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(C), size=(2, n))
    leakage = class_leakage(probs[0], probs[1], np.full(n, 3))
    report = ulira_report(rng.normal(size=n), rng.normal(1, 1, (4, n)), rng.normal(-1, 1, (4, n)),
                          rng.normal(1, 1, (2, n)), rng.normal(-1, 1, (2, n)))
    ulira = {**{k: report[k] for k in ("accuracy", "accuracy_per_pair", "auc", "balanced_accuracy_best",
                                       "tpr_at_fpr", "estimator", "phi", "lr", "mu_unlearned", "sigma_unlearned",
                                       "mu_retrained", "sigma_retrained", "share_flagged")},
             "shadows": 4, "held_out": 2, "fit_seeds": [1, 2, 3, 4], "held_out_seeds": [5, 6], "seed_offset": 0,
             "mode": "method", "method": "ga", "spec_key": "0123456789abcdef", "indices": list(range(n)),
             "seconds": 1.5, "shadow_seconds": 1.0, "cached_pairs": 0, "computed_at": PLANTED_AT}
    curve = {"steps": [0, 2, 4], "forget_accuracy": [0.0, 0.25, 0.75]}
    curves = {who: {"forget": curve, "retain_only": curve} for who in ("model", "retrained")}
    relearn = {"steps": 4, "lr": 0.05, "batch_size": 32, "share": 0.05, "k": 1, "every": 2, "seed": 0,
               "relearn_indices": [3], "original_forget_accuracy": 0.9, "target": 0.45, "curves": curves,
               **relearn_summary(curves, 0.45, 4), "seconds": {"model": 0.1, "retrained": 0.1},
               "computed_at": PLANTED_AT}
    return {"leakage": leakage, "probes": {"conv1": 0.6, "fc": None}, "ulira": ulira, "relearn": relearn}


def export_bytes(store: ExperimentStore, experiment_id: str, edit=None) -> bytes:
    """An export zip of one experiment, its result.json passed through ``edit(dict) -> dict``."""
    buffer = io.BytesIO()
    store.export([experiment_id], buffer)
    return rewrite_result(buffer.getvalue(), edit) if edit else buffer.getvalue()


def rewrite_result(archive: bytes, edit) -> bytes:
    """The zip ``archive`` with every ``*/result.json`` replaced by ``edit(parsed)``."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(archive)) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            data = source.read(info)
            if info.filename.endswith("/result.json"):
                data = json.dumps(edit(json.loads(data))).encode()
            target.writestr(info.filename, data)
    return out.getvalue()


def plant(store: ExperimentStore, experiment_id: str, stored: dict) -> None:
    """Write a result.json straight into a new folder of ``store`` (what a hand edit or an older
    mucomp leaves), bypassing every check."""
    folder = store.root / experiment_id
    folder.mkdir()
    (folder / "result.json").write_text(json.dumps({"schema_version": schema.SCHEMA_VERSION, "id": experiment_id,
                                                    "created_at": PLANTED_AT, **stored}))


@pytest.fixture()
def store(tmp_path) -> ExperimentStore:
    return ExperimentStore(tmp_path / "experiments")


@pytest.fixture()
def home(tmp_path, monkeypatch) -> Path:
    """A private MUCOMP_HOME (what the CLI reads)."""
    monkeypatch.setenv("MUCOMP_HOME", str(tmp_path))
    return tmp_path


# --- 1. audit metrics and audit blocks are typed --------------------------------------------------------
BAD_NUMBERS = ["abc", [0.5], {"a": 1}, 1e308, True, -0.5]


def test_every_catalogue_metric_is_a_typed_field():
    fields = schema.Metrics.model_fields
    assert {m.key for m in catalogue.METRICS} <= set(fields)
    for metric in catalogue.METRICS:
        schema.check_result(stored_result(metrics={**result()["metrics"], metric.key: None}))  # null: not measured
        for bad in BAD_NUMBERS:
            with pytest.raises(schema.ResultSchemaError, match=f"metrics.{metric.key}"):
                schema.check_result(stored_result(metrics={**result()["metrics"], metric.key: bad}))


def test_unknown_metrics_must_be_bounded_numbers():
    for good in (0.5, 3, -2.0, None, 1e12):
        assert schema.check_result(stored_result(metrics={**result()["metrics"], "my_metric": good}))
    for bad in ("abc", [1.0], {"a": 1}, 1e308, True):
        with pytest.raises(schema.ResultSchemaError, match="my_metric"):
            schema.check_result(stored_result(metrics={**result()["metrics"], "my_metric": bad}))


def stored_result(**extra) -> dict:
    return {"schema_version": schema.SCHEMA_VERSION, "id": "abc123", "created_at": PLANTED_AT, **result(**extra)}


def test_the_audit_blocks_mucomp_writes_validate_and_wrong_shapes_do_not():
    audits = real_audits()
    assert schema.check_result(stored_result(audits=audits))["audits"] == audits
    wrong = {
        "ulira as a list": {**audits, "ulira": [0.5]},
        "ulira accuracy a string": {**audits, "ulira": {**audits["ulira"], "accuracy": "abc"}},
        "ulira without accuracy": {**audits, "ulira": {k: v for k, v in audits["ulira"].items() if k != "accuracy"}},
        "ulira auc null": {**audits, "ulira": {**audits["ulira"], "auc": None}},
        "ulira lists of unequal length": {**audits, "ulira": {**audits["ulira"], "lr": [0.0]}},
        "ulira lr strings": {**audits, "ulira": {**audits["ulira"], "lr": ["x"] * 6}},
        "ulira no seeds": {**audits, "ulira": {**audits["ulira"], "fit_seeds": []}},
        "relearn without steps_to_target": {**audits, "relearn": {k: v for k, v in audits["relearn"].items()
                                                                 if k != "steps_to_target"}},
        "relearn curve of unequal length": {**audits, "relearn": {**audits["relearn"], "curves": {
            "model": {"forget": {"steps": [0, 2], "forget_accuracy": [0.1]}}}}},
        "relearn relative infinite-ish": {**audits, "relearn": {**audits["relearn"], "relative": 1e308}},
        **{f"relearn curve steps {steps}": {**audits, "relearn": {**audits["relearn"], "curves": {
            "model": {"forget": {"steps": steps, "forget_accuracy": [0.5] * len(steps)}}}}}
           for steps in ([], [2, 0], [0, 0], [1, 2], [0, 2, 9])},  # empty, reversed, repeated, no start, past 4
        "relearn curve of another name": {**audits, "relearn": {**audits["relearn"], "curves": {
            "model": {"extra": {"steps": [0, 2], "forget_accuracy": [0.1, 0.2]}}}}},
        "relearn reached past its steps": {**audits, "relearn": {**audits["relearn"], "steps_to_target": {
            **audits["relearn"]["steps_to_target"], "model": 40}}},
        "leakage of 3 classes": {**audits, "leakage": {**audits["leakage"], "mean_probability": [0.5, 0.25, 0.25]}},
        "leakage js a dict": {**audits, "leakage": {**audits["leakage"], "js_mean": {"a": 1}}},
        "probes a string": {**audits, "probes": {"fc": "high"}},
        "audits a list": [audits["ulira"]],
    }
    for name, block in wrong.items():
        with pytest.raises(schema.ResultSchemaError, match="audits"):
            schema.check_result(stored_result(audits=block))
            pytest.fail(f"{name} was accepted")


def test_a_wrong_audit_metric_is_refused_at_import_and_by_a_bundle(store, tmp_path):
    from mucomp.sharing import read_bundle
    from mucomp.sharing.bundle import bundle_bytes

    saved = store.save(result(), weights())
    other = ExperimentStore(tmp_path / "other")
    for bad in ("abc", [0.5], {"a": 1}, 1e308):
        archive = export_bytes(store, saved.id, lambda r, bad=bad: {**r, "metrics": {**r["metrics"], "ulira_acc": bad}})
        with pytest.raises(StoreError, match="ulira_acc.*nothing was imported"):
            other.import_(io.BytesIO(archive))
    bundle = rewrite_result(bundle_bytes(store, [saved.id]),
                            lambda r: {**r, "audits": {"ulira": {"accuracy": "abc"}}})
    with pytest.raises(StoreError, match="audits.ulira"):
        read_bundle(io.BytesIO(bundle))
    assert other.ids() == []


def test_a_planted_wrong_result_is_unreadable_and_every_listing_still_works(store, home, capsys):
    store = ExperimentStore(home / "experiments")
    good = store.save(result(audits=real_audits()), weights())
    plant(store, "bad-ulira", result(metrics={**result()["metrics"], "ulira_acc": "abc"}))
    plant(store, "bad-leakage", result(metrics={**result()["metrics"], "leakage_js": [0.1]}))
    plant(store, "bad-audits", result(audits={"ulira": [1, 2, 3], "relearn": {"steps": "many"}}))
    problems = store.unreadable()
    assert set(problems) == {"bad-ulira", "bad-leakage", "bad-audits"}
    assert "ulira_acc" in problems["bad-ulira"] and "audits.ulira" in problems["bad-audits"]
    listing = store.light_results(dataset="digits", forget="class:3")
    assert [r["id"] for r in listing] == [good.id]
    table = experiment_table(listing)  # what the Screen page draws
    assert table["ID"].tolist() == [good.id] and table["U-LiRA"].isna().all()
    with pytest.raises(UnreadableExperimentError, match="audits.ulira"):
        store.load("bad-audits")
    capsys.readouterr()
    assert cli_main(["list"]) == 0 and "bad-ulira" in capsys.readouterr().out
    assert cli_main(["summary", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["n"] == 1
    assert cli_main(["audit", "bad-audits"]) == 1  # a message, not a traceback
    assert "can't be read" in capsys.readouterr().err
    assert cli_main(["audit", good.id]) == 0
    assert "U-LiRA accuracy" in (out := capsys.readouterr().out) and "fc -" in out  # a null probe AUC: no figure


def test_null_probe_aucs_of_a_random_forget_set_are_read_as_missing():
    from mucomp.results.contrast import probe_frame

    # A random forget set has no test forget images: every probe AUC is stored as null.
    stored = schema.check_result(stored_result(audits={"probes": {"conv1": None, "fc": None}}))
    frame = probe_frame({"A": stored, "retrained": stored}, ["conv1", "fc"])
    assert frame["auc"].isna().all() and len(frame) == 4


# --- 2. sizes are bounded before parsing; unknown fields are small; the index lists what it lists --------
def huge_result(megabytes: int) -> bytes:
    """A valid-looking result.json of ``megabytes`` MB: an unknown top-level blob (compresses to ~1/50)."""
    return json.dumps(stored_result(notes="x" * (megabytes * 1024**2))).encode()


def test_a_result_file_past_the_limit_is_refused_before_it_is_parsed(store, tmp_path):
    assert 8 * 1024**2 <= MAX_RESULT_BYTES <= 64 * 1024**2
    data = huge_result(40)
    with pytest.raises(schema.ResultSchemaError, match="larger than"):
        schema.parse_result_bytes(data)
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
        zipped.writestr("manifest.json", json.dumps({"format": "mucomp-experiments", "ids": ["abc123"]}))
        zipped.writestr("abc123/result.json", data)
    assert len(archive.getvalue()) < 2 * 1024**2  # a small download that unpacks to 40 MB
    del data
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(StoreError, match="larger than 32 MB.*nothing was imported"):
            store.import_(io.BytesIO(archive.getvalue()))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * 1024**2 and time.perf_counter() - start < 5.0  # never unpacked, never parsed
    folder = store.root / "planted"
    folder.mkdir()
    (folder / "result.json").write_bytes(huge_result(33))
    assert "larger than 32 MB" in store.unreadable()["planted"]


def test_unknown_fields_are_kept_small(store):
    small = store.save(result(notes={"by": "me"}, config=config(my_setting="on")), weights())
    assert store.load(small.id).result["notes"] == {"by": "me"}  # forward compatible
    big = "x" * 100_000  # past the 64 kB an unknown field may have
    for where in (result(notes=big), result(config=config(blob=big)), result(notes=[[0.5] * 1000] * 100),
                  result(audits={**real_audits(), "future": {"per_image": [0.5] * 50_000}}),
                  result(environment={"python": big}),
                  result(config=config(**{f"setting{i}": "v" * 100 for i in range(1000)})),  # many small ones
                  result(metrics={**result()["metrics"], **{f"metric{i}": 0.5 for i in range(10_000)}})):
        with pytest.raises(StoreError, match="kB"):
            store.save(where)
    with pytest.raises(StoreError, match="epochs"):  # listings carry the per-epoch records: bounded too
        store.save(result(epochs=[{"epoch": k} for k in range(20_000)]))


def test_the_listing_index_carries_only_the_fields_it_lists(store):
    from mucomp.store.index import LIGHT_FIELDS

    check = {"matches": False, "message": "differs"}
    saved = store.save(result(audits=real_audits(200), notes={"by": "me"}, reference_check=check,
                              attack={"indices": [3], "entropy": [0.1], "confidence": [1.0]}), weights())
    light = store.light_results()[0]
    assert set(light) <= set(LIGHT_FIELDS) and "audits" not in light and "attack" not in light
    assert "notes" not in light and light["reference_check"] == check and light["metrics"]["leakage_js"] == 0.2
    assert store.load(saved.id).result["audits"]["ulira"]["accuracy"] == real_audits(200)["ulira"]["accuracy"]
    assert "audits" not in store.entries()[0]


# --- 3. groups come from configs -------------------------------------------------------------------------
def test_a_mislabelled_group_is_recomputed_at_import_save_and_read(store, tmp_path):
    from mucomp.sharing.bundle import group_members

    ga = store.save(result(), weights())
    rl = store.save(result(config=config("rl"), method_label="Random labels (RL)"), weights(1))
    assert ga.result["group"] == group_id(ga.config) != rl.result["group"] == group_id(rl.config)
    other = ExperimentStore(tmp_path / "other")
    other.import_(io.BytesIO(export_bytes(store, ga.id)))
    other.import_(io.BytesIO(export_bytes(store, rl.id, lambda r: {**r, "group": ga.result["group"]})))
    assert other.load(rl.id).result["group"] == group_id(rl.config)  # not the GA group it claimed
    assert group_members(other, ga.result["group"]) == [ga.id]  # `export --bundle --group` exports GA only
    assert {g["group"]: g["n"] for g in group_summaries(other.entries())} == {
        ga.result["group"]: 1, rl.result["group"]: 1}
    # save: a group given is replaced; read: a label planted on disk is not believed either
    assert store.save(result(group="g-0000000000"), weights()).result["group"] == ga.result["group"]
    plant(store, "planted-rl", result(config=config("rl"), group=ga.result["group"]))
    assert store.load("planted-rl").result["group"] == rl.result["group"]
    assert {e["id"]: e["group"] for e in store.entries()}["planted-rl"] == rl.result["group"]
    reference = store.save({**result(kind="custom", group=ga.result["group"])}, weights())
    assert "group" not in store.load(reference.id).result  # only unlearned experiments have a group


# --- 4. a read-only store ----------------------------------------------------------------------------------
def make_read_only(root: Path, writable: bool = False) -> None:
    for folder, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            path = Path(folder) / name
            mode = path.stat().st_mode
            path.chmod(mode | stat.S_IWUSR if writable else mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    mode = root.stat().st_mode
    root.chmod(mode | stat.S_IWUSR if writable else mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="chmod does not stop root from writing")
def test_a_read_only_store_runs_references_and_reproduce(digits_scenario, digits_references, tmp_path, monkeypatch,
                                                        capsys):
    from helpers import seed_reference_cache

    from mucomp.experiment import clear_scenario_cache

    home = tmp_path / "home"
    seed_reference_cache(home, digits_scenario, kinds=("original", "retrained"))
    monkeypatch.setenv("MUCOMP_HOME", str(home))
    bundle = tmp_path / "bundle.zip"
    assert cli_main(["run", "--forget-class", "3", "--method", "ga", "--epochs", "1", "--json"]) == 0
    experiment_id = json.loads(capsys.readouterr().out)["id"]
    assert cli_main(["export", "--bundle", experiment_id, "-o", str(bundle)]) == 0
    capsys.readouterr()
    clear_scenario_cache()  # nothing of this process's preparation helps the commands below
    make_read_only(home)
    try:
        assert not os.access(home / "experiments", os.W_OK)
        assert cli_main(["references", "--forget-class", "3", "--json"]) == 0
        out = json.loads(capsys.readouterr().out)
        assert math.isclose(out["retrained"]["UA"], 0.0, abs_tol=1e-9)
        assert cli_main(["reproduce", str(bundle)]) == 0, capsys.readouterr().err
        assert cli_main(["list"]) == 0
    finally:
        make_read_only(home, writable=True)


@pytest.mark.parametrize(("data", "says"), [
    (b'{"metrics": {"UA": 0.1, "UA": 0.9}}', "the key 'UA' appears twice"),
    ('{"metrics": {"UA": 0.1}}'.encode("utf-16"), "not UTF-8 text"),
])
def test_stored_json_with_a_repeated_key_or_another_encoding_is_refused(data, says):
    # With a repeated key, readers disagree on which value counts; mucomp writes UTF-8 only.
    from mucomp.schema import ResultSchemaError, parse_json

    with pytest.raises(ResultSchemaError, match=says):
        parse_json(data)
    assert parse_json(b'{"metrics": {"UA": 0.1, "RA": 0.9}}') == {"metrics": {"UA": 0.1, "RA": 0.9}}


def test_the_same_weights_make_the_same_file_in_every_process(tmp_path):
    # safetensors writes a metadata map in an order that changes per process: one key keeps the
    # bytes of a reference (and of a stored model) the same wherever the same weights are saved.
    import subprocess
    import sys

    code = ("import hashlib, numpy; from safetensors.numpy import save; from mucomp.weights import "
            "safetensors_metadata as m; print(hashlib.sha256(save({'w': numpy.zeros(3)}, "
            "metadata=m(kind='retrained', scenario='digits-c3', recipe='{}'))).hexdigest())")
    digests = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
               for _ in range(4)}
    assert len(digests) == 1
