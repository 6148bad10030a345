"""Tiny data set files in torchvision's real on-disk formats, for the loaders' real code paths."""

from __future__ import annotations

import contextlib
import hashlib
import pickle
import struct
from pathlib import Path

import numpy as np


def _idx_bytes(array: np.ndarray) -> bytes:
    dims = array.shape
    header = struct.pack(">HBB", 0, 0x08, len(dims)) + b"".join(struct.pack(">I", d) for d in dims)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write a uint8 array in the IDX format MNIST-style data sets use (big-endian header)."""
    path.write_bytes(_idx_bytes(array))


def write_fake_fashion_mnist(root: Path, n_train: int = 60, n_test: int = 20, seed: int = 0) -> dict:
    """``root/FashionMNIST/raw/*-ubyte`` with random images and balanced labels; returns the arrays."""
    rng = np.random.default_rng(seed)
    raw = Path(root) / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    out = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        write_idx(raw / f"{prefix}-images-idx3-ubyte", images)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels)
        out[prefix] = (images, labels)
    return out


@contextlib.contextmanager
def fashion_files_table(arrays: dict):
    """Let :mod:`mucomp.data.fashion` accept fake files (:func:`write_fake_fashion_mnist`) for the
    duration: their shapes and sha256 replace the official ones in its table (in memory only);
    every check still runs, against these files."""
    from mucomp.data import clear_dataset_cache, fashion

    table, digests = {}, {}
    for prefix in ("train", "t10k"):
        images, labels = arrays[prefix]
        for kind, array in (("images", images), ("labels", labels)):
            name = f"{prefix}-{kind}-idx{3 if kind == 'images' else 1}-ubyte"
            table[name] = (fashion.FILES[name][0], tuple(array.shape))
            digests[name] = hashlib.sha256(_idx_bytes(array)).hexdigest()
    saved = dict(fashion.FILES), dict(fashion.OFFICIAL_SHA256)
    fashion.FILES.update(table)
    fashion.OFFICIAL_SHA256.update(digests)
    clear_dataset_cache()
    try:
        yield
    finally:
        fashion.FILES.update(saved[0])
        fashion.OFFICIAL_SHA256.update(saved[1])
        clear_dataset_cache()


def write_fake_cifar10(root: Path, n_train: int = 50, n_test: int = 20, seed: int = 0) -> dict:
    """``root/cifar-10-batches-py`` in CIFAR's pickle layout; returns arrays and the files' MD5s."""
    rng = np.random.default_rng(seed)
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    train_labels = np.arange(n_train) % 10
    train_data = rng.integers(0, 256, size=(n_train, 3072), dtype=np.uint8)
    test_labels = np.arange(n_test) % 10
    test_data = rng.integers(0, 256, size=(n_test, 3072), dtype=np.uint8)
    md5 = {}
    per_file = n_train // 5

    def dump(name: str, entry: dict) -> None:
        with open(folder / name, "wb") as f:
            pickle.dump(entry, f, protocol=2)
        md5[name] = hashlib.md5((folder / name).read_bytes()).hexdigest()

    for b in range(5):
        sl = slice(b * per_file, (b + 1) * per_file)
        dump(f"data_batch_{b + 1}", {"data": train_data[sl], "labels": train_labels[sl].tolist()})
    dump("test_batch", {"data": test_data, "labels": test_labels.tolist()})
    dump("batches.meta", {"label_names": ["airplane", "automobile", "bird", "cat", "deer",
                                          "dog", "frog", "horse", "ship", "truck"]})
    return {"train_data": train_data, "train_labels": train_labels, "test_data": test_data,
            "test_labels": test_labels, "md5": md5}


@contextlib.contextmanager
def cifar_md5_table(md5: dict):
    """Point torchvision's CIFAR-10 MD5 table at fake files for the duration (in memory only).

    torchvision verifies every batch file against the real data set's MD5; the check still runs,
    against these files' own sums.
    """
    from torchvision.datasets import CIFAR10

    saved = (CIFAR10.train_list, CIFAR10.test_list, CIFAR10.meta)
    CIFAR10.train_list = [[f"data_batch_{i}", md5[f"data_batch_{i}"]] for i in range(1, 6)]
    CIFAR10.test_list = [["test_batch", md5["test_batch"]]]
    CIFAR10.meta = dict(saved[2], md5=md5["batches.meta"])
    try:
        yield
    finally:
        CIFAR10.train_list, CIFAR10.test_list, CIFAR10.meta = saved

