"""Fashion-MNIST from its official files: where they are found, what is checked, what is refused.

The real files come from Debian's package ``dataset-fashion-mnist`` (``.ci/run`` installs it); the
tests that need them are skipped, saying why, where it is not installed. Damaged files are made
from the real ones (truncated, changed) or written in the real IDX format.
"""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest

from mucomp.cli import main as cli_main
from mucomp.data import DatasetUnavailableError, clear_dataset_cache, fashion, load_dataset
from tests.fakedata import fashion_files_table, write_fake_fashion_mnist

DEBIAN = fashion.DEBIAN_DIR
needs_debian = pytest.mark.skipif(
    not all((DEBIAN / f"{name}.gz").is_file() for name in fashion.FILES),
    reason=f"Debian's dataset-fashion-mnist is not installed ({DEBIAN}); apt-get install dataset-fashion-mnist",
)


@pytest.fixture(autouse=True)
def fresh(monkeypatch, tmp_path):
    monkeypatch.setenv("MUCOMP_HOME", str(tmp_path / "home"))
    monkeypatch.delenv(fashion.DATA_DIR_ENV, raising=False)
    monkeypatch.delenv("MUCOMP_OFFLINE", raising=False)
    clear_dataset_cache()
    yield
    clear_dataset_cache()


@needs_debian
def test_the_debian_files_load_as_the_official_data_set():
    data = load_dataset("fashion_mnist", download=False)
    assert (len(data.train), len(data.test)) == (60_000, 10_000)
    assert data.train.images_np.shape == (60_000, 1, 28, 28) and data.train.images_np.dtype == np.uint8
    assert np.bincount(data.train.labels_np).tolist() == [6_000] * 10
    assert np.bincount(data.test.labels_np).tolist() == [1_000] * 10
    assert data.root == DEBIAN and "dataset-fashion-mnist" in data.where
    assert "torch" not in data.where  # read with numpy alone


@needs_debian
def test_mucomp_data_dir_wins_and_takes_both_layouts(tmp_path, monkeypatch, capsys):
    flat = tmp_path / "flat"  # the four .gz files directly
    flat.mkdir()
    for name in fashion.FILES:
        shutil.copy(DEBIAN / f"{name}.gz", flat / f"{name}.gz")
    monkeypatch.setenv(fashion.DATA_DIR_ENV, str(flat))
    assert load_dataset("fashion_mnist", download=False).root == flat
    raw = tmp_path / "tv" / "FashionMNIST" / "raw"  # torchvision's layout, uncompressed
    raw.mkdir(parents=True)
    for name in fashion.FILES:
        (raw / name).write_bytes(gzip.decompress((DEBIAN / f"{name}.gz").read_bytes()))
    monkeypatch.setenv(fashion.DATA_DIR_ENV, str(tmp_path / "tv"))
    clear_dataset_cache()
    data = load_dataset("fashion_mnist", download=False)
    assert data.root == tmp_path / "tv" and len(data.train) == 60_000
    assert cli_main(["download", "fashion_mnist"]) == 0
    assert f"read from ${fashion.DATA_DIR_ENV} ({tmp_path / 'tv'})" in capsys.readouterr().out


@needs_debian
@pytest.mark.parametrize("damage", ["truncated", "changed", "magic", "foreign"])
def test_a_damaged_file_is_refused_with_its_path_and_nothing_is_stored(tmp_path, monkeypatch, capsys, damage):
    folder = tmp_path / "data"
    folder.mkdir()
    for name in fashion.FILES:
        shutil.copy(DEBIAN / f"{name}.gz", folder / f"{name}.gz")
    target = folder / "train-labels-idx1-ubyte.gz"
    content = gzip.decompress(target.read_bytes())
    if damage == "truncated":
        target.write_bytes(target.read_bytes()[:-100])  # a cut download: gzip's own check fails
    elif damage == "changed":
        target.write_bytes(gzip.compress(content[:-1] + bytes([(content[-1] + 1) % 10])))  # one label
    elif damage == "magic":
        target.write_bytes(gzip.compress(b"\x00\x00\x08\x03" + content[4:]))
    else:
        target.write_bytes(b"not a gzip file at all")
    monkeypatch.setenv(fashion.DATA_DIR_ENV, str(folder))
    with pytest.raises(DatasetUnavailableError, match=str(target)):
        load_dataset("fashion_mnist", download=False)
    code = cli_main(["references", "--dataset", "fashion_mnist", "--arch", "fmnist_cnn", "--forget-class", "0"])
    err = capsys.readouterr().err
    assert code == 1 and str(target) in err and "dataset-fashion-mnist" in err
    home = Path(tmp_path / "home")
    assert not (home / "references").exists() or not any((home / "references").rglob("*.safetensors"))
    assert not (home / "experiments").exists() or not any((home / "experiments").iterdir())


def test_a_folder_with_only_some_files_names_the_missing_ones(tmp_path, monkeypatch):
    arrays = write_fake_fashion_mnist(tmp_path / "part")
    (tmp_path / "part" / "FashionMNIST" / "raw" / "t10k-labels-idx1-ubyte").unlink()
    monkeypatch.setenv(fashion.DATA_DIR_ENV, str(tmp_path / "part"))
    with fashion_files_table(arrays), pytest.raises(DatasetUnavailableError, match="t10k-labels-idx1-ubyte"):
        load_dataset("fashion_mnist", download=False)


def test_offline_without_any_copy_says_where_it_looked_and_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setattr(fashion, "DEBIAN_DIR", tmp_path / "no-debian")
    with pytest.raises(DatasetUnavailableError) as info:
        load_dataset("fashion_mnist", download=False)
    message = str(info.value)
    assert "apt-get install dataset-fashion-mnist" in message and "mucomp download fashion_mnist" in message
    assert str(tmp_path / "no-debian") in message


