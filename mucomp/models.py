"""Architectures: a small CNN for digits and ResNet-18 variants for CIFAR-10 and Fashion-MNIST.

Every model ends in a linear layer named ``fc`` whose input is the penultimate feature vector
(the embedding view reads it), and :func:`layer_names` lists the modules whose outputs the
layer-wise similarity view compares, in forward order.
"""

from __future__ import annotations

import io
import re
import warnings

import torch
from torch import nn

ARCHITECTURES = ("digits_cnn", "resnet18_cifar", "resnet18_fmnist")


class DigitsCNN(nn.Module):
    """A small CNN for 1x8x8 images.

    ``block1`` -> 32x8x8, ``block2`` -> 64x4x4, ``block3`` -> 128x2x2, ``fc1`` -> 128 (the
    penultimate features, after ReLU), ``fc`` -> ``num_classes`` logits. About 0.2 M parameters.
    """

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.block1 = nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU())
        self.block2 = nn.Sequential(nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.block3 = nn.Sequential(nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.fc1 = nn.Sequential(nn.Flatten(), nn.Linear(128 * 2 * 2, 128), nn.ReLU())
        self.fc = nn.Linear(128, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.fc1(self.block3(self.block2(self.block1(x)))))


def _resnet18_small_input(in_channels: int, num_classes: int) -> nn.Module:
    """torchvision ResNet-18 with a 3x3 stride-1 stem and no max-pool, for 32x32 / 28x28 inputs."""
    from torchvision.models import resnet18

    model = resnet18(weights=None)
    model.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()
    model.fc = nn.Linear(512, num_classes)
    return model


_RESNET_LAYERS = [
    "conv1", "layer1.0", "layer1.1", "layer2.0", "layer2.1",
    "layer3.0", "layer3.1", "layer4.0", "layer4.1", "fc",
]
_LAYERS = {
    "digits_cnn": ["block1", "block2", "block3", "fc1", "fc"],
    "resnet18_cifar": _RESNET_LAYERS,
    "resnet18_fmnist": _RESNET_LAYERS,
}


def build_model(arch: str, num_classes: int = 10) -> nn.Module:
    """A freshly initialised model of architecture ``arch`` (one of :data:`ARCHITECTURES`).

    ``resnet18_cifar`` takes ``[N, 3, 32, 32]``, ``resnet18_fmnist`` ``[N, 1, 28, 28]``,
    ``digits_cnn`` ``[N, 1, 8, 8]``; all return logits ``[N, num_classes]``. Initialisation uses
    torch's global RNG: seed it (or use :func:`seeded_model`) for reproducible weights.
    """
    if arch == "digits_cnn":
        return DigitsCNN(num_classes)
    if arch == "resnet18_cifar":
        return _resnet18_small_input(3, num_classes)
    if arch == "resnet18_fmnist":
        return _resnet18_small_input(1, num_classes)
    raise ValueError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHITECTURES)}")


