import io
import json
import os
import zipfile

import pytest
import torch

import mucomp.store as store_module
from mucomp.store import (
    ExperimentExistsError,
    ExperimentNotFoundError,
    ExperimentStore,
    InvalidIdError,
    StoreError,
)


def sample_result(**extra):
    result = {
        "kind": "unlearned",
        "config": {"dataset": "digits", "forget_class": 3, "seed": 0, "method": "ga", "epochs": 2, "lr": 0.001},
        "metrics": {"UA": 0.125, "RA": 0.9876543210123, "TRA": float("nan"), "accs": [0.1, 1 / 3] * 5},
        "epochs": [{"epoch": 1, "forget_accuracy": 0.5}],
    }
    result.update(extra)
    return result


def folders(path):
    """The experiment folders (and leftovers) of a store: its index and lock files left out."""
    return sorted(p.name for p in path.iterdir() if p.name not in (".index.sqlite3", ".locks"))


def sample_weights(seed=0):
    """A digits CNN's state dict (imports check the weights against the scenario's architecture)."""
    from mucomp.models import seeded_model

    return seeded_model("digits_cnn", 10, seed).state_dict()


def test_save_load_list_survives_a_restart(tmp_path):
    store = ExperimentStore(tmp_path)
    saved = store.save(sample_result(), sample_weights())
    assert saved.result["schema_version"] == store_module.SCHEMA_VERSION and saved.result["code_version"]
    assert saved.metrics["TRA"] is None  # NaN is stored as null
    reopened = ExperimentStore(tmp_path)
    listed = reopened.list()
    assert [e.id for e in listed] == [saved.id]
    assert reopened.load(saved.id).result == saved.result
    assert torch.equal(reopened.load(saved.id).state_dict()["fc.weight"], sample_weights()["fc.weight"])
    assert reopened.list(dataset="digits", forget_class=3) and not reopened.list(forget_class=4)


def test_ids_are_generated_unique_and_never_overwritten(tmp_path):
    store = ExperimentStore(tmp_path)
    ids = {store.save(sample_result()).id for _ in range(20)}
    assert len(ids) == 20
    first = next(iter(ids))
    with pytest.raises(StoreError, match="never overwritten"):
        store.save(sample_result(id=first))


@pytest.mark.parametrize("bad", ["../x", "..", "a/b", "A-UPPER", "x", "", "a" * 65, None, "ok\n"])
def test_unsafe_ids_are_refused_everywhere(tmp_path, bad):
    store = ExperimentStore(tmp_path)
    for call in (lambda: store.load(bad), lambda: store.delete(bad), lambda: store.export([bad], tmp_path / "x.zip")):
        with pytest.raises(StoreError, match="not a valid experiment id"):
            call()
        with pytest.raises(InvalidIdError) as info:  # a type callers can catch: the argument's fault
            call()
        assert isinstance(info.value, ValueError)
    with pytest.raises(StoreError):
        store.save(sample_result(id=bad))
    assert not (tmp_path.parent / "x").exists()
    assert folders(tmp_path) == []


def test_interrupted_save_leaves_the_store_consistent(tmp_path, monkeypatch):
    store = ExperimentStore(tmp_path)
    kept = store.save(sample_result(), sample_weights())

    def killed(src, dst):
        raise KeyboardInterrupt("killed between the temp write and the rename")

    monkeypatch.setattr(store_module.os, "rename", killed)
    with pytest.raises(KeyboardInterrupt):
        store.save(sample_result(), sample_weights(1))
    monkeypatch.undo()
    assert [e.id for e in ExperimentStore(tmp_path).list()] == [kept.id]
    assert folders(tmp_path) == [kept.id]  # temp folder cleaned up


def rename_after_a_rival(monkeypatch, rival_ids):
    """os.rename that lets "another process" store each id of ``rival_ids`` between the store's
    existence check and its rename (the race the thread lock can't cover)."""
    real_rename = os.rename
    rivals = {}

    def racing(src, dst):
        name = os.path.basename(dst)
        if name in rival_ids and name not in rivals:
            os.mkdir(dst)
            rivals[name] = valid_result(name).replace('"seed": 0', '"seed": 0, "rival": true')
            with open(os.path.join(dst, "result.json"), "w") as f:
                f.write(rivals[name])
        return real_rename(src, dst)

    monkeypatch.setattr(store_module.os, "rename", racing)
    return rivals


def test_a_save_that_loses_a_race_with_another_process_writes_nothing(tmp_path, monkeypatch):
    store = ExperimentStore(tmp_path)
    rivals = rename_after_a_rival(monkeypatch, {"raced1"})
    with pytest.raises(ExperimentExistsError, match="never overwritten") as info:
        store.save(sample_result(id="raced1"), sample_weights())
    monkeypatch.undo()
    assert info.value.ids == ["raced1"] and isinstance(info.value.__cause__, OSError)
    assert folders(tmp_path) == ["raced1"]  # no temp folder left
    assert sorted(p.name for p in (tmp_path / "raced1").iterdir()) == ["result.json"]  # the rival's, whole
    assert (tmp_path / "raced1" / "result.json").read_text() == rivals["raced1"]
    assert store.load("raced1").config["rival"] is True


