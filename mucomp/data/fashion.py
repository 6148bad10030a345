"""Fashion-MNIST from its four official IDX files, found on disk and checked before use.

Where the files are looked for, in order (the first folder that holds any of them is used):

1. ``$MUCOMP_DATA_DIR``, in torchvision's layout (``FashionMNIST/raw/``) or the files directly;
2. ``$MUCOMP_HOME/data`` (or the ``root`` a caller gives), the same two layouts;
3. ``/usr/share/datasets/fashion-mnist``, where Debian's package ``dataset-fashion-mnist`` puts
   the four ``.gz`` files (``apt-get install dataset-fashion-mnist``, no network needed later);
4. a download through torchvision into ``$MUCOMP_HOME/data`` when downloads are allowed.

Each file may be gzip-compressed (``.gz``) or not. What is read is checked completely: the IDX
magic number (2051 for images, 2049 for labels), the dimensions (60,000 / 10,000 images of
28 x 28), the exact length, labels 0-9, and the sha256 of the uncompressed content against
:data:`OFFICIAL_SHA256`. A wrong, truncated or foreign file is refused with its path and what to
do; nothing is loaded from it.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: The folder Debian's ``dataset-fashion-mnist`` installs the four ``.gz`` files in.
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
#: ``$MUCOMP_DATA_DIR``: a folder of data sets that wins over every other place.
DATA_DIR_ENV = "MUCOMP_DATA_DIR"
#: The four files: name -> (IDX magic, shape).
FILES: dict[str, tuple[int, tuple[int, ...]]] = {
    "train-images-idx3-ubyte": (2051, (60_000, 28, 28)),
    "train-labels-idx1-ubyte": (2049, (60_000,)),
    "t10k-images-idx3-ubyte": (2051, (10_000, 28, 28)),
    "t10k-labels-idx1-ubyte": (2049, (10_000,)),
}
#: sha256 of each official file's uncompressed content. The content is the one whose MD5s
#: torchvision checks after extracting (``torchvision/datasets/mnist.py``, ``FashionMNIST``:
#: train-images f4a8712d..., train-labels 9018921c..., t10k-images 8181f547..., t10k-labels
#: 15d48437...) and whose ``.gz`` archives match the MD5s of zalandoresearch/fashion-mnist's README;
#: Debian's package recompresses the same content (other ``.gz`` bytes, the same hashes here).
OFFICIAL_SHA256: dict[str, str] = {
    "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}
#: Largest file read (bytes, compressed or not): the train images are 47 MB uncompressed.
MAX_FILE_BYTES = 64 * 1024**2
_FIX = ("delete it and run `mucomp download fashion_mnist`, or install Debian's package dataset-fashion-mnist "
        "(apt-get install dataset-fashion-mnist)")


class DatasetFileError(RuntimeError):
    """A data set file on disk is not what it should be; the message names it and says what to do."""


@dataclass(frozen=True)
class FoundFiles:
    """Where the four files were found: ``folder``, ``where`` (words for a message) and each
    name's path."""

    folder: Path
    where: str
    paths: dict[str, Path]


def candidate_folders(root: Path | None, home_data: Path) -> list[tuple[Path, str]]:
    """The folders to look in, in order, with words saying which place each is. ``root``: a folder
    a caller named (then only it, and the download goes there)."""
    if root is not None:
        return [(Path(root), f"{root}")]
    places = []
    env = os.environ.get(DATA_DIR_ENV, "").strip()
    if env:
        places.append((Path(env).expanduser(), f"${DATA_DIR_ENV} ({env})"))
    places.append((home_data, f"$MUCOMP_HOME/data ({home_data})"))
    places.append((DEBIAN_DIR, f"Debian's dataset-fashion-mnist ({DEBIAN_DIR})"))
    return places


