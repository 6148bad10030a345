"""Sharing against an unhelpful world: a Hub that never answers or sends too much, outputs that are
folders, bundles that try to loosen their own check, writes cut short, a disk that fills up, a
Space visitor pushing someone else's base, and published files that are too large, not finite or
described by a card that is not numeric.

Every server here is local (127.0.0.1, a port of its own); the Hub calls are huggingface_hub's own,
pointed at tests/hub_standin.py or at a socket that accepts and never answers. Each call that could
hang on a broken implementation runs in a thread with a deadline, so a regression fails, not hangs.
"""

import errno
import json
import os
import socket
import stat
import threading
import time
import zipfile

import pytest
import torch
from helpers import private_home

from mucomp.cli import main as cli_main
from mucomp.runner import ExperimentConfig, run_experiment
from mucomp.sharing import read_bundle, write_bundle
from mucomp.store import ExperimentStore, StoreError
from tests.hub_standin import HubStandIn, StoredFile, _commit

pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>' to upload raw bytes:DeprecationWarning")

TOKEN = "hf_standin_write_token"
REPO = "tester/hardening-runs"
DEADLINE_S = 30


@pytest.fixture(scope="module")
def home(tmp_path_factory, digits_references):
    """A private MUCOMP_HOME sharing the session's reference cache."""
    yield from private_home(tmp_path_factory, "hardening-home")


@pytest.fixture(scope="module")
def store(home):
    return ExperimentStore()


@pytest.fixture(scope="module")
def experiment(store):
    return run_experiment(ExperimentConfig("digits", 3, 0, "ft", epochs=1), store)


def copy_of(store, experiment, new_id, **changes):
    """A stored copy of ``experiment`` (same weights) under ``new_id``, with ``changes`` to its result."""
    return store.save(dict(experiment.result, id=new_id, **changes), experiment.state_dict())


@pytest.fixture()
def online(monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # conftest's offline mode: lifted for 127.0.0.1 only
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)  # the stand-in speaks LFS, not Xet


@pytest.fixture()
def hub(monkeypatch, online):
    with HubStandIn({TOKEN: "tester"}) as standin:
        monkeypatch.setenv("HF_ENDPOINT", standin.url)
        monkeypatch.setenv("HF_TOKEN", TOKEN)
        yield standin


def within_deadline(fn, seconds=DEADLINE_S):
    """``(what fn raised or returned, seconds it took)``; fails the test if it runs past ``seconds``."""
    outcome = {}

    def run():
        try:
            outcome["value"] = fn()
        except BaseException as err:  # noqa: BLE001 - handed to the test
            outcome["value"] = err

    start = time.perf_counter()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still running after {seconds} s: it hangs"
    return outcome["value"], time.perf_counter() - start


