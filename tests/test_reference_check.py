"""A loaded Hub reference is checked against what its publishers measured (issue 12)."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from mucomp import reference_check
from mucomp.cli import main as cli_main
from mucomp.data import Scenario
from mucomp.evaluation import Evaluation
from mucomp.models import seeded_model
from mucomp.runner import clear_scenario_cache, prepare_scenario
from mucomp.store import ExperimentStore
from tests.fakedata import fashion_files_table, write_fake_fashion_mnist

ROOT = Path(__file__).resolve().parent.parent
ORIGINAL, RETRAINED = "resnet18_fashionmnist_original.pth", "resnet18_fashionmnist_forget4.pth"


def constant_model(predicted: int) -> dict[str, torch.Tensor]:
    """A Fashion-MNIST ResNet-18 state dict that predicts ``predicted`` for every image."""
    state = seeded_model("resnet18_fmnist", 10, 0).state_dict()
    state["fc.weight"] = torch.zeros_like(state["fc.weight"])
    state["fc.bias"] = torch.nn.functional.one_hot(torch.tensor(predicted), 10).float() * 5
    return state


@pytest.fixture
def published_files(tmp_path, monkeypatch):
    """Fake Fashion-MNIST (50 test images, 5 per class) and two Hub files made here: an Original
    that always says class 0 (test accuracy 0.1) and a Retrained without class 4 that always says
    class 1 (5 of the 45 retained test images right)."""
    home = tmp_path / "home"
    arrays = write_fake_fashion_mnist(home / "data", n_train=60, n_test=50)
    files = tmp_path / "hub"
    files.mkdir()
    torch.save(constant_model(0), files / ORIGINAL)
    torch.save(constant_model(1), files / RETRAINED)
    monkeypatch.setenv("MUCOMP_HOME", str(home))
    monkeypatch.setenv("MUCOMP_REFERENCE_DIR", str(files))
    monkeypatch.setenv("MUCOMP_DEVICE", "cpu")
    monkeypatch.delenv("MUCOMP_DATA_DIR", raising=False)
    clear_scenario_cache()
    with fashion_files_table(arrays):
        yield home
    clear_scenario_cache()


def publish(monkeypatch, original: float, retrained: float) -> None:
    """Replace the shipped table with cards giving these test accuracies."""
    table = {"fashion_mnist_resnet18": {"card_test_accuracy": {ORIGINAL: original, RETRAINED: retrained}}}
    monkeypatch.setattr(reference_check, "published_table", lambda: table)


def test_the_shipped_table_holds_every_hub_file():
    table = reference_check.published_table()
    cifar = table["cifar10_resnet18"]
    assert cifar["card_test_accuracy"]["resnet18_cifar10_full.pth"] == 0.954
    assert set(cifar["comparator_evaluation"]) == {str(k) for k in range(10)}
    figures = reference_check.published_figures("cifar10", "retrained", 3, "resnet18_cifar10_no_cat.pth")
    assert figures == {"card test accuracy": 0.966, "TUA": 0.0, "TRA": 0.966}
    assert len(table["fashion_mnist_resnet18"]["card_test_accuracy"]) == 11
    assert reference_check.published_figures("digits", "original", 0, "x.pth") == {}


def test_check_names_the_figure_that_differs():
    labels = np.repeat(np.arange(10), 10)
    predictions = labels.copy()
    predictions[:3] = 9  # 97 of 100 right
    evaluation = Evaluation("test", np.arange(100), labels, np.eye(10, dtype=np.float32)[predictions], np.zeros((100, 2)))
    assert reference_check.measured_test_accuracy(evaluation, "original", 0) == pytest.approx(0.97)
    assert reference_check.measured_test_accuracy(evaluation, "retrained", 0) == 1.0  # class 0 left out
    check = reference_check.check_reference(
        "cifar10", "original", 0, "resnet18_cifar10_full.pth", evaluation, {"TUA": 0.7, "TRA": 0.953}
    )
    assert not check["matches"] and "TUA 0.700 here, 0.960 in the published comparator" in check["message"]
    assert "normalisation" in check["message"]
    close = reference_check.check_reference(
        "cifar10", "original", 0, "resnet18_cifar10_full.pth", evaluation, {"TUA": 0.955, "TRA": 0.95}
    )
    assert not close["matches"]  # the card's 0.954 vs 0.97 measured: 1.6 points
    assert "card test accuracy 0.970 here, 0.954 in its model card" in close["message"]


def test_matching_files_are_reported_as_reproduced(published_files, monkeypatch, capsys):
    publish(monkeypatch, original=0.10, retrained=1 / 9 + 0.005)
    assert cli_main(["references", "--dataset", "fashion_mnist", "--forget-class", "4", "--json"]) == 0
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert out["original"]["reference_check"]["matches"] and out["retrained"]["reference_check"]["matches"]
    assert out["retrained"]["reference_check"]["figures"][0]["measured"] == pytest.approx(1 / 9)
    assert "mucomp: warning" not in captured.err


def test_files_that_differ_are_flagged_by_the_cli_and_in_the_stored_figures(published_files, monkeypatch, capsys):
    publish(monkeypatch, original=0.9539, retrained=0.9592)  # the real cards
    assert cli_main(["references", "--dataset", "fashion_mnist", "--forget-class", "4"]) == 0
    captured = capsys.readouterr()
    assert "[DIFFERS FROM PUBLISHED]" in captured.out
    assert "resnet18_fashionmnist_original.pth does not reproduce what its publishers measured" in captured.err
    assert "card test accuracy 0.100 here, 0.954 in its model card" in captured.err

    store = ExperimentStore(published_files / "experiments")
    state = prepare_scenario(Scenario("fashion_mnist", 4), store, device="cpu")
    for ref in (state.original, state.retrained):
        check = store.load(ref.experiment_id).result["reference_check"]
        assert check["matches"] is False and check["file"] in (ORIGINAL, RETRAINED)

    # The Home page says so, for both files, beside "ready".
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "Home.py"), default_timeout=60)
    at.query_params.update({"dataset": "fashion_mnist", "forget": "4", "seed": "0"})
    at.run()
    assert not at.exception
    warnings = [w.value for w in at.warning]
    assert sum("does not reproduce what its publishers measured" in w for w in warnings) == 2
    assert any("are ready" in s.value for s in at.success)
