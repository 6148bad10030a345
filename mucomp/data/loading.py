"""Loading the registered data sets into memory (cached per process), and their content hash.

- ``digits`` (the default): scikit-learn's bundled 8x8 hand-written digits (1,797 images), split
  once into train and test with a fixed seeded stratified split. Needs no network.
- ``fashion_mnist``: the four official IDX files, found on disk (``$MUCOMP_DATA_DIR``,
  ``$MUCOMP_HOME/data``, Debian's ``dataset-fashion-mnist``) or downloaded through torchvision,
  and checked before use (:mod:`mucomp.data.fashion`).
- ``cifar10``: torchvision's loader (it checks every file's MD5), from ``$MUCOMP_HOME/data`` or
  downloaded on first use.

With no network (or ``MUCOMP_OFFLINE=1``) a missing data set raises
:class:`DatasetUnavailableError` saying what is missing and how to get it. Every split keeps its
images as uint8 ``[N, C, H, W]`` and normalises a batch only when it is used.
"""

from __future__ import annotations

import functools
import hashlib
import os
import threading
from pathlib import Path

import numpy as np

from mucomp import settings
from mucomp.data import fashion
from mucomp.data.split import LoadedDataset, Split
from mucomp.environment import import_torchvision
from mucomp.specs import DatasetSpec, get_spec

DIGITS_SPLIT_SEED = 0
DIGITS_TEST_SHARE = 0.25


class DatasetUnavailableError(RuntimeError):
    """A data set is not on disk and could not be downloaded, or a file of it is not what it
    should be; the message says what to do."""


_CACHE: dict[tuple, LoadedDataset] = {}
_CACHE_LOCK = threading.Lock()


def downloads_allowed() -> bool:
    """Whether a missing data set may be downloaded (no ``MUCOMP_OFFLINE=1``)."""
    return os.environ.get("MUCOMP_OFFLINE", "").strip().lower() not in ("1", "true", "yes")


def load_dataset(name: str, root: str | os.PathLike | None = None, download: bool | None = None) -> LoadedDataset:
    """Load a registered data set into memory (cached per process and place).

    Parameters
    ----------
    name:
        A key of :data:`DATASETS`.
    root:
        A folder to read a downloadable data set from (and download it into); default: the places
        of :mod:`mucomp.data.fashion` for Fashion-MNIST, ``$MUCOMP_HOME/data`` for CIFAR-10.
        Ignored for ``digits``.
    download:
        Whether a missing data set may be downloaded. Default: yes, unless ``MUCOMP_OFFLINE=1``.

    Raises
    ------
    DatasetUnavailableError
        The files are not there and could not be downloaded, or a file is damaged or foreign.
    """
    spec = get_spec(name)
    home_data = settings.data_dir()
    key = (name, str(root or ""), str(home_data.resolve()) if spec.needs_download else "",
           os.environ.get(fashion.DATA_DIR_ENV, "") if name == "fashion_mnist" else "")
    with _CACHE_LOCK:
        if key not in _CACHE:
            allow = downloads_allowed() if download is None else bool(download)
            if name == "digits":
                _CACHE[key] = _load_digits(spec)
            elif name == "fashion_mnist":
                _CACHE[key] = _load_fashion(spec, Path(root) if root is not None else None, home_data, allow)
            else:
                _CACHE[key] = _load_cifar(spec, Path(root) if root is not None else home_data, allow)
        return _CACHE[key]


def clear_dataset_cache() -> None:
    """Forget every data set loaded in this process (tests use it after rewriting files)."""
    with _CACHE_LOCK:
        _CACHE.clear()
    _data_sha256.cache_clear()


def _load_digits(spec: DatasetSpec) -> LoadedDataset:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    # Values are 0..16; scale to 0..255 so every data set is stored the same way.
    images = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)[:, None, :, :]
    labels = bunch.target.astype(np.int64)
    train_idx, test_idx = train_test_split(
        np.arange(labels.size),
        test_size=DIGITS_TEST_SHARE,
        stratify=labels,
        random_state=DIGITS_SPLIT_SEED,
    )
    train_idx.sort()
    test_idx.sort()

    def make(split_name: str, idx: np.ndarray) -> Split:
        return Split(split_name, images[idx], labels[idx], spec.mean, spec.std)

    return LoadedDataset(spec, make("train", train_idx), make("test", test_idx), where="scikit-learn's bundled digits")


