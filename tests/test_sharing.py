"""Reproducibility bundles, `mucomp reproduce`, and Hub push / pull against a local stand-in.

One cheap digits experiment (fine-tuning, 1 epoch) is run once for the module in a private
MUCOMP_HOME whose reference cache is the session's (the references are trained once). The Hub
calls are huggingface_hub's own, pointed at tests/hub_standin.py on 127.0.0.1: nothing leaves the
machine.
"""

import hashlib
import json
import os
import re
import zipfile

import pytest
import torch
from helpers import private_home
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from mucomp.cli import main as cli_main
from mucomp.data import Scenario, data_sha256
from mucomp.environment import EXACT_KEYS, environment
from mucomp.runner import ExperimentConfig, run_experiment
from mucomp.sharing import read_bundle, write_bundle
from mucomp.sharing.bundle import bundle_members, bundle_problem
from mucomp.sharing.card import CARD_METRICS, cell, dataset_card
from mucomp.sharing.reproduce import metric_rows
from mucomp.store import ExperimentStore, StoreError, weights_sha256
from tests.hub_standin import HubStandIn, StoredFile, _commit

# huggingface_hub's LFS upload hands its HTTP client a file object (`data=`), which the client
# deprecates; nothing of mucomp's.
pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>' to upload raw bytes:DeprecationWarning")

TOKEN = "hf_standin_write_token"
REPO = "tester/unlearning-runs"


@pytest.fixture(scope="module")
def home(tmp_path_factory, digits_references):
    """A private MUCOMP_HOME (the CLI's default store is the module's) sharing the session's
    reference cache."""
    yield from private_home(tmp_path_factory, "sharing-home")


@pytest.fixture(scope="module")
def store(home):
    return ExperimentStore()


@pytest.fixture(scope="module")
def experiment(store):
    return run_experiment(ExperimentConfig("digits", 3, 0, "ft", epochs=1), store)


@pytest.fixture(scope="module")
def bundle_path(experiment, tmp_path_factory):
    path = tmp_path_factory.mktemp("bundles") / "ft.zip"
    assert cli_main(["export", "--bundle", experiment.id, "-o", str(path)]) == 0
    return path


def manifest_of(path):
    with zipfile.ZipFile(path) as archive:
        return json.loads(archive.read("manifest.json"))


def rewrite(source, destination, change):
    """Copy a zip, passing each ``(name, bytes)`` through ``change`` (None drops the entry)."""
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(destination, "w") as dst:
        for info in src.infolist():
            data = change(info.filename, src.read(info))
            if data is not None:
                dst.writestr(info.filename, data)
    return destination


