"""Validate an uploaded weights file before anything is evaluated or stored.

The app's Build page (and anything else that accepts a user's file) calls :func:`check_upload`
(or :func:`load_uploaded_model`) with the file's name and bytes. It either returns a model of the
scenario's architecture with the uploaded weights loaded ``strict=True``, or raises
:class:`UploadError` whose message says, in plain words, what is wrong and what to do:

- the file is larger than :data:`MAX_UPLOAD_BYTES` (or empty), or, for a ``torch.save`` file
  (a zip archive), its entries unpack to more than that: every entry's real uncompressed size is
  measured before ``torch.load`` sees the file, so a small "zip bomb" never grows the server;
- it is neither a ``torch.save`` file nor a safetensors file (random bytes, truncated, corrupt);
- it is a pickle holding Python objects other than tensors (never executed, never loaded);
- it holds no state dict (a mapping of parameter names to tensors);
- the state dict belongs to another architecture: the message names the missing and unexpected
  keys and the shapes that differ (:class:`~mucomp.weights.StateDictMismatchError`);
- weights of a non-floating type (integers, booleans, bytes, complex numbers), named by key: they
  would be cast silently (a complex weight would lose its imaginary part); float16, bfloat16 and
  float64 weights are accepted and converted to float32, and :class:`UploadCheck` says so;
- NaN or infinite weights.

Nothing here writes to disk.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass, field
from pathlib import PurePath

import torch
from torch import nn

from mucomp.models import build_model, expected_weights
from mucomp.specs import DatasetSpec
from mucomp.weights import (
    WeightsCheck,
    WeightsFileError,
    check_weights,
    first_line,
    layout_of,
    read_weights,
    unwrap_state_dict,
)

#: Largest upload accepted, in bytes, compressed or not (a CIFAR ResNet-18 state dict is about 45 MB).
MAX_UPLOAD_BYTES = 200 * 1024**2
#: File name endings the app accepts.
EXTENSIONS = (".pth", ".pt", ".safetensors")
_SAVE_HINT = "Save the weights with torch.save(model.state_dict(), 'model.pth') or safetensors' save_file."
_CHUNK = 1024**2


class UploadError(ValueError):
    """An uploaded weights file was refused; the message says why and what to do."""


@dataclass
class UploadCheck:
    """A validated upload: the model (eval mode, CPU) and ``notes`` the user should read (e.g.
    which weights were converted to float32)."""

    model: nn.Module
    notes: list[str] = field(default_factory=list)


def _display_name(name: object) -> str:
    return PurePath(str(name)).name or "the file"


def read_state_dict(name: str, data: bytes, max_bytes: int = MAX_UPLOAD_BYTES) -> dict[str, torch.Tensor]:
    """The state dict in an uploaded file, read safely.

    ``.safetensors`` files are read with safetensors; anything else with
    ``torch.load(..., weights_only=True)`` (no code in the file is ever run;
    :func:`~mucomp.weights.read_weights`) after its zip entries were measured
    (:func:`check_unpacked_size`). Wrappers such as ``{"state_dict": ...}`` and a DataParallel
    ``module.`` prefix are removed (:func:`~mucomp.weights.unwrap_state_dict`). Raises
    :class:`UploadError`.
    """
    filename = _display_name(name)
    size = len(data)
    if size == 0:
        raise UploadError(f"{filename} is empty. {_SAVE_HINT}")
    if size > max_bytes:
        raise UploadError(
            f"{filename} is {size / 1024**2:.1f} MB, more than the {max_bytes / 1024**2:.0f} MB this app accepts. "
            "Upload the state dict alone (no optimiser state), or use a smaller model."
        )
    if not filename.lower().endswith(".safetensors"):
        check_unpacked_size(filename, data, max_bytes)
    try:
        obj = read_weights(filename, data)
    except WeightsFileError as err:
        raise UploadError(_unreadable(filename, err)) from err
    except MemoryError as err:  # a header claiming more memory than there is
        raise UploadError(f"{filename} claims more memory than this server has; it was not loaded. {_SAVE_HINT}") from err
    try:
        return unwrap_state_dict(obj)
    except ValueError as err:
        raise UploadError(f"{filename} is not a state dict: {err}. {_SAVE_HINT}") from err


def check_unpacked_size(filename: str, data: bytes, max_bytes: int = MAX_UPLOAD_BYTES) -> None:
    """Refuse a zip file (what ``torch.save`` writes) whose entries unpack to more than
    ``max_bytes`` in all: the declared sizes first, then each compressed entry's real size,
    decompressed in 1 MB chunks and counted (nothing is kept). Not a zip: nothing to measure
    (``torch.load`` then reads the bytes as they are)."""
    buffer = io.BytesIO(data)
    if not zipfile.is_zipfile(buffer):
        return
    too_big = UploadError(
        f"{filename} unpacks to more than {max_bytes / 1024**2:.0f} MB, the most this app accepts; it was not "
        f"loaded. {_SAVE_HINT}"
    )
    try:
        with zipfile.ZipFile(buffer) as archive:
            infos = archive.infolist()
            if sum(info.file_size for info in infos) > max_bytes:
                raise too_big
            total = 0
            for info in infos:
                if info.compress_type == zipfile.ZIP_STORED:
                    total += info.compress_size  # stored: its bytes are in the file, already counted
                    continue
                with archive.open(info) as member:
                    while chunk := member.read(_CHUNK):
                        total += len(chunk)
                        if total > max_bytes:
                            raise too_big
    except UploadError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, NotImplementedError, EOFError) as err:
        raise UploadError(f"{filename} is a damaged zip archive ({first_line(err)}); it may be corrupt or "
                          f"truncated. {_SAVE_HINT}") from err


def _unreadable(filename: str, err: WeightsFileError) -> str:
    if err.kind == "safetensors":
        return (f"{filename} is not a valid safetensors file ({err.detail}); it may be corrupt or "
                f"truncated. {_SAVE_HINT}")
    if err.python_objects:
        return (f"{filename} holds Python objects other than tensors ({err.detail}); for safety this app never "
                f"loads those. {_SAVE_HINT}")
    return (f"{filename} is not a readable PyTorch weights file ({err.detail}); it may be corrupt, "
            f"truncated or another kind of file. {_SAVE_HINT}")


def _value_notes(filename: str, state: dict[str, torch.Tensor], check: WeightsCheck, expected: dict) -> list[str]:
    """Refuse non-floating weights where the architecture has floats (and anything but its own
    integer type for integer buffers); returns the notes about converted float precisions."""
    if check.dtypes:
        wrong = check.dtypes
        kinds = sorted({str(state[k].dtype).removeprefix("torch.") for k in wrong})
        shown = ", ".join(wrong[:8]) + (f" and {len(wrong) - 8} more" if len(wrong) > 8 else "")
        raise UploadError(
            f"{filename} holds {', '.join(kinds)} values where the model has "
            f"{'floating-point weights' if expected[wrong[0]].is_floating_point() else 'counters'} ({shown}); "
            "they would be changed silently, so the file was refused. Save the model's own state dict "
            "(floating-point weights, e.g. model.float().state_dict())."
        )
    if check.non_finite:
        raise UploadError(f"{filename} holds NaN or infinite weights ({', '.join(check.non_finite[:5])}); it cannot "
                          "be evaluated")
    if not check.converted:
        return []
    return [f"{filename} stores its weights as {', '.join(check.converted)}; they were converted to float32, the "
            "precision this app computes in (the figures may differ very slightly from the original model's)."]


def mismatch_advice(state: dict[str, torch.Tensor], spec: DatasetSpec, arch: str, check: WeightsCheck) -> str:
    """What to do about weights that do not fit ``arch``: choose the data set's other architecture
    they fit, or upload a model of ``arch`` trained for the data set's classes."""
    for other in spec.archs:
        if other != arch and check_weights(state, expected_weights(other, spec.num_classes)).fits:
            return (f"The file holds {other} weights: choose the architecture {other} on Home, then upload it "
                    "again.")
    wanted = f"a {arch} model trained for the {spec.num_classes} classes of {spec.label}"
    if not (check.missing or check.unexpected):  # the layers are arch's, at other sizes
        return f"The file has {arch}'s layers at other sizes (another number of classes?): upload {wanted}."
    others = [a for a in spec.archs if a != arch]
    choose = f" (or choose {' or '.join(others)} as the architecture on Home)" if others else ""
    return f"Upload the state dict of {wanted}{choose}. {_SAVE_HINT}"


