"""What a first-time user of the CLI and the upload meets (issue 31, defects 10, 12 and 13): a
user error is one line saying what to do, ``mucomp summary`` tells scenarios apart, a model of
another architecture is named with what to do, and a broken torch / torchvision pair is said in
plain words with the pip line that fixes it."""

import importlib.abc
import io
import sys

import pytest
import torch

from mucomp.cli import main
from mucomp.environment import TorchvisionMismatchError, import_torchvision, torchvision_fix
from mucomp.models import build_model
from mucomp.specs import DATASETS
from mucomp.uploads import UploadError, load_uploaded_model

ABSENT = "0123456789abcdef"


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def empty_home(tmp_path, monkeypatch):
    monkeypatch.setenv("MUCOMP_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return tmp_path / "home"


@pytest.mark.parametrize("argv, says", [
    (["show", ABSENT], "`mucomp list` shows the stored experiments' ids"),
    (["show", "Not/An/Id"], "`mucomp list` shows the stored experiments' ids"),
    (["delete", ABSENT], "`mucomp list` shows the stored experiments' ids"),
    (["audit", ABSENT], "`mucomp list` shows the stored experiments' ids"),
    (["export", ABSENT, "-o", "out.zip"], "`mucomp list` shows the stored experiments' ids"),
    (["export", "--group", "g-none", "-o", "out.zip"], "`mucomp list --json` shows each experiment's group"),
    (["summary", "--group", "g-none"], "`mucomp list --json` shows each experiment's group"),
    (["import", "missing.zip"], "give the path of a zip made by `mucomp export`"),
    (["reproduce", "missing.zip"], "give a zip made by `mucomp export --bundle`"),
    (["zoo", "pull", "nobody/nothing", "--forget-class", "3"], "use one of"),
    (["run", "--forget-class", "3", "--method", "my_method", "--workers", "1"], "set MUCOMP_PLUGINS to its file"),
    # A device exists: it is not a file, and not "no file" (reading /dev/zero would never end).
    (["import", "/dev/null"], "archive: '/dev/null' is a character device, not a regular file; give the path of a zip"),
    (["reproduce", "/dev/null"], "bundle: '/dev/null' is a character device, not a regular file; give a zip made by"),
    # A free-text filter that names nothing stored is a usage error, in list and summary alike.
    (["summary", "--method", "nope"], "--method: no stored experiment was made with method 'nope' (stored: none)"),
    (["list", "--group", "g-none"], "--group: no stored experiment belongs to group 'g-none' (stored: none); `mucomp list"),
    # Seeds are written with the digits 0-9, as forget sets are (int() reads '1_0' as 10). The
    # option after each is refused too, so a seed read as a number fails fast on another message.
    (["run", "--forget-class", "3", "--method", "ga", "--seed", "²"],
     "--seed: '²' is not a whole number written with the digits 0-9"),
    (["references", "--forget-class", "3", "--data-seed", "1_0", "--arch", "nope"],
     "--data-seed: '1_0' is not a whole number written with the digits 0-9"),
    (["ensemble", "--forget-class", "3", "--method", "ga", "--train-seed", "١", "--n", "2"],
     "--train-seed: '١' is not a whole number written with the digits 0-9"),
    (["run", "--forget-class", "3", "--method", "ga", "--seeds", "1_0", "--epochs", "0"],
     "--seeds: '1_0' is not a seed or a range of seeds: '1_0' is not a whole number written with the digits 0-9"),
    (["run", "--forget-class", "3", "--method", "ga", "--seeds", "0-١", "--epochs", "0"],
     "'١' is not a whole number written with the digits 0-9"),
    (["run", "--forget", "indices:", "--method", "ga", "--workers", "1"],
     "indices: names no file (the path is empty); indices:FILE needs the path of a text file"),
])
def test_a_user_error_is_one_line_saying_what_to_do_without_the_usage_block(empty_home, capsys, argv, says):
    code, out, err = cli(capsys, *argv)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and out == ""
    assert len(lines) == 1 and "usage:" not in err, err
    assert lines[0].startswith(f"mucomp {argv[0]}: error: ") and says in lines[0]


@pytest.mark.parametrize("argv, command, unrecognized", [
    (["list", "--grop", "x"], "list", "--grop x"),
    (["list", "extra"], "list", "extra"),
    (["summary", "extra"], "summary", "extra"),
    (["show", ABSENT, "extra"], "show", "extra"),
    (["references", "--bogus"], "references", "--bogus"),
    (["export", "--bogus", "-o", "x.zip"], "export", "--bogus"),
    (["import", "--bogus", "x"], "import", "--bogus"),
    (["zoo", "list", "--bogus"], "zoo list", "--bogus"),
])
def test_an_unknown_argument_is_refused_under_the_commands_own_usage(empty_home, capsys, argv, command, unrecognized):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2
    assert err.startswith(f"usage: mucomp {command} [-h]") and "usage: mucomp [-h]" not in err, err
    assert err.splitlines()[-1] == f"mucomp {command}: error: unrecognized arguments: {unrecognized}"


def test_summary_rows_name_their_scenario(empty_home, capsys, monkeypatch):
    import mucomp.groups

    def group(gid: str, forget: str, config: dict) -> dict:
        return {"group": gid, "method": "ga", "dataset": "digits", "forget": forget, "config": config, "n": 2,
                "repeats": {}, "apart": {}, "metrics": {"UA": {"mean": 0.5, "half_width": 0.1, "n": 2}}}

    summaries = [group("g-aaaaaaaaaa", "class:3", {"arch": "digits_cnn", "data_seed": 0}),
                 group("g-bbbbbbbbbb", "random:10%", {"arch": "vit_digits", "data_seed": 1}),
                 group("g-cccccccccc", "class:3", {"arch": "digits_cnn", "data_seed": 0})]
    monkeypatch.setattr(mucomp.groups, "group_summaries", lambda entries, group=None, method=None: summaries)
    code, out, err = cli(capsys, "summary")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["data", "set", "forget", "group"]
    rows = [line for line in lines[1:4]]
    assert rows[0].startswith("digits ") and "class:3" in rows[0] and "g-aaaaaaaaaa" in rows[0]
    assert rows[1].startswith("digits ") and "g-cccccccccc" in rows[1]  # one scenario's groups together
    assert rows[2].startswith("digits (vit_digits)") and "random:10% (data seed 1)" in rows[2]


def fake_entries(monkeypatch, rows: list[dict]) -> None:
    """The store lists ``rows`` (listing entries), whatever the filters."""
    from mucomp.store import ExperimentStore

    def entries(self, **filters):
        self.problems = {}
        return rows

    monkeypatch.setattr(ExperimentStore, "entries", entries)


@pytest.mark.parametrize("argv, says", [
    (["list", "--group", "g-typo"], "--group: no stored experiment belongs to group 'g-typo' (stored: g-aaaaaaaaaa)"),
    (["summary", "--group", "g-typo"], "--group: no stored experiment belongs to group 'g-typo' (stored: g-aaaaaaaaaa)"),
    (["summary", "--method", "nope"], "--method: no stored experiment was made with method 'nope' (stored: ga)"),
    (["summary", "--group", "g-aaaaaaaaaa", "--method", "ft"],
     "--method: no stored experiment of the --group given was made with method 'ft' (stored: ga)"),
    (["summary", "--dataset", "digits", "--method", "ft"],
     "--method: no stored experiment of the --dataset given was made with method 'ft' (stored: ga)"),
])
def test_an_unknown_filter_names_the_stored_values(empty_home, capsys, monkeypatch, argv, says):
    fake_entries(monkeypatch, [{"id": "abc", "kind": "unlearned", "group": "g-aaaaaaaaaa",
                                "config": {"dataset": "digits", "method": "ga"}, "metrics": {}}])
    code, out, err = cli(capsys, *argv)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"mucomp {argv[0]}: error: {says}"), err


