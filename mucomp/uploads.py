"""Validate an uploaded weights file before anything is evaluated or stored.

The app's Build page (and anything else that accepts a user's file) calls
:func:`load_uploaded_model` with the file's name and bytes. It either returns a model of the
scenario's architecture with the uploaded weights loaded ``strict=True``, or raises
:class:`UploadError` whose message says, in plain words, what is wrong and what to do:

- the file is larger than :data:`MAX_UPLOAD_BYTES` (or empty);
- it is neither a ``torch.save`` file nor a safetensors file (random bytes, truncated, corrupt);
- it is a pickle holding Python objects other than tensors (never executed: ``torch.load`` runs
  with ``weights_only=True``);
- it holds no state dict (a mapping of parameter names to tensors);
- the state dict belongs to another architecture: the message names the missing and unexpected
  keys and the shape mismatches (:class:`~mucomp.models.StateDictMismatchError`).

Nothing here writes to disk.
"""

from __future__ import annotations

from pathlib import PurePath

import torch
from torch import nn

from mucomp.data import DatasetSpec
from mucomp.models import (
    StateDictMismatchError,
    WeightsFileError,
    first_line,
    model_from_state_dict,
    read_weights,
    unwrap_state_dict,
)

#: Largest upload accepted, in bytes (a CIFAR ResNet-18 state dict is about 45 MB).
MAX_UPLOAD_BYTES = 200 * 1024**2
#: File name endings the app accepts.
EXTENSIONS = (".pth", ".pt", ".safetensors")
_SAVE_HINT = "Save the weights with torch.save(model.state_dict(), 'model.pth') or safetensors' save_file."


class UploadError(ValueError):
    """An uploaded weights file was refused; the message says why and what to do."""


def read_state_dict(name: str, data: bytes, max_bytes: int = MAX_UPLOAD_BYTES) -> dict[str, torch.Tensor]:
    """The state dict in an uploaded file, read safely.

    ``.safetensors`` files are read with safetensors; anything else with
    ``torch.load(..., weights_only=True)`` (no code in the file is ever run;
    :func:`~mucomp.models.read_weights`). Wrappers such as
    ``{"state_dict": ...}`` and a DataParallel ``module.`` prefix are removed
    (:func:`~mucomp.models.unwrap_state_dict`). Raises :class:`UploadError`.
    """
    filename = PurePath(str(name)).name or "the file"
    size = len(data)
    if size == 0:
        raise UploadError(f"{filename} is empty. {_SAVE_HINT}")
    if size > max_bytes:
        raise UploadError(
            f"{filename} is {size / 1024**2:.1f} MB, more than the {max_bytes / 1024**2:.0f} MB this app accepts. "
            "Upload the state dict alone (no optimiser state), or use a smaller model."
        )
    try:
        obj = read_weights(filename, data)
    except WeightsFileError as err:
        raise UploadError(_unreadable(filename, err)) from err
    try:
        return unwrap_state_dict(obj)
    except ValueError as err:
        raise UploadError(f"{filename} is not a state dict: {err}. {_SAVE_HINT}") from err


def _unreadable(filename: str, err: WeightsFileError) -> str:
    if err.kind == "safetensors":
        return (f"{filename} is not a valid safetensors file ({err.detail}); it may be corrupt or "
                f"truncated. {_SAVE_HINT}")
    if err.python_objects:
        return (f"{filename} holds Python objects other than tensors ({err.detail}); for safety they are "
                f"never loaded (weights_only=True). {_SAVE_HINT}")
    return (f"{filename} is not a readable PyTorch weights file ({err.detail}); it may be corrupt, "
            f"truncated or another kind of file. {_SAVE_HINT}")


def load_uploaded_model(
    name: str, data: bytes, spec: DatasetSpec, max_bytes: int = MAX_UPLOAD_BYTES
) -> nn.Module:
    """A fresh model of ``spec``'s architecture holding the uploaded weights (eval mode, CPU).

    Raises :class:`UploadError` for a file that is too large, unreadable, not a state dict, or a
    state dict of another architecture (naming the missing and unexpected keys).
    """
    filename = PurePath(str(name)).name or "the file"
    state = read_state_dict(filename, data, max_bytes)
    try:
        model = model_from_state_dict(spec.arch, spec.num_classes, state)
    except StateDictMismatchError as err:
        raise UploadError(f"{filename}: {err}") from err
    except (RuntimeError, ValueError) as err:
        raise UploadError(f"{filename}: the weights do not load into {spec.arch} ({first_line(err)})") from err
    for tensor in model.state_dict().values():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise UploadError(f"{filename} holds NaN or infinite weights; it cannot be evaluated")
    return model.eval()
