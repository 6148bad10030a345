"""Published unlearned models (mucomp.sharing.zoo): pulled offline from a local folder in the Hub's file
format, stored as Published experiments, listed on Screen, checked against the cards."""

import json

import pytest
import torch

from mucomp.cli import main as cli_main
from mucomp.compare import experiment_table, reference_check_warnings
from mucomp.data import clear_dataset_cache
from mucomp.models import seeded_model
from mucomp.runner import clear_scenario_cache
from mucomp.sharing import zoo
from mucomp.store import ExperimentStore
from tests.fakedata import cifar_md5_table, write_fake_cifar10

SSD = "Yurim0507/Selective_Synapse_Dampening"


def constant_model(predicted: int) -> dict[str, torch.Tensor]:
    """A CIFAR ResNet-18 state dict that predicts ``predicted`` for every image."""
    state = seeded_model("resnet18_cifar", 10, 0).state_dict()
    state["fc.weight"] = torch.zeros_like(state["fc.weight"])
    state["fc.bias"] = torch.nn.functional.one_hot(torch.tensor(predicted), 10).float() * 5
    return state


@pytest.fixture(scope="module")
def cifar_files(tmp_path_factory):
    """Fake CIFAR-10 (60 train, 40 test images) and, in a local folder laid out as the Hub
    files are named, the two references of class 3 (cat) and a fake published SSD file that
    always answers "airplane"."""
    tmp_path = tmp_path_factory.mktemp("zoo")
    home = tmp_path / "home"
    arrays = write_fake_cifar10(home / "data", n_train=60, n_test=40)
    files = tmp_path / "hub"
    files.mkdir()
    torch.save(constant_model(0), files / "resnet18_cifar10_full.pth")
    torch.save(constant_model(1), files / "resnet18_cifar10_no_cat.pth")
    torch.save(constant_model(0), files / "cifar10_resnet18_SSD_3.pth")
    patch = pytest.MonkeyPatch()  # module scope: the references are evaluated once for both tests
    patch.setenv("MUCOMP_HOME", str(home))
    patch.setenv("MUCOMP_REFERENCE_DIR", str(files))
    patch.setenv("MUCOMP_DEVICE", "cpu")
    clear_dataset_cache()
    clear_scenario_cache()
    with cifar_md5_table(arrays["md5"]):
        yield home
    patch.undo()
    clear_dataset_cache()
    clear_scenario_cache()


def test_the_table_lists_every_known_repository_with_the_cards_figures():
    repos = {entry.repo: entry for entry in zoo.catalogue()}
    assert set(repos) == {"Yurim0507/SALUN", SSD, "Yurim0507/CF-k", "Yurim0507/AdvNegGrad"}
    ssd = repos[SSD]
    assert ssd.file_for(3) == "cifar10_resnet18_SSD_3.pth" and ssd.method == "SSD"
    assert ssd.published["3"] == {"forget_test_accuracy": 0.0, "retain_test_accuracy": 0.9}
    assert all(len(entry.published) == 10 for entry in repos.values())
    with pytest.raises(zoo.ZooError, match="not in mucomp's table"):
        zoo.find("someone/else")


def test_cli_zoo_list(capsys):
    assert cli_main(["zoo", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [e["repo"] for e in listed][:2] == ["Yurim0507/SALUN", SSD]


def test_a_published_file_is_pulled_stored_listed_and_its_check_fires(cifar_files, capsys):
    assert cli_main(["zoo", "pull", SSD, "--dataset", "cifar10", "--forget-class", "cat", "--json"]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert summary["source"] == f"{SSD}/cifar10_resnet18_SSD_3.pth"
    assert summary["TUA"] == 0.0 and summary["TRA"] == pytest.approx(4 / 36)
    check = summary["published_check"]
    assert not check["matches"] and "TRA 0.111 here, 0.900 in its model card" in check["message"]
    assert "does not reproduce what its publishers measured" in captured.err

    store = ExperimentStore(cifar_files / "experiments")
    published = [e for e in store.list() if e.kind == "published"]
    assert [e.id for e in published] == [summary["id"]]
    stored = published[0]
    assert stored.config["published_method"] == "SSD" and "lambda 1.0" in stored.config["recipe"]
    table = experiment_table(store.list(), [f"c{k}" for k in range(10)])
    row = table.set_index("ID").loc[summary["id"]]
    assert row["Type"].startswith("Published") and row["Method"] == "SSD (published)"
    assert reference_check_warnings([stored]) == [check["message"]]


def test_a_matching_file_passes_as_a_job_and_a_wrong_data_set_is_refused(cifar_files, monkeypatch, capsys):
    from mucomp.data import Scenario
    from mucomp.execution import PullPublished
    from mucomp.execution.execute import execute

    entry = zoo.find(SSD)
    agreeing = zoo.PublishedModel(**{**entry.as_dict(), "published": {
        "3": {"forget_test_accuracy": 0.0, "retain_test_accuracy": 4 / 36}}})
    monkeypatch.setattr(zoo, "catalogue", lambda: (agreeing,))
    # The Build page's button submits this request: the worker prepares the references and pulls.
    experiment_id, summary = execute(PullPublished(Scenario("cifar10", 3), SSD), progress=lambda *a, **k: None,
                                     cancel=lambda: False, owner="a" * 32)
    stored = ExperimentStore(cifar_files / "experiments").load(experiment_id)
    assert stored.kind == "published" and stored.result["published_check"]["matches"]
    assert stored.result["owner"] == "a" * 32 and summary["TRA"] == pytest.approx(4 / 36)
    assert cli_main(["zoo", "pull", SSD, "--forget-class", "3"]) == 2  # digits: not what the repo holds
    assert "--dataset cifar10" in capsys.readouterr().err