def test_audit_of_an_unreadable_folder_says_what_show_says(empty_home, capsys):
    (empty_home / "experiments" / "no-result").mkdir(parents=True)  # a folder without result.json
    said = {}
    for argv in (["show", "no-result"], ["show", "no-result", "--json"], ["audit", "no-result"]):
        code, out, err = cli(capsys, *argv)
        assert code == 1 and out == "", (argv, err)
        said[" ".join(argv)] = err.split(" failed: ", 1)[1]
    assert len(set(said.values())) == 1, said
    assert "experiment no-result can't be read: the folder has no result.json" in said["audit no-result"]


def weights_file(state: dict) -> bytes:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def upload_message(state: dict) -> str:
    with pytest.raises(UploadError) as info:
        load_uploaded_model("model.pth", weights_file(state), DATASETS["digits"])
    return str(info.value)


def test_an_upload_of_another_architecture_says_which_and_what_to_do():
    message = upload_message(build_model("vit_digits", 10).state_dict())
    assert "The file holds vit_digits weights: choose the architecture vit_digits on Home" in message

    message = upload_message(build_model("digits_cnn", 7).state_dict())
    assert "2 shapes differ" in message and "another number of classes" in message
    assert "upload a digits_cnn model trained for the 10 classes of" in message

    state = build_model("digits_cnn", 10).state_dict()
    state["fc.bias"] = torch.zeros(7)
    message = upload_message(state)
    assert "1 shape differs: fc.bias (7,)" in message and "shapes differ" not in message

    message = upload_message(build_model("fmnist_cnn", 10).state_dict())
    assert "2 missing keys" in message and "1 shape differs" in message
    assert "Upload the state dict of a digits_cnn model" in message and "choose vit_digits" in message


