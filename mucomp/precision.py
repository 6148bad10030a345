"""Numeric precision of the evaluation pass: fp32 (the default) or an opt-in autocast.

``MUCOMP_PRECISION`` (or ``mucomp --precision``) chooses it for every evaluation of the process
and of the worker processes it starts (they inherit the environment):

- ``fp32`` (default): float32 throughout, the figures mucomp documents.
- ``bf16``: the model's forward runs under ``torch.autocast`` in bfloat16: on a CPU whose oneDNN
  has native bfloat16 kernels (AVX512-BF16 or AMX; :func:`cpu_bf16_supported`), on a CUDA GPU
  that supports it (else float16). Where neither holds the pass stays in fp32.
- ``fp16``: float16 autocast on CUDA; elsewhere (no fast float16 kernels on a CPU) fp32.

Only the forward of :func:`mucomp.evaluation.evaluate` changes: logits, penultimate features and
kept activations are converted to float32 when they leave the model, and everything computed
from them (metrics, attack, CKA in float64, UMAP) runs as before. Unlearning and training stay in
fp32. ``benchmarks/precision_bf16.py`` measures the speed-up and how far UA, TRA, PS and CKA move.

Autocast is PyTorch's automatic mixed precision (``torch.amp``): matrix products and convolutions
run in the lower precision, reductions and normalisations in float32
(https://pytorch.org/docs/stable/amp.html).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch

PRECISIONS = ("fp32", "bf16", "fp16")
ENV = "MUCOMP_PRECISION"


def requested_precision(value: str | None = None) -> str:
    """``value`` (default ``$MUCOMP_PRECISION``, unset: ``fp32``) checked against
    :data:`PRECISIONS`; ValueError says what is allowed."""
    text = (os.environ.get(ENV, "") if value is None else value).strip().lower() or "fp32"
    aliases = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16", "half": "fp16"}
    text = aliases.get(text, text)
    if text not in PRECISIONS:
        raise ValueError(f"{ENV}={text!r} is not a precision; use one of {', '.join(PRECISIONS)}")
    return text


def cpu_bf16_supported() -> bool:
    """Whether this CPU runs bfloat16 matrix products natively (oneDNN's check: AVX512-BF16 or
    AMX); without it bfloat16 is emulated and slower than fp32."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a build without oneDNN
        return False


def autocast_dtype(device: torch.device | str, precision: str | None = None) -> torch.dtype | None:
    """The autocast dtype ``precision`` (default :func:`requested_precision`) gives on
    ``device``, or None for plain fp32 (asked for, or nothing faster available there)."""
    precision = requested_precision(precision)
    device = torch.device(device)
    if precision == "fp32":
        return None
    if device.type == "cuda":
        if precision == "bf16" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float16
    if device.type == "cpu" and precision == "bf16" and cpu_bf16_supported():
        return torch.bfloat16
    return None


def effective_precision(device: torch.device | str, precision: str | None = None) -> str:
    """What an evaluation on ``device`` actually runs in: ``fp32``, ``bf16`` or ``fp16``."""
    dtype = autocast_dtype(device, precision)
    return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]


@contextlib.contextmanager
def autocast(device: torch.device | str, precision: str | None = None) -> Iterator[str]:
    """Run the block under the autocast ``precision`` selects on ``device`` (no-op for fp32);
    yields the effective precision (``fp32`` / ``bf16`` / ``fp16``)."""
    device = torch.device(device)
    dtype = autocast_dtype(device, precision)
    if dtype is None:
        yield "fp32"
        return
    with torch.autocast(device_type=device.type, dtype=dtype):
        yield "bf16" if dtype == torch.bfloat16 else "fp16"