# --- the bundle ---------------------------------------------------------------------------------
def test_the_bundle_manifest_records_what_a_rerun_needs(experiment, store, bundle_path, tmp_path, capsys):
    manifest = manifest_of(bundle_path)
    assert manifest["format"] == "mucomp-experiments" and manifest["ids"] == [experiment.id]
    block = manifest["bundle"]
    assert block["format"] == "mucomp-bundle" and block["version"] == 1
    entry = block["experiments"][experiment.id]
    config = experiment.config
    assert entry["config"] == config and entry["metrics"] == experiment.metrics
    assert entry["seeds"] == {"unlearn_seed": 0, "train_seed": 0, "data_seed": 0}
    scenario = Scenario.from_config(config)
    # The data hash: sha256 of the split arrays as mucomp loads them (recomputed here from its definition).
    data = scenario.data
    digest = hashlib.sha256(b"mucomp-data-v1:digits")
    for split in (data.train, data.test):
        for name, tensor in (("images", split.images), ("labels", split.labels)):
            array = tensor.numpy()
            digest.update(f"{split.name}.{name}:{array.dtype.str}:{list(array.shape)}".encode() + array.tobytes())
    assert entry["scenario"]["data_sha256"] == digest.hexdigest() == data_sha256("digits")
    assert entry["scenario"]["forget_sha256"] == hashlib.sha256(scenario.forget_indices.astype("<i8").tobytes()).hexdigest()
    assert entry["scenario"]["forget"] == "class:3" and entry["scenario"]["n_forget"] == scenario.forget_indices.size
    for kind in ("original", "retrained"):
        reference = next(r for r in store.list() if r.kind == kind)
        identity = entry["references"][kind]
        assert identity["experiment_id"] == reference.id and identity["source"] == "local"
        assert identity["weights_sha256"] == reference.config["weights_sha256"] == weights_sha256(reference.state_dict())
        assert identity["recipe"]["epochs"] == 20 and identity["recipe_hash"] == reference.config["checkpoint"].split("/")[0]
        assert reference.result["environment"]["device"] == "cpu"  # references record the process that evaluated them
    assert entry["weights_sha256"] == weights_sha256(experiment.state_dict()) and entry["weights_included"]
    # The environment of the process that ran the experiment, as its result recorded it.
    assert entry["environment_recorded"] == "run" and entry["environment"] == experiment.result["environment"]
    assert set(EXACT_KEYS) <= set(entry["environment"])
    assert entry["environment"]["device"] == "cpu" and entry["environment"]["packages"]["torch"] == torch.__version__
    assert re.fullmatch(r"[0-9a-f]{64}", entry["code"]["source_sha256"]) and "git_dirty" in entry["code"]
    # A bundle with weights is an export archive too: `mucomp import` takes it.
    other = ExperimentStore(tmp_path / "other")
    assert other.import_(bundle_path) == [experiment.id]
    assert other.load(experiment.id).result == experiment.result
    # Without weights: their hash stays, the file goes; `--group` bundles the replicate group.
    light = tmp_path / "light.zip"
    assert cli_main(["export", "--bundle", "--no-weights", "--group", experiment.result["group"], "-o", str(light)]) == 0
    assert "bundled 1 experiment(s)" in capsys.readouterr().out
    light_entry = manifest_of(light)["bundle"]["experiments"][experiment.id]
    assert not light_entry["weights_included"] and light_entry["weights_sha256"] == entry["weights_sha256"]
    assert zipfile.ZipFile(light).namelist() == ["manifest.json", f"{experiment.id}/result.json"]
    assert light.stat().st_size < bundle_path.stat().st_size / 4
    plain = tmp_path / "plain.zip"  # a plain export is unchanged, and is not a bundle
    assert cli_main(["export", experiment.id, "-o", str(plain)]) == 0
    with pytest.raises(StoreError, match="holds no reproducibility bundle"):
        read_bundle(plain)
    assert cli_main(["export", "--bundle", "-o", str(light)]) == 2  # neither ids nor a group
    assert cli_main(["export", "--no-weights", experiment.id, "-o", str(light)]) == 2  # an import needs weights


def test_a_bundle_includes_the_bases_and_orders_them_first(experiment, store, tmp_path):
    child = store.save({**experiment.result, "id": "child-of-ft", "config": {**experiment.config, "base": experiment.id}},
                       experiment.state_dict())
    orphan_child = store.save({**experiment.result, "id": "orphan-of-gone", "config": {**experiment.config,
                                                                                         "base": "gone1234"}})
    try:
        assert bundle_problem(store, child.id) is None
        assert "gone1234, which is no longer stored" in bundle_problem(store, orphan_child.id)
        with pytest.raises(StoreError, match="gone1234, which is not in the store"):
            bundle_members(store, [orphan_child.id])
        assert [e.id for e in bundle_members(store, [child.id])] == [experiment.id, child.id]
        path = tmp_path / "chain.zip"
        assert write_bundle(store, [child.id], path) == [experiment.id, child.id]
        reordered = rewrite(path, tmp_path / "reordered.zip", lambda name, data: data if name != "manifest.json" else
                            json.dumps({**json.loads(data), "ids": [child.id, experiment.id]}).encode())
        assert read_bundle(reordered).ids == [experiment.id, child.id]
        orphan = rewrite(path, tmp_path / "orphan.zip", lambda name, data: None if name.startswith(experiment.id) else (
            json.dumps(_without(json.loads(data), experiment.id)).encode() if name == "manifest.json" else data))
        with pytest.raises(StoreError, match=f"starts from {experiment.id}, which the bundle does not hold"):
            read_bundle(orphan)
    finally:
        store.delete(child.id)
        store.delete(orphan_child.id)


def test_a_hub_reference_is_named_by_repo_and_file(experiment, tmp_path):
    from mucomp.sharing.bundle import _reference_identities

    other = ExperimentStore(tmp_path / "hub-refs")
    weights = experiment.state_dict()
    checkpoint = "someone/resnet18-digits/digits_full.pth"
    config = {**Scenario.from_config(experiment.config).config_fields(), "unlearn_seed": 0,
              "method": "original", "base": None, "checkpoint": checkpoint}
    other.save({"id": "original-digits-c3-s0-abcdef", "kind": "original", "config": config,
                "metrics": {"UA": 1.0, "RA": 1.0, "TRA": 1.0}}, weights)
    [identity] = _reference_identities(other, Scenario.from_config(experiment.config), None).values()
    assert identity == {"kind": "original", "experiment_id": "original-digits-c3-s0-abcdef", "checkpoint": checkpoint,
                        "weights_sha256": weights_sha256(weights), "source": "hub",
                        "hub_repo": "someone/resnet18-digits", "hub_file": "digits_full.pth"}