class BrokenTorchvision(importlib.abc.MetaPathFinder):
    """Fails every torchvision import as a torchvision built for another torch does."""

    def find_spec(self, name, path, target=None):
        if name == "torchvision" or name.startswith("torchvision."):
            raise RuntimeError("operator torchvision::nms does not exist")
        return None


@pytest.fixture
def broken_torchvision(monkeypatch):
    for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
        monkeypatch.delitem(sys.modules, name)  # put back at teardown
    monkeypatch.setattr(sys, "meta_path", [BrokenTorchvision(), *sys.meta_path])


def test_a_broken_torchvision_is_named_with_the_pip_line_that_fixes_it(broken_torchvision, empty_home, capsys):
    with pytest.raises(TorchvisionMismatchError) as info:
        import_torchvision("models")
    message = str(info.value)
    assert f"the installed torch {torch.__version__} and torchvision" in message and "do not match" in message
    assert "pip install" in message and "torchvision==" in message

    code, out, err = cli(capsys, "download", "cifar10")
    assert code == 1 and out == ""
    assert err.startswith("mucomp: download failed: the installed torch") and "pip install" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_the_pip_line_matches_the_torch_build():
    assert torchvision_fix("2.9.0", "0.23.0") == "pip install 'torchvision==0.24.*'"
    assert torchvision_fix("2.9.1+cpu", "0.23.0") == \
        "pip install 'torchvision==0.24.*' --index-url https://download.pytorch.org/whl/cpu"
    # the right series but another build (CUDA against CPU): both reinstalled from one index
    assert torchvision_fix("2.14.1+cu130", "0.29.1+cpu") == ("pip install --force-reinstall torch==2.14.1 "
                                                             "'torchvision==0.29.*' --index-url "
                                                             "https://download.pytorch.org/whl/cu130")
    assert torchvision_fix("2.9.0", None) == "pip install 'torchvision==0.24.*'"
    assert torchvision_fix("3.0.0", "0.30.0") == "pip install --force-reinstall torch==3.0.0 torchvision"