def _file_in(folder: Path, name: str) -> Path | None:
    for sub in (folder / "FashionMNIST" / "raw", folder):
        for candidate in (sub / name, sub / f"{name}.gz"):
            if candidate.is_file():
                return candidate
    return None


def find_files(folders: list[tuple[Path, str]]) -> FoundFiles | None:
    """The first folder holding any of the four files (all four must be there), or None when none
    holds one. DatasetFileError when a folder holds some of them but not all."""
    for folder, where in folders:
        paths = {name: _file_in(folder, name) for name in FILES}
        found = {name: path for name, path in paths.items() if path is not None}
        if not found:
            continue
        missing = sorted(set(FILES) - set(found))
        if missing:
            raise DatasetFileError(
                f"{where} holds only part of Fashion-MNIST: {', '.join(missing)} (or .gz) missing; copy the missing "
                f"files there, or {_FIX}")
        return FoundFiles(folder, where, found)
    return None


def _read_bytes(path: Path) -> bytes:
    if path.stat().st_size > MAX_FILE_BYTES:
        raise DatasetFileError(f"{path} is larger than any Fashion-MNIST file; {_FIX}")
    try:
        data = path.read_bytes()
        if path.suffix == ".gz":
            with gzip.GzipFile(fileobj=io.BytesIO(data)) as stream:  # bounded: a gzip bomb stops here
                data = stream.read(MAX_FILE_BYTES + 1)
    except (OSError, EOFError, zlib.error) as err:
        raise DatasetFileError(f"{path} can't be read ({type(err).__name__}: {err}); it is damaged or truncated; "
                               f"{_FIX}") from err
    if len(data) > MAX_FILE_BYTES:
        raise DatasetFileError(f"{path} unpacks to more than any Fashion-MNIST file; {_FIX}")
    return data


def parse_idx(data: bytes, path: Path, name: str) -> np.ndarray:
    """The array of one IDX file of :data:`FILES` (uint8), checked: magic, dimensions, length,
    label range. DatasetFileError names ``path`` and what is wrong."""
    magic, shape = FILES[name]
    rank = len(shape)
    header = 4 + 4 * rank
    if len(data) < header:
        raise DatasetFileError(f"{path} is truncated (only {len(data)} bytes); {_FIX}")
    found_magic = int.from_bytes(data[:4], "big")
    if found_magic != magic:
        raise DatasetFileError(f"{path} is not an IDX file of {name} (magic number {found_magic}, expected {magic}); "
                               f"{_FIX}")
    dims = tuple(int.from_bytes(data[4 + 4 * k:8 + 4 * k], "big") for k in range(rank))
    if dims != shape:
        raise DatasetFileError(f"{path} holds an array of shape {dims}, not the {shape} of {name}; {_FIX}")
    expected = header + int(np.prod(shape))
    if len(data) != expected:
        state = "truncated" if len(data) < expected else "longer than it should be"
        raise DatasetFileError(f"{path} is {state} ({len(data):,} bytes, expected {expected:,}); {_FIX}")
    array = np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)
    if rank == 1 and int(array.max(initial=0)) > 9:
        raise DatasetFileError(f"{path} holds labels outside 0-9; {_FIX}")
    return array


def read_file(path: Path, name: str) -> np.ndarray:
    """One official file, read and checked completely (its sha256 against :data:`OFFICIAL_SHA256`)."""
    data = _read_bytes(path)
    array = parse_idx(data, path, name)
    digest = hashlib.sha256(data).hexdigest()
    if digest != OFFICIAL_SHA256[name]:
        raise DatasetFileError(f"{path} is a well-formed IDX file but not the official {name} (sha256 {digest[:12]}..., "
                               f"expected {OFFICIAL_SHA256[name][:12]}...); {_FIX}")
    return array


def read_found(found: FoundFiles) -> dict[str, np.ndarray]:
    """The four checked arrays of :func:`find_files`' folder: ``{name: uint8 array}``."""
    return {name: read_file(path, name) for name, path in found.paths.items()}