def _without(manifest, experiment_id):
    manifest["ids"].remove(experiment_id)
    del manifest["bundle"]["experiments"][experiment_id]
    return manifest


def test_reading_a_bundle_refuses_what_it_cannot_trust(experiment, store, bundle_path, tmp_path):
    def edit_manifest(change):
        def apply(name, data):
            if name != "manifest.json":
                return data
            manifest = json.loads(data)
            change(manifest)
            return json.dumps(manifest).encode()
        return apply

    cases = {
        "metrics differs from its result.json": edit_manifest(
            lambda m: m["bundle"]["experiments"][experiment.id]["metrics"].update(UA=0.0)),
        "environment differs from the one its result.json recorded": edit_manifest(
            lambda m: m["bundle"]["experiments"][experiment.id]["environment"].update(torch_threads=64)),
        "says its weights are not bundled": edit_manifest(
            lambda m: m["bundle"]["experiments"][experiment.id].update(weights_included=False)),
        "newer than this mucomp reads": edit_manifest(lambda m: m["bundle"].update(version=2)),
        "holds no reproducibility bundle": edit_manifest(lambda m: m.pop("bundle")),
        "data_sha256": edit_manifest(lambda m: m["bundle"]["experiments"][experiment.id]["scenario"].update(
            data_sha256="not a hash")),
        "not valid JSON": lambda name, data: data.replace(b'"version": 1', b'"version": NaN') if name == "manifest.json" else data,
        "unexpected entry": lambda name, data: data,
    }
    for expected, change in cases.items():
        path = rewrite(bundle_path, tmp_path / "bad.zip", change)
        if expected == "unexpected entry":
            with zipfile.ZipFile(path, "a") as archive:
                archive.writestr("../evil.txt", b"x")
        with pytest.raises(StoreError, match=expected):
            read_bundle(path)
    assert read_bundle(bundle_path).ids == [experiment.id]