def _load_fashion(spec: DatasetSpec, root: Path | None, home_data: Path, download: bool) -> LoadedDataset:
    folders = fashion.candidate_folders(root, home_data)
    try:
        found = fashion.find_files(folders)
        if found is None:
            target = root if root is not None else home_data
            if not download:
                raise DatasetUnavailableError(
                    f"{spec.label} is not on this machine and downloads are off (offline mode). Looked in "
                    f"{'; '.join(where for _, where in folders)}. Install Debian's package dataset-fashion-mnist "
                    f"(apt-get install dataset-fashion-mnist), set ${fashion.DATA_DIR_ENV} to a folder holding the "
                    f"four files, or connect to the network and run `mucomp download {spec.name}`.")
            _download_torchvision(spec, target)
            found = fashion.find_files([(target, str(target))])
            if found is None:
                raise DatasetUnavailableError(f"the download of {spec.label} left no files in {target}")
        arrays = fashion.read_found(found)
    except fashion.DatasetFileError as err:
        raise DatasetUnavailableError(str(err)) from err
    train = Split("train", arrays["train-images-idx3-ubyte"][:, None], arrays["train-labels-idx1-ubyte"],
                  spec.mean, spec.std)
    test = Split("test", arrays["t10k-images-idx3-ubyte"][:, None], arrays["t10k-labels-idx1-ubyte"],
                 spec.mean, spec.std)
    return LoadedDataset(spec, train, test, root=found.folder, where=found.where)


def _expected_files(spec: DatasetSpec, root: Path) -> str:
    if spec.name == "cifar10":
        return f"{root / 'cifar-10-batches-py'} (data_batch_1..5, test_batch, batches.meta)"
    return f"{root / 'FashionMNIST' / 'raw'} (train/t10k -images-idx3-ubyte and -labels-idx1-ubyte)"


def missing_without_loading(name: str) -> str | None:
    """Why data set ``name`` is certainly not on disk, found without importing torchvision (its
    import alone takes seconds: a page asks this before showing an image), or None when it may be
    there (:func:`load_dataset` with ``download=False`` then says for sure). Only CIFAR-10 is read
    through torchvision; the others are checked by :func:`load_dataset` itself, cheaply."""
    spec = get_spec(name)
    if name != "cifar10":
        return None
    root = settings.data_dir()
    if (root / "cifar-10-batches-py").is_dir():
        return None
    return (f"{spec.label} is not in {root}: expected {_expected_files(spec, root)}. Run `mucomp download {name}` "
            "with a network, or copy the files there")


def _torchvision_class(spec: DatasetSpec):
    datasets = import_torchvision("datasets")
    return {"cifar10": datasets.CIFAR10, "fashion_mnist": datasets.FashionMNIST}[spec.name]


def _download_torchvision(spec: DatasetSpec, root: Path) -> None:
    """Download ``spec``'s files into ``root`` through torchvision (which checks their MD5s)."""
    cls = _torchvision_class(spec)
    try:
        root.mkdir(parents=True, exist_ok=True)
        for train in (True, False):
            cls(str(root), train=train, download=True)
    except Exception as err:  # urllib, ssl and checksum errors all mean the same here
        raise DatasetUnavailableError(
            f"{spec.label} is not on this machine and could not be downloaded "
            f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else 'no details'}). "
            f"Connect to the network and run `mucomp download {spec.name}`, or copy "
            f"{_expected_files(spec, root)} there yourself."
        ) from err


def _load_cifar(spec: DatasetSpec, root: Path, download: bool) -> LoadedDataset:
    cls = _torchvision_class(spec)
    splits = []
    for train in (True, False):
        try:
            raw = cls(str(root), train=train, download=False)
        except RuntimeError as missing:
            if not download:
                raise DatasetUnavailableError(
                    f"{spec.label} is not in {root} and downloads are off (offline mode). "
                    f"Expected {_expected_files(spec, root)}. Connect to the network and run "
                    f"`mucomp download {spec.name}`, or copy the files there."
                ) from missing
            _download_torchvision(spec, root)
            raw = cls(str(root), train=train, download=False)
        images = np.ascontiguousarray(np.asarray(raw.data).transpose(0, 3, 1, 2))  # [N, H, W, C] -> [N, C, H, W]
        labels = np.asarray(raw.targets, dtype=np.int64)
        splits.append(Split("train" if train else "test", images, labels, spec.mean, spec.std))
    return LoadedDataset(spec, splits[0], splits[1], root=root, where=str(root))


@functools.lru_cache(maxsize=8)
def _data_sha256(dataset: str, home_data: str, data_dir: str) -> str:
    data = load_dataset(dataset)
    digest = hashlib.sha256(f"mucomp-data-v1:{dataset}".encode())
    for split in (data.train, data.test):
        for name, array in (("images", split.images_np), ("labels", split.labels_np)):
            digest.update(f"{split.name}.{name}:{array.dtype.str}:{list(array.shape)}".encode())
            digest.update(memoryview(np.ascontiguousarray(array)).cast("B"))
    return digest.hexdigest()


def data_sha256(dataset: str) -> str:
    """sha256 of ``dataset``'s train and test arrays as mucomp loads them (images uint8, labels
    int64, with their shapes and dtypes): equal exactly when both machines evaluate the same images.
    Computed once per data set, data folder and process."""
    return _data_sha256(dataset, str(settings.data_dir().resolve()), os.environ.get(fashion.DATA_DIR_ENV, ""))
