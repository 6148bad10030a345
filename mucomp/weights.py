"""Weights from outside: read safely, named by a hash, and checked against an architecture.

One check (:func:`check_weights`) for every way weights come in (an upload, an imported archive,
a bundle, a Hub reference or a published checkpoint): exactly the architecture's keys and shapes,
a floating value where it has floats (any floating precision; the caller says when one was
converted) and its own dtype for integer buffers, and only finite values. Each caller words the
result for its own users (:meth:`WeightsCheck.problem` gives one plain sentence).

Reading never runs code from a file: safetensors, or ``torch.load(weights_only=True)``.
torch is imported when a function needs it, so the store can name and check weights without
paying for it at import.
"""

from __future__ import annotations

import hashlib
import io
import re
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch


class WeightsFileError(ValueError):
    """A weights file could not be deserialized.

    ``kind`` is ``"safetensors"`` or ``"torch"``; ``detail`` the library's informative line;
    ``python_objects`` is true when a torch file was refused for holding Python objects other
    than tensors (``weights_only=True``). Callers word the message for their users.
    """

    def __init__(self, kind: str, detail: str, python_objects: bool = False) -> None:
        super().__init__(f"not a readable {kind} weights file ({detail})")
        self.kind, self.detail, self.python_objects = kind, detail, python_objects


def _listed(items: list[str], limit: int = 8) -> str:
    head = ", ".join(items[:limit])
    return head + (f" and {len(items) - limit} more" if len(items) > limit else "")


def _count(n: int, singular: str, plural: str) -> str:
    return f"{n} {singular if n == 1 else plural}"


class StateDictMismatchError(ValueError):
    """A state dict does not fit an architecture; the message lists the differing keys and ends
    with ``advice`` (what to do; by default: check the file's architecture and classes)."""

    def __init__(self, arch: str, missing: list[str], unexpected: list[str], shapes: list[str],
                 advice: str | None = None) -> None:
        self.missing, self.unexpected, self.shapes = missing, unexpected, shapes
        advice = advice or f"Check that the file was saved from a {arch} model with the same number of classes."
        super().__init__(f"the weights do not fit architecture {arch!r} ({mismatch_text(missing, unexpected, shapes)}). "
                         f"{advice}")


def mismatch_text(missing: list[str], unexpected: list[str], shapes: list[str]) -> str:
    """How a state dict differs from an architecture's, counted and listed:
    ``"2 missing keys: a, b; 1 shape differs: c ..."`` (the parts that apply, joined by "; ")."""
    parts = []
    if missing:
        parts.append(f"{_count(len(missing), 'missing key', 'missing keys')}: {_listed(missing)}")
    if unexpected:
        parts.append(f"{_count(len(unexpected), 'unexpected key', 'unexpected keys')}: {_listed(unexpected)}")
    if shapes:
        parts.append(f"{_count(len(shapes), 'shape differs', 'shapes differ')}: {_listed(shapes)}")
    return "; ".join(parts)


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
    import torch

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
    import torch

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


def weights_sha256(tensors: dict[str, torch.Tensor]) -> str:
    """The hash that names a set of weights: sha256 of their safetensors serialisation without
    metadata (names, dtypes, shapes and bytes; independent of how the file was written)."""
    from safetensors.torch import save

    canonical = {k: v.detach().cpu().contiguous() for k, v in sorted(tensors.items())}
    return hashlib.sha256(save(canonical)).hexdigest()


#: ``{key: (shape, dtype)}`` of an architecture's state dict.
Layout = dict[str, tuple[tuple[int, ...], Any]]


def layout_of(state: dict[str, torch.Tensor]) -> Layout:
    """The layout of a state dict (a model's own ``state_dict()``)."""
    return {k: (tuple(v.shape), v.dtype) for k, v in state.items()}


@dataclass
class WeightsCheck:
    """What :func:`check_weights` found. ``missing`` / ``unexpected``: keys; ``shapes``: ``"key
    (found) vs expected (shape)"``; ``dtypes``: keys whose values can't be used as they are
    (integers, booleans or complex where the model has floats; another type for an integer
    buffer); ``converted``: floating precisions that differ from the model's (they load, converted);
    ``non_finite``: keys holding NaN or infinite values."""

    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    shapes: list[str] = field(default_factory=list)
    dtypes: list[str] = field(default_factory=list)
    converted: list[str] = field(default_factory=list)
    non_finite: list[str] = field(default_factory=list)

    @property
    def fits(self) -> bool:
        """Exactly the architecture's keys and shapes."""
        return not (self.missing or self.unexpected or self.shapes)

    @property
    def ok(self) -> bool:
        """Loadable and evaluable: it fits, every value type is usable, every value finite."""
        return self.fits and not self.dtypes and not self.non_finite

    def mismatch(self, arch: str, advice: str | None = None) -> StateDictMismatchError:
        """The error naming what differs from ``arch``, ending with ``advice`` (what to do)."""
        return StateDictMismatchError(arch, self.missing, self.unexpected, self.shapes, advice)

    def problem(self, arch: str) -> str | None:
        """One sentence saying why the weights can't be used as ``arch`` (None when they can)."""
        if not self.fits:
            return str(self.mismatch(arch))
        if self.dtypes:
            return f"unexpected value types at {_listed(self.dtypes, 5)}"
        if self.non_finite:
            return f"NaN or infinite weights at {_listed(self.non_finite, 5)}"
        return None


def check_weights(state: dict[str, torch.Tensor], expected: Layout) -> WeightsCheck:
    """Compare a state dict with an architecture's layout (:func:`mucomp.models.expected_weights`): the one
    rule for weights that come from outside. Values are checked only once keys and shapes fit."""
    import torch

    check = WeightsCheck(
        missing=sorted(set(expected) - set(state)),
        unexpected=sorted(set(state) - set(expected)),
        shapes=[f"{k} {tuple(state[k].shape)} vs expected {shape}"
                for k, (shape, _) in expected.items() if k in state and tuple(state[k].shape) != tuple(shape)],
    )
    if not check.fits:
        return check
    # Any floating precision loads into a float parameter; integer buffers (BatchNorm's
    # num_batches_tracked) must keep their own dtype; complex, bool or integer weights are refused.
    for key, (_, dtype) in expected.items():
        found = state[key]
        if dtype.is_floating_point and found.is_floating_point():
            if found.dtype != dtype:
                check.converted.append(str(found.dtype).removeprefix("torch."))
        elif found.dtype != dtype:
            check.dtypes.append(key)
    check.converted = sorted(set(check.converted))
    check.non_finite = [k for k, t in state.items() if t.is_floating_point() and not bool(torch.isfinite(t).all())]
    return check


def safetensors_metadata(**fields: str) -> dict[str, str]:
    """A safetensors header's ``__metadata__`` that serialises the same way every time: one key,
    ``mucomp``, holding ``fields`` as sorted JSON. safetensors writes metadata from a hash map
    whose order changes from process to process, so two keys would make the same weights two
    different files."""
    import json

    return {"mucomp": json.dumps(fields, sort_keys=True)}