# --- reproduce --------------------------------------------------------------------------------------
def test_export_then_reproduce_on_the_same_machine_is_exact(experiment, bundle_path, capsys):
    capsys.readouterr()
    assert cli_main(["reproduce", str(bundle_path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    [item] = report["experiments"]
    assert report["ok"] and item["reproduced"] and item["exact"] and item["tolerance"] == 0
    assert item["environment_differences"] == [] and item["problems"] == []
    assert {c["name"] for c in item["checks"]} == {"data digits", "forget set class:3", "reference original",
                                                   "reference retrained", "weights (bundled file)", "weights (rerun)"}
    assert all(c["ok"] for c in item["checks"])  # same data, references and weights, bit for bit
    rows = {r["name"]: r for r in item["rows"]}
    compared = [k for k in experiment.metrics if k not in ("RT", "cost")]
    for name in compared:  # every metric: the rerun and the bundled weights evaluated here, both exactly equal
        assert rows[name]["delta_rerun"] == 0 and rows[name]["delta_reevaluated"] == 0, rows[name]
        assert rows[name]["rerun"] == experiment.metrics[name] == rows[name]["reevaluated"]
    for key, value in experiment.metrics["cost"].items():
        assert rows[f"cost.{key}"]["rerun"] == value and rows[f"cost.{key}"]["exact"]
    assert not rows["RT"]["compared"]
    assert item["rerun_id"] and item["rerun_id"] != experiment.id


def test_reproduce_reruns_with_the_precision_and_threads_the_experiment_ran_with(store, tmp_path, monkeypatch,
                                                                                  capsys):
    from mucomp.precision import ENV, effective_precision

    threads = torch.get_num_threads()
    monkeypatch.setenv(ENV, "bf16")  # made as `mucomp --precision bf16 run` would, on one torch thread
    torch.set_num_threads(1)
    try:
        made = run_experiment(ExperimentConfig("digits", 3, 0, "ft", epochs=1, lr=0.02), store)
    finally:
        torch.set_num_threads(threads)
    evaluated_in = effective_precision("cpu", "bf16")  # bf16 where this CPU has native kernels, else fp32
    assert made.result["evaluation"]["precision"] == evaluated_in
    assert made.result["environment"]["precision"]["evaluation"] == "bf16"
    assert made.result["environment"]["torch_threads"] == 1
    path = tmp_path / "bf16.zip"
    monkeypatch.delenv(ENV)  # exported and reproduced from a shell with the defaults and two threads
    monkeypatch.setenv("MUCOMP_TORCH_THREADS", "2")
    assert cli_main(["export", "--bundle", made.id, "-o", str(path)]) == 0
    assert manifest_of(path)["bundle"]["experiments"][made.id]["environment_recorded"] == "run"
    capsys.readouterr()
    try:
        assert cli_main(["reproduce", str(path), "--json"]) == 0
        assert torch.get_num_threads() == 2  # the shell's setting is put back after the command
    finally:
        torch.set_num_threads(threads)
    assert ENV not in os.environ
    [item] = json.loads(capsys.readouterr().out)["experiments"]
    assert item["precision"] == f"{evaluated_in}, as the bundled experiment was evaluated"
    assert item["exact"] and item["environment_differences"] == [] and item["reproduced"]
    rows = {r["name"]: r for r in item["rows"]}
    assert rows["PS"]["rerun"] == made.metrics["PS"] and rows["UA"]["delta_reevaluated"] == 0


def test_a_perturbed_weight_names_the_metrics_that_moved_and_fails(experiment, bundle_path, tmp_path, capsys):
    def perturb(name, data):
        if name != f"{experiment.id}/model.safetensors":
            return data
        tensors = load_safetensors(data)
        tensors["fc.bias"][0] += 10.0  # one weight: every image now leans to class 0
        return save_safetensors(tensors)

    path = rewrite(bundle_path, tmp_path / "perturbed.zip", perturb)
    capsys.readouterr()
    assert cli_main(["reproduce", str(path)]) == 1
    out = capsys.readouterr().out
    verdict = next(line for line in out.splitlines() if "verdict" in line)
    moved = re.search(r"moved in the bundled weights: ([^;)]*)", verdict).group(1).split(", ")
    assert {"RA", "TRA", "accs", "t_accs", "label_dist"} <= set(moved), verdict
    assert "moved in the rerun" not in verdict  # the rerun reproduces the manifest: the file changed, not the run
    assert "weights (bundled file) differs" in verdict
    assert re.search(r"weights \(bundled file\)\s+\w+\s+here \w+\s+DIFFERS", out)
    assert re.search(r"weights \(rerun\)\s+(\w+)\s+here \1\s+equal", out)
    ra = next(line for line in out.splitlines() if line.split()[:1] == ["RA"]).split()
    # metric, bundled, rerun, |diff| of the rerun, bundled weights here, |diff| MOVED
    assert ra[1] == ra[2] == f"{experiment.metrics['RA']:.6g}" and ra[3] == "=" and ra[-1] == "MOVED"
    assert float(ra[4]) < experiment.metrics["RA"]
    assert "0 of 1 experiment(s) reproduced; exit status 1" in out


def test_each_side_compares_only_what_it_measures():
    bundled = {"UA": 0.5, "ulira_accuracy": 0.6, "RT": 1.0, "cost": {"optimizer_steps": 3}, "accs": [0.1, 0.2]}
    rerun = {"UA": 0.5, "RT": 2.0, "cost": {"optimizer_steps": 4}, "accs": [0.1, 0.25], "newer_metric": 1.0}
    rows = {r.name: r for r in metric_rows(bundled, rerun, {"UA": 0.5000001, "accs": [0.1, 0.2]}, tolerance=0.01)}
    assert not rows["UA"].moved_rerun and not rows["UA"].moved_reevaluated and rows["UA"].delta_reevaluated > 0
    assert rows["accs"].delta_rerun == pytest.approx(0.05) and rows["accs"].moved_rerun
    assert rows["cost.optimizer_steps"].moved_rerun and rows["cost.optimizer_steps"].exact  # counts: always exact
    assert not rows["RT"].compared and not rows["newer_metric"].compared
    audit = rows["ulira_accuracy"]  # stored later on demand: neither side measures it, neither fails on it
    assert audit.compared and not audit.rerun_done and not audit.moved_rerun and not audit.moved_reevaluated
    exact = {r.name: r for r in metric_rows({"UA": 0.5, "accs": [[0.1]]}, {"UA": 0.5000001, "accs": [[0.1], [0.2]]},
                                            None, tolerance=0.0)}
    assert exact["UA"].moved_rerun and exact["accs"].delta_rerun == float("inf")  # another shape can't be equal


def test_reproduce_refuses_a_missing_or_broken_bundle(tmp_path, capsys):
    assert cli_main(["reproduce", str(tmp_path / "absent.zip")]) == 2
    (tmp_path / "junk.zip").write_bytes(b"not a zip")
    assert cli_main(["reproduce", str(tmp_path / "junk.zip")]) == 1
    assert "not a zip archive of a mucomp bundle" in capsys.readouterr().err


# --- the Hub ------------------------------------------------------------------------------------------
@pytest.fixture()
def hub(monkeypatch):
    """The stand-in Hub, with huggingface_hub pointed at it (HF_ENDPOINT, HF_TOKEN) and online."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # conftest's offline mode: lifted for 127.0.0.1 only
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)  # the stand-in speaks LFS, not Xet
    with HubStandIn({TOKEN: "tester"}) as standin:
        monkeypatch.setenv("HF_ENDPOINT", standin.url)
        monkeypatch.setenv("HF_TOKEN", TOKEN)
        yield standin


def table_rows(card: str, title: str) -> list[list[str]]:
    """The cells of the first markdown table under ``## title`` (header first), split on unescaped
    pipes; every row must have the header's cell count, and the separator row is checked and dropped."""
    section = card.split(f"## {title}\n\n", 1)[1]
    table = next(chunk for chunk in section.split("\n\n") if chunk.startswith("|"))
    cells = [[c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]] for line in table.splitlines()]
    assert all(set(c) == {"-"} for c in cells[1]) and all(len(row) == len(cells[0]) for row in cells), table
    return [cells[0], *cells[2:]]


def test_push_uploads_each_experiment_and_a_card_byte_for_byte(experiment, store, hub, capsys):
    capsys.readouterr()
    assert cli_main(["push", REPO, experiment.id, "--weights", "--json"]) == 0
    pushed = json.loads(capsys.readouterr().out)
    files = hub.files(REPO)
    folder = experiment.id
    assert set(files) == {".gitattributes", "README.md", f"{folder}/result.json", f"{folder}/bundle.json",
                          f"{folder}/model.safetensors"}
    assert pushed["files"] == [f"{folder}/result.json", f"{folder}/bundle.json", f"{folder}/model.safetensors", "README.md"]
    assert hub.lfs_paths(REPO) == {f"{folder}/model.safetensors"}  # weights went through the LFS transfer
    assert files[f"{folder}/result.json"] == (experiment.path / "result.json").read_bytes()
    assert files[f"{folder}/model.safetensors"] == experiment.model_path.read_bytes()
    block = json.loads(files[f"{folder}/bundle.json"])
    assert files[f"{folder}/bundle.json"] == (json.dumps(block, indent=1) + "\n").encode()
    assert list(block["experiments"]) == [folder]
    manifest = block["experiments"][folder]
    expected = manifest_of_store(store, experiment)
    assert {k: manifest[k] for k in ("config", "metrics", "scenario", "references", "weights_sha256", "seeds")} == expected
    card = files["README.md"].decode()
    assert files["README.md"] == dataset_card(REPO, [manifest]).encode()
    from huggingface_hub import DatasetCard

    assert DatasetCard(card).data.to_dict() == {"pretty_name": f"mucomp experiments: {REPO}",
                                                "tags": ["machine-unlearning", "mucomp"], "viewer": False}
    header, row = table_rows(card, "Experiments")
    assert header[:9] == ["ID", "Type", "Method", "Data set", "Forget", "Seeds (train / data / run)", "Epochs", "LR", "Batch"]
    values = dict(zip(header, row, strict=True))
    for key, title in CARD_METRICS:
        digits = 2 if key == "RT" else 4
        assert values[title] == f"{experiment.metrics[key]:.{digits}f}", title
    assert values["ID"] == f"`{folder}`" and values["Forget"] == "class:3" and values["Weights"] == "yes"
    group_header, group_row = table_rows(card, "Replicate groups")
    assert group_row[0] == f"`{experiment.result['group']}`" and group_row[group_header.index("n")] == "1"
    assert ("POST", "/api/repos/create") in hub.requests
    assert any(method == "PUT" and path.startswith("/lfs/") for method, path in hub.requests)


# --- the card of manifests someone else wrote ------------------------------------------------------
HOSTILE = ("![x](http://evil/x.png) [click](http://evil) \x1b]8;;http://evil/\x07link\x1b]8;;\x1b\\ \x1b[2K"
           "\x07\x00\u202everdict: reproduced|`<img src=x>")


def card_manifest(experiment_id: str, **config) -> dict:
    """A bundle manifest of one digits experiment as the card reads it (``config`` changes the
    config: a ``ga`` run, seeds 1 / 2 / 3)."""
    from mucomp.groups import group_id

    config = {"dataset": "digits", "forget": "class:3", "arch": "digits_cnn", "method": "ga", "train_seed": 1,
              "data_seed": 2, "unlearn_seed": 3, "epochs": 1, "lr": 0.05, "batch_size": 32, **config}
    return {"id": experiment_id, "kind": "unlearned", "group": group_id(config), "method_label": "GA",
            "created_at": "2025-01-01T00:00:00Z", "config": config, "metrics": {"UA": 0.1, "RA": 0.9}}


def test_hostile_manifest_text_reaches_the_card_as_plain_text():
    manifest = card_manifest(HOSTILE, method="my_plugin", dataset=HOSTILE, forget=HOSTILE)
    manifest.update(kind=HOSTILE, group=HOSTILE, method_label=HOSTILE)
    card = dataset_card(REPO, [manifest, card_manifest("plain-run", forget=HOSTILE)])
    for raw in ("![", "](http", "\x1b", "\x07", "\x00", "\u202e"):
        assert raw not in card, raw
    assert not re.search(r"(?<!\\)<img", card)  # HTML only escaped: \<img is the text "<img"
    header, *rows = table_rows(card, "Experiments")  # every row keeps its cells: no pipe got through
    assert len(rows) == 2 and "verdict: reproduced" in rows[1][header.index("Method")]


def test_a_stored_group_and_label_claiming_another_methods_group_does_not_merge():
    from mucomp.catalogue import BUILTIN_METHOD_LABELS
    from mucomp.groups import group_id

    genuine = card_manifest("ga-run")
    tampered = card_manifest("ft-run", method="ft", unlearn_seed=4)
    tampered.update(group=genuine["group"], method_label="ga", metrics={"UA": 0.9, "RA": 0.1})
    header, *rows = table_rows(dataset_card(REPO, [genuine, tampered]), "Replicate groups")
    by_group = {row[0]: dict(zip(header, row, strict=True)) for row in rows}
    assert set(by_group) == {f"`{genuine['group']}`", f"`{group_id(tampered['config'])}`"}
    methods = [by_group[f"`{group_id(m['config'])}`"]["Method"] for m in (genuine, tampered)]
    assert methods == [cell(BUILTIN_METHOD_LABELS["ga"]), cell(BUILTIN_METHOD_LABELS["ft"])]  # not the stored "ga"
    assert all(row["n"] == "1" for row in by_group.values())
    assert by_group[f"`{genuine['group']}`"]["UA"] == "0.1000"  # the ft run's figures stay out of it


def test_the_seed_column_shows_the_training_data_and_unlearning_seeds():
    older = card_manifest("schema-3-run", train_seed=7, data_seed=0)
    del older["config"]["unlearn_seed"]
    older["config"]["seed"] = 5  # the unlearning seed's name before schema version 4
    header, *rows = table_rows(dataset_card(REPO, [card_manifest("current-run"), older]), "Experiments")
    seeds = {row[0]: row[header.index("Seeds (train / data / run)")] for row in rows}
    assert seeds == {"`current-run`": "1 / 2 / 3", "`schema-3-run`": "7 / 0 / 5"}


def manifest_of_store(store, experiment):
    from mucomp.sharing.bundle import experiment_manifest

    entry = experiment_manifest(store, experiment, weights=True, export_environment=environment())
    return {k: entry[k] for k in ("config", "metrics", "scenario", "references", "weights_sha256", "seeds")}


def test_push_then_pull_round_trips_every_figure(experiment, store, hub, home, tmp_path, monkeypatch, capsys):
    from mucomp import settings
    from mucomp.groups import t_interval

    # A second replicate (another unlearning seed) makes the card's group interval real.
    twin_result = dict(experiment.result, id="replicate-seed1",
                       config={**experiment.config, "unlearn_seed": 1},
                       metrics={**experiment.metrics, "UA": 0.5, "RA": experiment.metrics["RA"] - 0.01})
    twin = store.save(twin_result, experiment.state_dict())
    try:
        assert cli_main(["push", REPO, "--group", experiment.result["group"], "--weights"]) == 0
        card = hub.files(REPO)["README.md"].decode()
        header, row = table_rows(card, "Replicate groups")
        values = dict(zip(header, row, strict=True))
        interval = t_interval([experiment.metrics["UA"], 0.5])
        assert values["n"] == "2" and values["UA"] == f"{interval['mean']:.4f} ± {interval['half_width']:.4f}"
        assert len(table_rows(card, "Experiments")) == 3
        # Pull into another home: every figure and every weight as pushed.
        other = tmp_path / "other-home"
        monkeypatch.setenv("MUCOMP_HOME", str(other))
        capsys.readouterr()
        assert cli_main(["pull", REPO]) == 0
        assert "imported 2 experiment(s)" in capsys.readouterr().out
        pulled = ExperimentStore(settings.home() / "experiments")
        for original in (experiment, twin):
            copy = pulled.load(original.id)
            assert copy.result == original.result
            assert (copy.path / "result.json").read_bytes() == (original.path / "result.json").read_bytes()
            assert copy.model_path.read_bytes() == original.model_path.read_bytes()
        assert cli_main(["pull", REPO]) == 1  # already stored: refused, with the way out
        assert "--skip-existing" in capsys.readouterr().err
        assert cli_main(["pull", REPO, "--skip-existing"]) == 0
        # -o writes a bundle `mucomp reproduce` reads.
        written = tmp_path / "pulled.zip"
        assert cli_main(["pull", REPO, "-o", str(written)]) == 0
        assert read_bundle(written).ids == sorted([experiment.id, twin.id])
        # Pushed again without weights: the weights leave the repo, and an import is refused with the way out.
        monkeypatch.setenv("MUCOMP_HOME", str(home))
        assert cli_main(["push", REPO, twin.id]) == 0
        assert f"{twin.id}/model.safetensors" not in hub.files(REPO)
        assert len(table_rows(hub.files(REPO)["README.md"].decode(), "Experiments")) == 3  # the earlier one stays listed
        monkeypatch.setenv("MUCOMP_HOME", str(tmp_path / "third-home"))
        capsys.readouterr()
        assert cli_main(["pull", REPO]) == 1
        err = capsys.readouterr().err
        assert "pushed without weights" in err and f"mucomp pull {REPO} -o bundle.zip" in err
        assert ExperimentStore().ids() == []  # nothing was imported
    finally:
        monkeypatch.setenv("MUCOMP_HOME", str(home))
        store.delete(twin.id)


def test_push_needs_a_token_and_says_how_to_get_one(experiment, hub, tmp_path, monkeypatch, capsys):
    from huggingface_hub import constants

    monkeypatch.delenv("HF_TOKEN")
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))  # no saved login either
    capsys.readouterr()
    assert cli_main(["push", REPO, experiment.id]) == 1
    err = capsys.readouterr().err
    assert "no Hugging Face token" in err and "hf auth login" in err and "HF_TOKEN" in err
    assert hub.requests == []  # refused before any call
    assert cli_main(["pull", "tester/absent"]) == 1  # a pull needs no token, but the repo must exist
    assert "has no dataset repo tester/absent" in capsys.readouterr().err
    monkeypatch.setenv("HF_TOKEN", "hf_wrong")
    assert cli_main(["push", REPO, experiment.id]) == 1
    assert "refused the token (401)" in capsys.readouterr().err
    assert cli_main(["push", "not a repo", experiment.id]) == 2


