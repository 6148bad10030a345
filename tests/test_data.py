import warnings

import numpy as np
import pytest
import torch

from mucomp.data import (
    DATASETS,
    DatasetUnavailableError,
    Scenario,
    balanced_subset,
    clear_dataset_cache,
    load_dataset,
    seeded_rng,
)
from tests.fakedata import cifar_md5_table, fashion_files_table, write_fake_cifar10, write_fake_fashion_mnist


def test_digits_split_is_fixed_stratified_and_uint8():
    data = load_dataset("digits")
    assert len(data.train) + len(data.test) == 1797
    assert len(data.test) == 450
    assert data.train.images.dtype == torch.uint8 and data.train.images.shape[1:] == (1, 8, 8)
    train_share = np.bincount(data.train.labels_np, minlength=10) / len(data.train)
    test_share = np.bincount(data.test.labels_np, minlength=10) / len(data.test)
    assert np.abs(train_share - test_share).max() < 0.01  # stratified
    clear_dataset_cache()
    again = load_dataset("digits")
    assert torch.equal(again.train.images, data.train.images)
    assert torch.equal(again.test.labels, data.test.labels)


def test_batch_normalises_with_the_spec_statistics():
    data = load_dataset("digits")
    images, labels = data.train.batch(np.array([0, 5]))
    expected = (data.train.images[[0, 5]].float() / 255 - 0.3053) / 0.3760
    assert torch.allclose(images, expected, atol=1e-6)
    assert labels.tolist() == data.train.labels[[0, 5]].tolist()
    assert data.train.display_images(np.array([0])).shape == (1, 8, 8, 1)


def test_batch_takes_read_only_index_arrays_without_a_warning():
    # Cached split indices are frozen (writeable=False); torch warns when it wraps such an array.
    data = load_dataset("digits")
    frozen = np.array([3, 1, 4])
    frozen.flags.writeable = False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        images, labels = data.train.batch(frozen)
        shown = data.train.display_images(frozen)
    assert labels.tolist() == data.train.labels[[3, 1, 4]].tolist()
    assert images.shape == (3, 1, 8, 8) and shown.shape == (3, 8, 8, 1)
    assert torch.equal(data.train.batch(torch.tensor([3, 1, 4]))[1], labels)


def test_scenario_cuts_come_from_labels(digits_scenario):
    s = digits_scenario
    train_labels = s.data.train.labels_np
    test_labels = s.data.test.labels_np
    assert (train_labels[s.forget_indices] == 3).all()
    assert (train_labels[s.retain_indices] != 3).all()
    assert s.forget_indices.size + s.retain_indices.size == train_labels.size
    assert np.intersect1d(s.forget_indices, s.retain_indices).size == 0
    assert (test_labels[s.test_forget_indices] == 3).all()
    assert s.test_forget_indices.size + s.test_retain_indices.size == test_labels.size
    assert s.forget_indices.size == (train_labels == 3).sum()


def test_forget_class_by_name_and_range():
    assert Scenario("cifar10", "cat").forget_class == 3
    assert Scenario("fashion_mnist", "ankle boot").forget_class == 9
    assert Scenario("digits", "7").forget_class == 7
    with pytest.raises(ValueError, match="out of range"):
        Scenario("digits", 10)
    with pytest.raises(ValueError, match="unknown class"):
        Scenario("cifar10", "zebra")
    with pytest.raises(ValueError, match="unknown dataset"):
        Scenario("mnist", 1)
    with pytest.raises(ValueError, match="seed"):
        Scenario("digits", 1, -1)


def test_subsets_are_balanced_seeded_and_capped(digits_scenario):
    s = digits_scenario
    labels = s.data.train.labels_np
    emb = s.embedding_indices
    counts = np.bincount(labels[emb], minlength=10)
    assert (counts == np.bincount(labels, minlength=10)).all()  # 200 per class covers all digits
    cka = s.cka_indices
    assert (labels[cka["train_forget"]] == 3).all()
    retain_counts = np.bincount(labels[cka["train_retain"]], minlength=10)
    assert retain_counts[3] == 0 and cka["train_retain"].size == 250
    assert retain_counts.max() - retain_counts[retain_counts > 0].min() <= 1
    again = Scenario("digits", 3, 0)
    for key in cka:
        assert np.array_equal(again.cka_indices[key], cka[key])
    other = Scenario("digits", 3, 0, data_seed=1)  # the data seed draws the subsets
    assert not np.array_equal(other.cka_indices["train_retain"], cka["train_retain"])
    retrain_seed = Scenario("digits", 3, 1)  # the training seed does not
    assert np.array_equal(retrain_seed.cka_indices["train_retain"], cka["train_retain"])
    members, non_members = s.mia_indices
    assert members.size == non_members.size > 0
    assert np.isin(members, s.retain_indices).all()
    assert np.isin(non_members, s.test_retain_indices).all()


def test_balanced_subset_small_classes_and_remainder():
    labels = np.array([0] * 2 + [1] * 10 + [2] * 10)
    picked = balanced_subset(labels, [0, 1, 2], 10, seeded_rng(0, "t"))
    counts = np.bincount(labels[picked], minlength=3)
    assert counts.tolist() == [2, 3, 3]
    assert balanced_subset(labels, [], 5, seeded_rng(0, "t")).size == 0


def test_fashion_mnist_files_in_torchvisions_layout_load(tmp_path):
    arrays = write_fake_fashion_mnist(tmp_path)
    with fashion_files_table(arrays):
        data = load_dataset("fashion_mnist", root=tmp_path, download=False)
    assert data.train.images.shape == (60, 1, 28, 28)
    assert np.array_equal(data.train.images[:, 0].numpy(), arrays["train"][0])
    assert np.array_equal(data.test.labels_np, arrays["t10k"][1].astype(np.int64))
    assert data.class_names[9] == "Ankle boot"


def test_fake_cifar10_loads_through_torchvision(tmp_path):
    arrays = write_fake_cifar10(tmp_path)
    with cifar_md5_table(arrays["md5"]):
        data = load_dataset("cifar10", root=tmp_path, download=False)
    assert data.train.images.shape == (50, 3, 32, 32)
    expected = arrays["train_data"].reshape(-1, 3, 32, 32)
    assert np.array_equal(data.train.images.numpy(), expected)
    assert np.array_equal(data.train.labels_np, arrays["train_labels"])
    images, _ = data.train.batch(np.array([0]))
    assert images.shape == (1, 3, 32, 32) and images.dtype == torch.float32


def test_missing_dataset_offline_says_what_to_do(tmp_path):
    with pytest.raises(DatasetUnavailableError) as info:
        load_dataset("cifar10", root=tmp_path / "nothing", download=False)
    message = str(info.value)
    assert "mucomp download cifar10" in message and "cifar-10-batches-py" in message


def test_corrupt_cifar_file_is_reported_as_unavailable(tmp_path):
    arrays = write_fake_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_2").write_bytes(b"garbage")
    with cifar_md5_table(arrays["md5"]), pytest.raises(DatasetUnavailableError):
        load_dataset("cifar10", root=tmp_path, download=False)


def test_registry_names_match_design():
    assert set(DATASETS) == {"digits", "fashion_mnist", "cifar10"}
    assert DATASETS["cifar10"].hub_repo == "jaeunglee/resnet18-cifar10-unlearning"