def check_upload(name: str, data: bytes, spec: DatasetSpec, max_bytes: int = MAX_UPLOAD_BYTES,
                 arch: str | None = None) -> UploadCheck:
    """A fresh model of ``arch`` (default: ``spec``'s own architecture) holding the uploaded
    weights, and notes for the user.

    Raises :class:`UploadError` for a file that is too large (packed or unpacked), unreadable, not
    a state dict, a state dict of another architecture (naming the missing and unexpected keys),
    of non-floating values (naming the keys) or with NaN / infinite weights.
    """
    filename = _display_name(name)
    state = read_state_dict(filename, data, max_bytes)
    arch = arch or spec.arch
    model = build_model(arch, spec.num_classes)
    expected = model.state_dict()
    check = check_weights(state, layout_of(expected))
    if not check.fits:
        raise UploadError(f"{filename}: {check.mismatch(arch, mismatch_advice(state, spec, arch, check))}")
    notes = _value_notes(filename, state, check, expected)
    try:
        model.load_state_dict(state, strict=True)
    except (RuntimeError, ValueError) as err:
        raise UploadError(f"{filename}: the weights do not load into {arch} ({first_line(err)})") from err
    return UploadCheck(model.eval(), notes)


def load_uploaded_model(
    name: str, data: bytes, spec: DatasetSpec, max_bytes: int = MAX_UPLOAD_BYTES, arch: str | None = None
) -> nn.Module:
    """:func:`check_upload`'s model alone (eval mode, CPU); raises :class:`UploadError`."""
    return check_upload(name, data, spec, max_bytes, arch).model