def test_a_push_racing_another_is_refused_not_lost(experiment, store, hub, monkeypatch, capsys):
    from mucomp.sharing import card

    real = card.dataset_card

    def racing(*args, **kwargs):  # someone else commits after the card's listing was read
        repo = hub.repo(REPO)
        repo.commits.append(_commit(repo.head, "someone else", {**repo.head.files, "x/notes.txt": StoredFile(b"x", False)}))
        return real(*args, **kwargs)

    assert cli_main(["push", REPO, experiment.id]) == 0
    monkeypatch.setattr(card, "dataset_card", racing)
    capsys.readouterr()
    assert cli_main(["push", REPO, experiment.id, "--weights"]) == 1
    assert "someone else pushed" in capsys.readouterr().err
    assert hub.repo(REPO).head.message == "someone else"  # their commit stands; ours was not made


def test_pull_checks_everything_it_downloads(experiment, store, hub, tmp_path):
    from mucomp.sharing.hub import HubError, pull, push

    push(REPO, store, [experiment.id], weights=True, endpoint=hub.url, token=TOKEN)
    repo = hub.repo(REPO)
    head = repo.head

    def serve(files):  # a commit of someone else's, straight into the stand-in
        repo.commits.append(_commit(repo.head, "edited", {**head.files, **files}))

    target = ExperimentStore(tmp_path / "target")
    folder = experiment.id
    result = json.loads(head.files[f"{folder}/result.json"].content)
    block = json.loads(head.files[f"{folder}/bundle.json"].content)
    lying = dict(result, metrics={**result["metrics"], "UA": 0.0})
    serve({f"{folder}/result.json": StoredFile(json.dumps(lying).encode(), False)})
    with pytest.raises(StoreError, match="differs from its result.json"):
        pull(REPO, target, endpoint=hub.url)
    other = dict(block, experiments={"someone-else": {**block["experiments"][folder], "id": "someone-else"}})
    serve({f"{folder}/bundle.json": StoredFile(json.dumps(other).encode(), False)})
    with pytest.raises(HubError, match="describes someone-else, not"):
        pull(REPO, target, endpoint=hub.url)
    serve({f"{folder}/model.safetensors": StoredFile(b"\0" * 64, True)})
    with pytest.raises(StoreError, match="not a valid safetensors file"):
        pull(REPO, target, endpoint=hub.url)
    assert target.ids() == []  # nothing of any of them was imported
    repo.commits.append(head)  # back to the honest push; stray files are ignored, not imported
    serve({"notes/readme.txt": StoredFile(b"hello", False), "Bad_Name/result.json": StoredFile(b"{}", False)})
    pulled = pull(REPO, target, endpoint=hub.url)
    assert pulled.imported == [folder] and set(pulled.ignored) == {"notes/readme.txt", "Bad_Name/result.json"}