def seeded_model(arch: str, num_classes: int, seed: int) -> nn.Module:
    """:func:`build_model` with weights drawn from ``seed``, leaving the global RNG untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_model(arch, num_classes)


def layer_names(arch: str) -> list[str]:
    """The named modules whose outputs layer-wise CKA compares, in forward order."""
    try:
        return list(_LAYERS[arch])
    except KeyError:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHITECTURES)}") from None


def penultimate_layer(model: nn.Module) -> nn.Module:
    """The final linear layer; its input is the penultimate feature vector."""
    fc = getattr(model, "fc", None)
    if not isinstance(fc, nn.Linear):
        raise ValueError("mucomp models end in an nn.Linear named 'fc'; this model has none")
    return fc


class StateDictMismatchError(ValueError):
    """A state dict does not fit an architecture; the message lists the differing keys."""

    def __init__(self, arch: str, missing: list[str], unexpected: list[str], shapes: list[str]) -> None:
        self.missing, self.unexpected, self.shapes = missing, unexpected, shapes

        def show(items: list[str]) -> str:
            head = ", ".join(items[:8])
            return head + (f" and {len(items) - 8} more" if len(items) > 8 else "")

        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys: {show(missing)}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys: {show(unexpected)}")
        if shapes:
            parts.append(f"{len(shapes)} shape mismatches: {show(shapes)}")
        super().__init__(
            f"the weights do not fit architecture {arch!r} ({'; '.join(parts)}). "
            f"Check that the file was saved from a {arch} model with the same number of classes."
        )


class WeightsFileError(ValueError):
    """A weights file could not be deserialized.

    ``kind`` is ``"safetensors"`` or ``"torch"``; ``detail`` the library's informative line;
    ``python_objects`` is true when a torch file was refused for holding Python objects other
    than tensors (``weights_only=True``). Callers word the message for their users.
    """

    def __init__(self, kind: str, detail: str, python_objects: bool = False) -> None:
        super().__init__(f"not a readable {kind} weights file ({detail})")
        self.kind, self.detail, self.python_objects = kind, detail, python_objects


def first_line(err: BaseException) -> str:
    """The informative line of a library error (torch's weights_only errors are long)."""
    text = str(err)
    for line in text.splitlines():
        line = line.strip().replace("\x1b[1m", "").replace("\x1b[0m", "")
        if "WeightsUnpickler error:" in line:
            detail = line.split("WeightsUnpickler error:", 1)[1].strip()
            if detail:
                return detail.split(" was not an allowed global")[0]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return (lines[0] if lines else type(err).__name__)[:200]


def read_weights(name: str, data: bytes) -> object:
    """Deserialize a weights file without running any code in it.

    A ``name`` ending in ``.safetensors`` is read with safetensors, anything else with
    ``torch.load(weights_only=True, map_location="cpu")``. Returns what the file holds (a state
    dict, or a wrapper: see :func:`unwrap_state_dict`); raises :class:`WeightsFileError`.
    """
    if str(name).lower().endswith(".safetensors"):
        from safetensors.torch import load

        try:
            return load(data)
        except Exception as err:  # safetensors raises its own SafetensorError (and others) on bad headers
            raise WeightsFileError("safetensors", first_line(err)) from err
    try:
        with warnings.catch_warnings():  # "Detected pickle protocol 4": the error says enough
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as err:  # UnpicklingError, RuntimeError (bad zip), EOFError, ...
        detail, python_objects = _torch_load_detail(err)
        raise WeightsFileError("torch", detail, python_objects=python_objects) from err


def _torch_load_detail(err: BaseException) -> tuple[str, bool]:
    """``(detail, python_objects)`` of a failed ``torch.load(weights_only=True)``, in our words.

    torch's refusal of Python objects spans several lines ("Unsupported global: GLOBAL x.y ..." or
    "Trying to load unsupported GLOBAL x.y whose module x is blocked") and advises loading with
    ``weights_only=False``, which would run the file's code: only the name of what the file refers
    to is kept, never that advice.
    """
    text = str(err).replace("\x1b[1m", "").replace("\x1b[0m", "")
    found = re.search(r"GLOBAL ([A-Za-z_][\w.]*)", text)
    if found:
        return f"it refers to {found.group(1)}", True
    unpickler = re.search(r"WeightsUnpickler error: ([^\n]*)", text)
    if unpickler and unpickler.group(1).strip():
        return unpickler.group(1).strip()[:200], False
    if "Weights only load failed" in text:
        return "its contents are not a pickle of tensors", False
    return first_line(err), False


def unwrap_state_dict(obj: object) -> dict[str, torch.Tensor]:
    """The state dict inside a loaded checkpoint.

    Accepts a plain state dict or the usual wrappers (``{"state_dict": ...}``,
    ``{"model_state_dict": ...}``, ``{"model": ...}``) and strips a ``module.`` prefix left by
    DataParallel. Raises ValueError for anything that is not a mapping of names to tensors.
    """
    if isinstance(obj, dict):
        for key in ("state_dict", "model_state_dict", "model"):
            if key in obj and isinstance(obj[key], dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj:
        raise ValueError("the file does not hold a state dict (a mapping of parameter names to tensors)")
    if not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
        raise ValueError("the file holds a mapping, but not one of parameter names to tensors")
    if all(k.startswith("module.") for k in obj):
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return obj


def check_state_dict(model: nn.Module, state_dict: dict[str, torch.Tensor], arch: str) -> None:
    """Raise :class:`StateDictMismatchError` unless ``state_dict`` has exactly the model's keys
    and shapes."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    shapes = [
        f"{k} {tuple(state_dict[k].shape)} vs expected {tuple(expected[k].shape)}"
        for k in expected
        if k in state_dict and tuple(state_dict[k].shape) != tuple(expected[k].shape)
    ]
    if missing or unexpected or shapes:
        raise StateDictMismatchError(arch, missing, unexpected, shapes)


def model_from_state_dict(arch: str, num_classes: int, state_dict: dict[str, torch.Tensor]) -> nn.Module:
    """Build ``arch`` and load ``state_dict`` with ``strict=True`` after a readable key check."""
    model = build_model(arch, num_classes)
    state_dict = unwrap_state_dict(state_dict)
    check_state_dict(model, state_dict, arch)
    model.load_state_dict(state_dict, strict=True)
    return model