@pytest.mark.parametrize("on_conflict", ["skip", "error"])
def test_an_import_racing_another_process_skips_or_says_what_it_imported(tmp_path, monkeypatch, on_conflict):
    source = ExperimentStore(tmp_path / "a")
    ids = [source.save(sample_result(id=name), sample_weights(i)).id for i, name in enumerate(["first", "second", "third"])]
    archive = tmp_path / "out.zip"
    source.export(ids, archive)
    target = ExperimentStore(tmp_path / "b")
    rename_after_a_rival(monkeypatch, {"second"})
    if on_conflict == "skip":
        assert target.import_(archive, on_conflict="skip") == ["first", "third"]
    else:
        with pytest.raises(ExperimentExistsError) as info:
            target.import_(archive)
        assert info.value.ids == ["second"] and info.value.imported == ["first"]
        message = str(info.value)
        assert "second" in message and "only first had been imported" in message
        assert "nothing was imported" not in message
    monkeypatch.undo()
    expected = ["first", "second", "third"] if on_conflict == "skip" else ["first", "second"]
    assert folders(tmp_path / "b") == expected  # no temp folders
    assert target.load("second").config["rival"] is True  # the rival's experiment, untouched
    assert torch.equal(target.load("first").state_dict()["fc.weight"], sample_weights(0)["fc.weight"])


def test_a_killed_writer_leaves_only_an_ignored_temp_folder(tmp_path):
    store = ExperimentStore(tmp_path)
    kept = store.save(sample_result())
    # What a process killed mid-write (no cleanup ran) leaves behind: a half-written temp folder.
    leftover = tmp_path / ".tmp-deadbeef-abc123"
    leftover.mkdir()
    (leftover / "result.json").write_text('{"kind": "unlea')
    assert [e.id for e in ExperimentStore(tmp_path).list()] == [kept.id]
    old = 1_000_000_000
    os.utime(leftover, (old, old))
    ExperimentStore(tmp_path)  # opening the store sweeps dead leftovers
    assert not leftover.exists()


def test_a_corrupt_folder_is_reported_not_fatal(tmp_path):
    store = ExperimentStore(tmp_path)
    kept = store.save(sample_result())
    (tmp_path / "broken1").mkdir()
    (tmp_path / "broken1" / "result.json").write_text("{not json")
    listed = store.list()
    assert [e.id for e in listed] == [kept.id]
    assert "broken1" in store.problems


def test_references_cannot_be_deleted_and_owners_are_respected(tmp_path):
    store = ExperimentStore(tmp_path)
    reference = store.save(sample_result(kind="original"))
    with pytest.raises(StoreError, match="can't be deleted"):
        store.delete(reference.id)
    mine = store.save(sample_result(owner="session-a"))
    with pytest.raises(StoreError, match="another session"):
        store.delete(mine.id, owner="session-b")
    store.delete(mine.id, owner="session-a")
    with pytest.raises(ExperimentNotFoundError):
        store.load(mine.id)
    assert [e.id for e in store.list()] == [reference.id]


def test_export_import_round_trips_exactly(tmp_path):
    source = ExperimentStore(tmp_path / "a")
    metrics = {"UA": 0.1 + 0.2, "RA": 1.0, "TRA": None, "PS": 1e-17}
    saved = [source.save(sample_result(metrics=metrics), sample_weights(i)) for i in range(2)]
    archive = tmp_path / "out.zip"
    assert source.export([e.id for e in saved], archive) == [e.id for e in saved]
    target = ExperimentStore(tmp_path / "b")
    assert sorted(target.import_(archive)) == sorted(e.id for e in saved)
    for original in saved:
        copy = target.load(original.id)
        assert copy.result == original.result
        assert copy.metrics["UA"] == 0.1 + 0.2
        for key, value in original.state_dict().items():
            assert torch.equal(copy.state_dict()[key], value)
    with pytest.raises(StoreError, match="already has"):
        target.import_(archive)
    assert target.import_(archive, on_conflict="skip") == []


def make_zip(entries: dict) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def manifest(ids):
    return json.dumps({"format": "mucomp-experiments", "ids": ids})


def valid_result(experiment_id):
    return json.dumps({"schema_version": 1, "id": experiment_id, "kind": "unlearned", "created_at": "2025-01-01T00:00:00",
                       "config": {"dataset": "digits", "forget_class": 3, "seed": 0},
                       "metrics": {"UA": 0.5, "RA": 0.5, "TRA": 0.5}})


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"this is not a zip", "not a zip archive"),
        (make_zip({"readme.txt": "hello"}), "no manifest.json"),
        (make_zip({"manifest.json": manifest(["abc"]), "../evil/result.json": valid_result("abc")}), "unexpected entry"),
        (make_zip({"manifest.json": manifest(["abc"]), "abc/run.sh": "rm -rf /"}), "unexpected entry"),
        (make_zip({"manifest.json": manifest(["abc"]), "abc/result.json": "{oops"}), "unreadable"),
        (make_zip({"manifest.json": manifest(["abc"]), "abc/result.json": valid_result("xyz")}), "claims id"),
        (make_zip({"manifest.json": manifest(["abc"]),
                   "abc/result.json": valid_result("abc").replace('"schema_version": 1', '"schema_version": 99')}),
         "schema version"),
        (make_zip({"manifest.json": manifest(["abc"]), "abc/result.json": valid_result("abc"),
                   "abc/model.safetensors": b"\x00" * 64}), "not a valid safetensors"),
        (make_zip({"manifest.json": json.dumps({"format": "other"}), "abc/result.json": valid_result("abc")}),
         "does not describe a mucomp export"),
        (make_zip({"manifest.json": manifest(["abc", "def"]), "abc/result.json": valid_result("abc")}),
         "does not list exactly"),
    ],
)
def test_bad_archives_are_refused_and_nothing_is_written(tmp_path, content, message):
    store = ExperimentStore(tmp_path / "store")
    kept = store.save(sample_result())
    bad = tmp_path / "bad.zip"
    bad.write_bytes(content)
    with pytest.raises(StoreError, match=message):
        store.import_(bad)
    assert folders(tmp_path / "store") == [kept.id]