def test_the_screen_page_pushes_on_a_space_with_the_owners_token_and_repo(experiment, store, hub, monkeypatch):
    """On a Space the page pushes with the Space's HF_TOKEN secret to the repo its variable names,
    only what this browser made; without the variable it says what the owner must set."""
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    from mucomp.data import Scenario

    root = Path(__file__).resolve().parents[1]
    monkeypatch.setenv("SPACE_ID", "tester/mucomp")
    monkeypatch.delenv("MUCOMP_HUB_REPO", raising=False)
    at = AppTest.from_file(str(root / "Home.py"), default_timeout=60)
    at.run()
    at.session_state["mucomp_scenario"] = Scenario("digits", 3, 0)
    at.switch_page("pages/2_Screen.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert not [b for b in at.button if b.key == "screen_push"]
    assert any("variable MUCOMP_HUB_REPO" in c.value for c in at.caption)

    monkeypatch.setenv("MUCOMP_HUB_REPO", "tester/space-runs")
    mine = run_experiment(ExperimentConfig("digits", 3, 0, "ga", epochs=1), store, owner=at.session_state["mucomp_owner"])
    at.selectbox(key="screen_detail").set_value(experiment.id).run()  # made by the command line, not this browser
    assert at.button(key="screen_push").disabled
    at.selectbox(key="screen_detail").set_value(mine.id).run()
    repo = at.text_input(key="screen_push_repo")
    assert repo.value == "tester/space-runs" and repo.disabled  # visitors push where the owner said
    assert not at.button(key="screen_push").disabled
    at.button(key="screen_push").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any(f"Pushed 1 experiment(s) ({mine.id})" in s.value for s in at.success)
    files = hub.files("tester/space-runs")
    assert files[f"{mine.id}/result.json"] == (mine.path / "result.json").read_bytes()
    assert f"{mine.id}/model.safetensors" not in files and "README.md" in files

    monkeypatch.delenv("HF_TOKEN")  # a Space without the secret: off, and says how to turn it on
    monkeypatch.setattr("huggingface_hub.get_token", lambda: None)
    at.run()
    assert not [b for b in at.button if b.key == "screen_push"]
    assert any("secret HF_TOKEN" in c.value for c in at.caption)


def test_app_push_is_offered_by_the_environment_and_refused_with_what_to_do(monkeypatch):
    from mucomp.sharing import hub

    monkeypatch.setattr("huggingface_hub.get_token", lambda: "hf_local")
    local = hub.app_push({})
    assert (local.on_space, local.fixed_repo, local.repo_id, local.problem) == (False, False, None, None)
    assert hub.app_push_refusal({"owner": None}, "me", local) is None  # locally: any experiment
    assert hub.app_push({"MUCOMP_HUB_REPO": "me/runs"}).repo_id == "me/runs"  # a suggestion only
    bad = hub.app_push({"MUCOMP_HUB_REPO": "not a repo"})
    assert bad.repo_id is None and "MUCOMP_HUB_REPO='not a repo' is not a dataset repo id" in bad.problem

    space = hub.app_push({"SPACE_ID": "owner/app", "MUCOMP_HUB_REPO": "owner/runs"})
    assert space.fixed_repo and space.repo_id == "owner/runs" and space.problem is None
    assert hub.app_push_refusal({"owner": "me"}, "me", space) is None
    for result in ({"owner": "someone else"}, {"owner": None}):
        assert "only the experiments this browser made" in hub.app_push_refusal(result, "me", space)
    assert "variable MUCOMP_HUB_REPO" in hub.app_push({"SPACE_ID": "owner/app"}).problem

    monkeypatch.setattr("huggingface_hub.get_token", lambda: None)
    assert "hf auth login" in hub.app_push({}).problem
    no_secret = hub.app_push({"SPACE_ID": "owner/app", "MUCOMP_HUB_REPO": "owner/runs"})
    assert "secret HF_TOKEN" in no_secret.problem and hub.app_push_refusal({"owner": "me"}, "me", no_secret)