# --- 1. a Hub that never answers, or sends more than it listed ----------------------------------------
@pytest.fixture()
def silent_hub(monkeypatch, online):
    """A TCP server on 127.0.0.1 that accepts every connection and never sends a byte."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held, stop = [], threading.Event()

    def accept():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.getsockname()[1]}"
    monkeypatch.setenv("HF_ENDPOINT", url)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.setenv("MUCOMP_HUB_TIMEOUT", "1")
    yield url
    stop.set()
    thread.join(5)
    for connection in held:
        connection.close()
    server.close()


def test_pull_and_push_give_up_on_a_hub_that_never_answers(experiment, store, silent_hub, tmp_path, capsys):
    from mucomp.sharing.hub import HubError, pull, push

    expected = f"the Hub at {silent_hub} cannot be reached (no answer within 1 s); check the network or try later"
    err, took = within_deadline(lambda: pull(REPO, ExperimentStore(tmp_path / "target"), endpoint=silent_hub))
    assert isinstance(err, HubError) and expected in str(err), err
    assert took < 10
    # The app's Push path: the same push, with the Space owner's token.
    err, took = within_deadline(lambda: push(REPO, store, [experiment.id], token=TOKEN, endpoint=silent_hub))
    assert isinstance(err, HubError) and expected in str(err), err
    assert took < 10
    capsys.readouterr()
    assert cli_main(["pull", REPO]) == 1
    assert expected in capsys.readouterr().err


def test_pull_stops_reading_a_file_that_sends_more_than_its_listing(experiment, store, hub, tmp_path, monkeypatch):
    from mucomp.sharing.hub import HubError, pull, push

    push(REPO, store, [experiment.id], weights=True, endpoint=hub.url, token=TOKEN)
    sent = []
    handler = hub.server.RequestHandlerClass  # this stand-in's own class (kept-alive connections use it too)
    honest = handler._resolve

    def endless(self, repo_type, repo_id, revision, path):
        if not path.endswith("result.json"):
            return honest(self, repo_type, repo_id, revision, path)
        self.send_response(200)  # no Content-Length: the body lasts until the connection closes
        self.send_header("Content-Type", "application/octet-stream")
        self.end_headers()
        self.close_connection = True
        try:
            for _ in range(512):  # at most 512 MB, then it stops (were the reader never to)
                self.wfile.write(b"x" * 1024**2)
                sent.append(1)
        except OSError:
            return

    monkeypatch.setattr(handler, "_resolve", endless)
    target = ExperimentStore(tmp_path / "target")
    err, took = within_deadline(lambda: pull(REPO, target, endpoint=hub.url))
    assert isinstance(err, HubError), err
    assert f"{experiment.id}/result.json on {REPO} sends more than the" in str(err)
    assert "bytes its listing gives; nothing was imported" in str(err)
    assert len(sent) < 64 and took < 10  # the reader hung up after the listed size, not at the end
    assert target.ids() == []


def test_pull_to_a_folder_is_refused_before_anything_is_downloaded(hub, tmp_path, capsys):
    folder = tmp_path / "somewhere"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    capsys.readouterr()
    assert cli_main(["pull", REPO, "-o", str(folder)]) == 2
    err = capsys.readouterr().err
    assert f"-o {folder} is a folder that holds files" in err and f"-o {folder / 'bundle.zip'}" in err
    assert "Nothing was downloaded" in err
    assert cli_main(["pull", REPO, "-o", str(tmp_path / "absent" / "b.zip")]) == 2
    assert "does not exist; create it first" in capsys.readouterr().err
    assert hub.requests == []  # not one call to the Hub
    assert [p.name for p in folder.iterdir()] == ["notes.txt"]


def not_regular_files(folder):
    """``{what: path}`` of a FIFO, a symbolic link to a regular file, a folder and (where this
    process may make one) a character device (a copy of /dev/null), all in ``folder``."""
    paths = {"a named pipe (FIFO)": folder / "pipe", "a symbolic link": folder / "link", "a folder": folder / "dir",
             "a character device": folder / "null"}
    os.mkfifo(paths["a named pipe (FIFO)"])
    (folder / "target.zip").write_bytes(b"mine")
    paths["a symbolic link"].symlink_to(folder / "target.zip")
    paths["a folder"].mkdir()
    try:
        os.mknod(paths["a character device"], 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except PermissionError:  # no CAP_MKNOD here: the other kinds still make the point
        del paths["a character device"]
    return paths


def test_export_and_pull_refuse_an_output_that_is_not_a_regular_file(experiment, tmp_path, capsys):
    paths = not_regular_files(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    capsys.readouterr()
    for what, path in paths.items():
        for argv in (["export", experiment.id, "-o", str(path)], ["export", "--bundle", experiment.id, "-o", str(path)],
                     ["pull", REPO, "-o", str(path)]):
            assert cli_main(argv) == 2, argv
            err = capsys.readouterr().err
            assert f"-o {path} is {what}" in err, err  # pull names a folder in words of its own
            assert "choose a file path" in err or (argv[0], what) == ("pull", "a folder"), err
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written, no .partial left
    assert paths["a symbolic link"].is_symlink() and (tmp_path / "target.zip").read_bytes() == b"mine"
    assert paths["a named pipe (FIFO)"].is_fifo() and list(paths["a folder"].iterdir()) == []
    assert cli_main(["export", experiment.id, "-o", str(tmp_path / "target.zip")]) == 0  # a file: replaced
    assert zipfile.is_zipfile(tmp_path / "target.zip")


# --- 3. a bundle can't loosen its own check -------------------------------------------------------------
def rewrite(source, destination, change):
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(destination, "w") as dst:
        for info in src.infolist():
            dst.writestr(info.filename, change(info.filename, src.read(info)))
    return destination


def test_a_bundle_that_claims_a_made_up_environment_is_refused(experiment, store, tmp_path, capsys):
    from mucomp.sharing.bundle import BundleEntry, run_environment
    from mucomp.sharing.reproduce import _tolerance

    honest = tmp_path / "honest.zip"
    write_bundle(store, [experiment.id], honest)
    assert experiment.result["environment"]  # the run recorded where it ran
    made_up = {**experiment.result["environment"], "cpu": "a made-up CPU", "torch": "0.0.1"}

    def claim(name, data):
        if name != "manifest.json":
            return data
        manifest = json.loads(data)
        entry = manifest["bundle"]["experiments"][experiment.id]
        entry.update(environment_recorded="export", environment=made_up)
        return json.dumps(manifest).encode()

    loose = rewrite(honest, tmp_path / "loose.zip", claim)
    with pytest.raises(StoreError, match="says its environment was recorded at export, but its result.json records"):
        read_bundle(loose)
    capsys.readouterr()
    assert cli_main(["reproduce", str(loose)]) == 1
    assert "the bundle was edited" in capsys.readouterr().err
    # And the tolerance follows the result's own environment, whatever a manifest says.
    checked = read_bundle(honest).entries[experiment.id]
    lying = BundleEntry(checked.id, {**checked.manifest, "environment": made_up}, checked.result,
                        checked.result_bytes, checked.model_bytes)
    assert run_environment(lying) == (experiment.result["environment"], True)
    assert _tolerance(lying, None) == _tolerance(checked, None)
    assert not any(bundled in ("a made-up CPU", "0.0.1") for _, bundled, _ in _tolerance(lying, None)[2])


# --- 4. a write cut short leaves the output as it was -----------------------------------------------------
def test_an_interrupted_export_leaves_no_truncated_file(experiment, store, tmp_path, monkeypatch, capsys):
    out = tmp_path / "runs.zip"
    write_bundle(store, [experiment.id], out)
    before = out.read_bytes()
    real_write = zipfile.ZipFile.write

    def killed(self, *args, **kwargs):  # the process is stopped after the manifest went in
        raise KeyboardInterrupt

    monkeypatch.setattr(zipfile.ZipFile, "write", killed)
    with pytest.raises(KeyboardInterrupt):
        write_bundle(store, [experiment.id], out)
    assert out.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["runs.zip"]
    fresh = tmp_path / "fresh.zip"
    with pytest.raises(KeyboardInterrupt):
        write_bundle(store, [experiment.id], fresh)
    assert not fresh.exists()

    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(zipfile.ZipFile, "write", full)
    assert cli_main(["export", "--bundle", experiment.id, "-o", str(out)]) == 1
    assert cli_main(["export", experiment.id, "-o", str(out)]) == 1
    assert out.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["runs.zip"]
    monkeypatch.setattr(zipfile.ZipFile, "write", real_write)
    assert cli_main(["export", "--bundle", experiment.id, "-o", str(out)]) == 0
    assert read_bundle(out).ids == [experiment.id]


# --- 5. a disk that fills up during an import -------------------------------------------------------------
def test_a_full_disk_during_an_import_says_what_was_stored(experiment, store, tmp_path, monkeypatch, capsys):
    twin = copy_of(store, experiment, "hardening-twin")
    archive = tmp_path / "two.zip"
    try:
        store.export([experiment.id, twin.id], archive)
    finally:
        store.delete(twin.id)
    calls = []
    real = ExperimentStore._write_folder

    def second_fails(self, experiment_id, *args, **kwargs):
        calls.append(experiment_id)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, experiment_id, *args, **kwargs)

    monkeypatch.setattr(ExperimentStore, "_write_folder", second_fails)
    monkeypatch.setenv("MUCOMP_HOME", str(tmp_path / "other-home"))
    capsys.readouterr()
    assert cli_main(["import", str(archive)]) == 1
    err = capsys.readouterr().err
    assert "is full (No space left on device)" in err
    assert f"1 experiment(s) were stored before it did ({experiment.id}; they are complete)" in err
    assert f"{twin.id} could not be written" in err and "--skip-existing" in err
    assert ExperimentStore().ids() == [experiment.id]  # the first stays, complete; the second left nothing
    monkeypatch.setattr(ExperimentStore, "_write_folder", real)
    assert cli_main(["import", str(archive), "--skip-existing"]) == 0
    assert ExperimentStore().ids() == sorted([experiment.id, twin.id])


# --- 6. on a Space, push only what this browser made ----------------------------------------------------
def test_a_space_push_leaves_out_a_base_another_session_made(experiment, store, hub, tmp_path, monkeypatch):
    from mucomp.sharing.hub import HubError, pull, push

    theirs = copy_of(store, experiment, "hardening-theirs", owner="alice")
    mine = copy_of(store, experiment, "hardening-mine", owner="bob", config={**experiment.config, "base": theirs.id})
    try:
        monkeypatch.setenv("SPACE_ID", "tester/mucomp")
        pushed = push(REPO, store, [mine.id], token=TOKEN, endpoint=hub.url)  # what the Screen page calls
        assert pushed.ids == [mine.id]
        assert any(w.startswith(f"{theirs.id} was left out: another browser session made it") and mine.id in w
                   for w in pushed.warnings), pushed.warnings
        files = hub.files(REPO)
        assert f"{mine.id}/result.json" in files and not any(p.startswith(f"{theirs.id}/") for p in files)
        with pytest.raises(HubError, match=f"another browser session made {theirs.id}"):
            push(REPO, store, [theirs.id], token=TOKEN, endpoint=hub.url, owner="bob")
        monkeypatch.delenv("SPACE_ID")  # locally, the user's own token: everything, bases included
        assert push(REPO, store, [mine.id], token=TOKEN, endpoint=hub.url).ids == [theirs.id, mine.id]
        pulled = pull(REPO, ExperimentStore(tmp_path / "target"), output=tmp_path / "b.zip", endpoint=hub.url)
        assert pulled.written == str(tmp_path / "b.zip") and read_bundle(tmp_path / "b.zip").ids == [theirs.id, mine.id]
        assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".partial")]  # renamed into place
    finally:
        store.delete(mine.id)
        store.delete(theirs.id)


# --- 7. published files and cards -------------------------------------------------------------------------
def test_a_repo_manifest_with_a_non_numeric_metric_is_named(experiment, store, hub, tmp_path):
    from mucomp.sharing.hub import HubError, pull, push

    push(REPO, store, [experiment.id], weights=True, endpoint=hub.url, token=TOKEN)
    repo = hub.repo(REPO)
    files = repo.head.files
    block = json.loads(files[f"{experiment.id}/bundle.json"].content)
    manifest = block["experiments"].pop(experiment.id)
    other = "someone-else"
    block["experiments"][other] = {**manifest, "id": other, "metrics": {**manifest["metrics"], "UA": "abc"}}
    result = json.loads(files[f"{experiment.id}/result.json"].content)
    repo.commits.append(_commit(repo.head, "theirs", {
        **files, f"{other}/bundle.json": StoredFile(json.dumps(block).encode(), False),
        f"{other}/result.json": StoredFile(json.dumps(dict(result, id=other)).encode(), False)}))
    pushed = push(REPO, store, [experiment.id], endpoint=hub.url, token=TOKEN)  # the card is made all the same
    assert any(f"{other} on {REPO} is left off the card" in w and "the metric UA is 'abc', not a number" in w
               for w in pushed.warnings), pushed.warnings
    with pytest.raises(HubError, match=f"{other}/bundle.json: the metric UA is 'abc', not a number"):
        pull(REPO, ExperimentStore(tmp_path / "target"), endpoint=hub.url)


def test_a_model_card_value_that_is_not_a_number_is_named():
    from mucomp.sharing import zoo

    card = {"3": {"forget_test_accuracy": "n/a", "retain_test_accuracy": 0.9}}
    with pytest.raises(zoo.ZooError, match="model card value forget_test_accuracy of someone/models, class 3, is 'n/a'"):
        entry = zoo.PublishedModel("someone/models", "X", "x_{k}.pth", "cifar10", "-", card)
        zoo.published_check(entry, 3, {"TUA": 0.0, "TRA": 0.9})
    with pytest.raises(zoo.ZooError, match="retain_test_accuracy"):
        zoo.PublishedModel("someone/models", "X", "x_{k}.pth", "cifar10", "-",
                           {"3": {"forget_test_accuracy": 0.0, "retain_test_accuracy": 93.1}})
    assert all(entry.published for entry in zoo.catalogue())  # the shipped table passes


def test_a_checkpoint_that_unpacks_too_far_is_refused_before_torch_reads_it(tmp_path, monkeypatch):
    from mucomp import uploads
    from mucomp.references import load_checkpoint

    monkeypatch.setattr(uploads, "MAX_UPLOAD_BYTES", 1)  # the limit is then twice the digits CNN: 1.2 MB
    bomb = tmp_path / "cifar10_resnet18_X_3.pth"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as archive, archive.open("data.pkl", "w") as f:
        for _ in range(8):
            f.write(b"\0" * 1024**2)
    assert bomb.stat().st_size < 100_000
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("torch.load saw the file"))
    with pytest.raises(uploads.UploadError, match="unpacks to more than 1 MB"):
        load_checkpoint(bomb, "digits_cnn", 10)


def test_non_finite_published_weights_are_refused_before_evaluation(tmp_path, monkeypatch):
    import mucomp.experiment
    from mucomp.data import Scenario
    from mucomp.models import seeded_model
    from mucomp.references import load_checkpoint
    from mucomp.sharing import zoo

    state = seeded_model("resnet18_cifar", 10, 0).state_dict()
    state["fc.bias"][2] = float("nan")
    torch.save(state, tmp_path / "cifar10_resnet18_SSD_3.pth")
    monkeypatch.setenv("MUCOMP_REFERENCE_DIR", str(tmp_path))
    monkeypatch.setattr(mucomp.experiment, "store_custom_model", lambda *a, **k: pytest.fail("it was evaluated"))
    with pytest.raises(ValueError, match="the weights hold NaN or infinite values \\(at fc.bias\\)"):
        zoo.pull("Yurim0507/Selective_Synapse_Dampening", Scenario("cifar10", 3, 0), ExperimentStore(tmp_path / "s"))
    small = seeded_model("digits_cnn", 10, 0).state_dict()
    key = next(k for k, v in small.items() if v.is_floating_point())
    small[key].view(-1)[0] = float("inf")
    torch.save(small, tmp_path / "inf.pth")
    with pytest.raises(ValueError, match=f"inf.pth: the weights hold NaN or infinite values \\(at {key}\\)"):
        load_checkpoint(tmp_path / "inf.pth", "digits_cnn", 10)


def test_a_terminated_export_removes_its_temporary_file(experiment, store, tmp_path, monkeypatch, capsys):
    # SIGTERM (kill, a scheduler) ends the command as Ctrl-C does: nothing half-written is left.
    import os
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signals reach only the main thread")
    out = tmp_path / "runs.zip"

    def terminated(self, *args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(zipfile.ZipFile, "write", terminated)
    previous = signal.getsignal(signal.SIGTERM)
    assert cli_main(["export", "--bundle", experiment.id, "-o", str(out)]) == 143
    assert list(tmp_path.iterdir()) == [] and "terminated" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGTERM) is previous


# --- 8. archives that are damaged or hold entries outside the layout -----------------------------------
def a_zip(entries: dict[str, bytes]) -> bytes:
    """The bytes of a zip holding ``entries`` (names as given: zipfile keeps ``..`` and a leading ``/``)."""
    import io

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


EXPORT_MANIFEST = json.dumps({"format": "mucomp-experiments", "ids": []}).encode()


@pytest.mark.parametrize("name, data", [
    ("cut-short.zip", a_zip({"manifest.json": EXPORT_MANIFEST, "abc/result.json": b"{}" * 200})[:120]),
    ("not-a-zip.zip", b"this text was renamed to .zip"),
    ("export", a_zip({"manifest.json": EXPORT_MANIFEST})[:40]),  # no .zip suffix: the PK signature says it
    ("empty-end-record.bin", b"PK\x05\x06" + b"\0" * 10),
])
def test_a_damaged_zip_is_reported_as_a_zip_not_as_comparator_json(tmp_path, monkeypatch, capsys, name, data):
    monkeypatch.setenv("MUCOMP_HOME", str(tmp_path / "home"))
    path = tmp_path / name
    path.write_bytes(data)
    assert cli_main(["import", str(path)]) == 1
    err = capsys.readouterr().err
    assert "not a zip archive of mucomp experiments" in err and "nothing was imported" in err, err
    assert "comparator" not in err and "JSON" not in err and "UTF-8" not in err, err
    assert "Import the zip `mucomp export` wrote" in err


@pytest.mark.parametrize("entry", ["../../x", "/abs/x", "__MACOSX/._manifest.json", "abc/../../x"])
def test_an_entry_outside_the_layout_is_named_by_import_as_by_reproduce(tmp_path, monkeypatch, capsys, entry):
    monkeypatch.setenv("MUCOMP_HOME", str(tmp_path / "home"))
    path = tmp_path / "repacked.zip"
    path.write_bytes(a_zip({"manifest.json": EXPORT_MANIFEST, entry: b"x"}))
    for command in ("import", "reproduce"):
        assert cli_main([command, str(path)]) == 1
        err = capsys.readouterr().err
        assert f"unexpected entry {entry!r} in the archive" in err and "nothing was imported" in err, (command, err)
        assert "not a valid experiment id" not in err
    assert ExperimentStore().ids() == []