def test_labels_outside_the_ten_classes_are_refused(tmp_path):
    arrays = write_fake_fashion_mnist(tmp_path)
    bad = arrays["train"][1].copy()
    bad[3] = 11
    path = tmp_path / "FashionMNIST" / "raw" / "train-labels-idx1-ubyte"
    from tests.fakedata import write_idx

    write_idx(path, bad)
    with fashion_files_table({**arrays, "train": (arrays["train"][0], bad)}), \
            pytest.raises(DatasetUnavailableError, match="labels outside 0-9"):
        load_dataset("fashion_mnist", root=tmp_path, download=False)


# ---------------------------------------------------------------------------------------------
# The CPU scenario: its cost, stated before any work


def test_fmnist_cnn_forward_flops_are_the_ones_the_estimate_uses():
    import torch

    from mucomp.models import build_model
    from mucomp.recipes import TRAINING_SPEEDS

    model = build_model("fmnist_cnn", 10).eval()
    flops = []

    def count(module, inputs, output):
        if isinstance(module, torch.nn.Conv2d):
            kernel = module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1]
            flops.append(2 * kernel * output.numel())  # one multiply-add per kernel weight per output
        elif isinstance(module, torch.nn.Linear):
            flops.append(2 * module.in_features * output.numel())

    for module in model.modules():
        module.register_forward_hook(count)
    with torch.no_grad():
        model(torch.zeros(1, 1, 28, 28))
    assert sum(flops) / 1e6 == pytest.approx(TRAINING_SPEEDS["fmnist_cnn"].forward_mflop, rel=2e-3)


def test_the_reference_time_is_estimated_for_the_cpu_scenario_only():
    from mucomp.recipes import expected_reference_seconds
    from mucomp.specs import ARCH_LABELS, DATASETS

    full = expected_reference_seconds("fashion_mnist", "fmnist_cnn", 60_000, 54_000, 10_000)
    half = expected_reference_seconds("fashion_mnist", "fmnist_cnn", 30_000, 27_000, 5_000)
    assert 10 < full < 3_600 and half == pytest.approx(full / 2)  # training cost is linear in the images
    assert expected_reference_seconds("fashion_mnist", "resnet18_fmnist", 60_000, 54_000, 10_000) is None
    assert all(arch in ARCH_LABELS for spec in DATASETS.values() for arch in spec.archs)
    assert "no network" in ARCH_LABELS["fmnist_cnn"] and "published" in ARCH_LABELS["resnet18_fmnist"]


@needs_debian
def test_home_offers_the_cpu_scenario_and_states_its_reference_time():
    from streamlit.testing.v1 import AppTest

    from mucomp.data import Scenario

    at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "Home.py"), default_timeout=60)
    at.run()
    at.selectbox(key="home_dataset").set_value("fashion_mnist").run()
    assert at.selectbox(key="home_arch").options == ["resnet18_fmnist: ResNet-18 from published checkpoints "
                                                     "(a network; a GPU advised)",
                                                     "fmnist_cnn: CPU-sized CNN trained here in minutes (no network, no GPU)"]
    at.selectbox(key="home_arch").set_value("fmnist_cnn").run()
    assert not at.exception
    assert at.session_state["mucomp_scenario"] == Scenario("fashion_mnist", 3, 0, arch="fmnist_cnn")  # the class kept
    notes = [block.value for block in at.info]
    assert any("about" in note and "min on this machine" in note and "60,000 images" in note for note in notes), notes


def test_every_built_in_method_has_fmnist_cnn_defaults_each_with_its_source():
    from mucomp.methods import BUILTIN_METHODS, get_method
    from mucomp.methods.sources import FMNIST_CNN_CHECKED, FMNIST_CNN_TUNED

    for name in BUILTIN_METHODS:
        if name == "retrain":  # Retrain follows the references' recipe
            continue
        method = get_method(name)
        defaults = method.defaults_for("fashion_mnist", "fmnist_cnn")
        sources = method.sources_for("fashion_mnist", "fmnist_cnn")
        assert set(defaults) <= set(sources), (name, set(defaults) - set(sources))
        own = [text for text in sources.values() if FMNIST_CNN_TUNED in text or FMNIST_CNN_CHECKED in text]
        assert own, f"{name}: no fmnist_cnn default is tuned or checked on fmnist_cnn"
        # What the tuning changed is cited to the tuning, what it kept to the CIFAR-10 recipe reused.
        cifar = method.defaults_for("fashion_mnist")
        for param, value in defaults.items():
            if value != cifar[param]:
                assert sources[param] == FMNIST_CNN_TUNED, (name, param)


@needs_debian
def test_u_lira_states_its_cost_before_it_starts():
    from mucomp.audits.ulira import DEFAULT_HELD_OUT, DEFAULT_SHADOWS
    from mucomp.data import Scenario
    from mucomp.recipes import expected_reference_seconds
    from mucomp.ui.widgets import ulira_time_note

    scenario = Scenario("fashion_mnist", 0, 0, arch="fmnist_cnn")
    pairs = DEFAULT_SHADOWS + DEFAULT_HELD_OUT
    note = ulira_time_note(scenario, {"metrics": {"RT": 30.0}})
    per_pair = expected_reference_seconds("fashion_mnist", "fmnist_cnn", 60_000, 54_000, 10_000) + 30.0
    assert f"trains {pairs} shadow pairs" in note
    assert f"about {round(pairs * per_pair / 60)} min on this machine" in note and "30 s" in note
    assert "two minutes" in ulira_time_note(Scenario("digits", 3, 0), {"metrics": {"RT": 1.0}})
