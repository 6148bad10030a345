"""One forward pass per model and split, collecting everything the views need.

:func:`evaluate` runs a model once over chosen images of a split, batched, in eval mode, under
``torch.inference_mode()``, and keeps:

- ``logits`` ``[n, C]`` (accuracy, prediction matrices, attack features, MIA),
- ``features`` ``[n, d]``, the input of the final linear layer (:func:`mucomp.models.penultimate_layer`:
  ``fc`` of a CNN, ``heads.head`` of a ViT, whose input is the class token after the encoder's
  final LayerNorm) for the embedding view,
- ``activations``: for a subset of the images only (the fixed CKA subsets), the flattened outputs
  of the named layers, ``{layer: [m, D_layer]}``. Keeping them for every image would not fit in
  memory: about 1.2 MB per image for ResNet-18 on CIFAR-10, 7.9 MB for ViT-B/16 (``conv_proj``
  768 x 14 x 14 and twelve encoder blocks of 197 x 768 tokens, float32), so the 500 kept images of
  one split hold 3.9 GB until :func:`mucomp.similarity.precompute_grams` replaces them by their
  Gram matrices.

The forward runs in fp32 unless ``MUCOMP_PRECISION`` asks for an autocast (:mod:`mucomp.precision`);
what leaves the model is float32 either way. Every metric reads from an :class:`Evaluation`; none
runs its own forward pass.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from mucomp.data import Split
from mucomp.models import penultimate_layer, to_memory_format
from mucomp.precision import autocast


@dataclass
class Evaluation:
    """The outputs of one model on images of one split.

    Attributes
    ----------
    split: ``"train"`` or ``"test"``.
    indices: ``[n]`` int64, the dataset indices evaluated, in order.
    labels: ``[n]`` int64 true labels.
    logits: ``[n, C]`` float32.
    features: ``[n, d]`` float32 penultimate features.
    activation_indices: ``[m]`` int64, the dataset indices whose activations were kept, in order.
    activations: layer name -> ``[m, D]`` float32, one flattened row per kept image.
    activation_shapes: layer name -> the shape of one image's output before flattening (``(C, H,
        W)`` for a convolution, ``(tokens, width)`` for a transformer block); empty when unknown.
    seconds: wall-clock time of the pass.
    precision: what the forward ran in: ``"fp32"``, ``"bf16"`` or ``"fp16"`` (:mod:`mucomp.precision`).
    grams: cache of layer Gram matrices for CKA, ``(layer, fingerprint of the dataset indices)``
        -> float64 ``[k, k]``; filled by :mod:`mucomp.similarity` (``layer_gram``,
        ``precompute_grams``), which may also empty ``activations`` to save memory.
    """

    split: str
    indices: np.ndarray
    labels: np.ndarray
    logits: np.ndarray
    features: np.ndarray
    activation_indices: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    activations: dict[str, np.ndarray] = field(default_factory=dict)
    activation_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    seconds: float = 0.0
    precision: str = "fp32"
    grams: dict[tuple[str, str], np.ndarray] = field(default_factory=dict, repr=False, compare=False)

    def __len__(self) -> int:
        return int(self.indices.size)

    @property
    def num_classes(self) -> int:
        return int(self.logits.shape[1])

    @property
    def predictions(self) -> np.ndarray:
        """Top-1 predicted class per image, ``[n]`` int64."""
        return self.logits.argmax(axis=1).astype(np.int64)

    def positions(self, dataset_indices: np.ndarray) -> np.ndarray:
        """Row positions of ``dataset_indices`` in this evaluation; KeyError if one is absent."""
        return _positions(self.indices, dataset_indices, "evaluation")

    def select(self, dataset_indices: np.ndarray) -> Evaluation:
        """The rows of ``dataset_indices`` (in that order) as a new Evaluation, no activations."""
        rows = self.positions(dataset_indices)
        return Evaluation(
            split=self.split,
            indices=self.indices[rows],
            labels=self.labels[rows],
            logits=self.logits[rows],
            features=self.features[rows],
            precision=self.precision,
        )

    def layer_activations(self, layer: str, dataset_indices: np.ndarray) -> np.ndarray:
        """Activations ``[k, D]`` of ``layer`` for ``dataset_indices`` (which must have been kept)."""
        if layer not in self.activations:
            if any(name == layer for name, _ in self.grams):
                raise KeyError(
                    f"the activations of layer {layer!r} were dropped after precomputing its Gram matrices "
                    "(mucomp.similarity.precompute_grams); only CKA on those subsets is available"
                )
            raise KeyError(f"layer {layer!r} was not recorded; recorded: {sorted(self.activations)}")
        rows = _positions(self.activation_indices, dataset_indices, "kept activations")
        return self.activations[layer][rows]


def _positions(haystack: np.ndarray, needles: np.ndarray, what: str) -> np.ndarray:
    needles = np.asarray(needles, dtype=np.int64)
    order = np.argsort(haystack, kind="stable")
    found = np.searchsorted(haystack, needles, sorter=order)
    found = np.clip(found, 0, max(haystack.size - 1, 0))
    rows = order[found] if haystack.size else np.zeros(0, dtype=np.int64)
    if needles.size and (haystack.size == 0 or not np.array_equal(haystack[rows], needles)):
        missing = np.setdiff1d(needles, haystack)[:5]
        raise KeyError(f"dataset indices {missing.tolist()} are not in this {what}")
    return rows


def evaluate(
    model: nn.Module,
    split: Split,
    indices: np.ndarray | None = None,
    layers: list[str] | tuple[str, ...] = (),
    activation_indices: np.ndarray | None = None,
    *,
    batch_size: int | None = None,
    device: torch.device | str | None = None,
    progress: Callable[[int, int], None] | None = None,
    precision: str | None = None,
) -> Evaluation:
    """Run ``model`` once over ``split[indices]`` and collect logits, features and activations.

    Parameters
    ----------
    model:
        A mucomp model (it must end in an ``nn.Linear`` named ``fc``, or ``heads.head`` for a
        ViT: see :func:`mucomp.models.penultimate_layer`). Its train/eval mode is restored
        afterwards; its weights are not touched.
    split:
        The data split the indices refer to.
    indices:
        Dataset indices to evaluate, ``[n]``; default: the whole split.
    layers:
        Named modules (see :func:`mucomp.models.layer_names`) whose outputs to keep.
    activation_indices:
        The dataset indices whose layer outputs are kept (a subset of ``indices``); default:
        all of ``indices`` when ``layers`` is given.
    batch_size:
        Images per forward call; default the model's ``eval_batch_size`` when it has one, else 512,
        64 for a model that resizes its input to 224 (ViT-B/16: 64 images are 38 MB of input and
        about 2 GB of transient activations).
    device:
        Where to run; default: the device of the model's parameters.
    progress:
        ``progress(images_done, images_total)`` after every batch.
    precision:
        ``"fp32"``, ``"bf16"`` or ``"fp16"``; default ``$MUCOMP_PRECISION`` (unset: fp32). See
        :mod:`mucomp.precision` for what each gives on the device.
    """
    indices = np.arange(len(split), dtype=np.int64) if indices is None else np.asarray(indices, dtype=np.int64)
    layers = list(layers)
    if activation_indices is None:
        activation_indices = indices if layers else np.zeros(0, dtype=np.int64)
    activation_indices = np.asarray(activation_indices, dtype=np.int64)
    keep = np.isin(indices, activation_indices)
    if layers and keep.sum() != np.unique(activation_indices).size:
        raise ValueError("activation_indices must be a subset of indices")
    device = next(model.parameters()).device if device is None else device
    if batch_size is None:
        batch_size = getattr(model, "eval_batch_size", 64 if getattr(model, "image_size", 0) >= 224 else 512)
    to_memory_format(model)
    recorder = _Recorder(model, layers)
    was_training = model.training
    model.eval()
    start = time.perf_counter()
    try:
        with torch.inference_mode(), autocast(device, precision) as ran_in:
            logits = _forward(model, split, indices, keep, recorder, batch_size, device, progress)
    finally:
        recorder.remove()
        model.train(was_training)
    seconds = time.perf_counter() - start
    head = penultimate_layer(model)
    return Evaluation(
        split=split.name,
        indices=indices,
        labels=split.labels_np[indices],
        logits=torch.cat(logits).numpy() if logits else np.zeros((0, head.out_features), np.float32),
        features=torch.cat(recorder.features).numpy() if recorder.features else np.zeros((0, head.in_features), np.float32),
        activation_indices=indices[keep],
        activations={name: torch.cat(parts).numpy() for name, parts in recorder.layers.items() if parts},
        activation_shapes={name: shape for name, shape in recorder.shapes.items() if recorder.layers[name]},
        seconds=seconds,
        precision=ran_in,
    )


class _Recorder:
    """Forward hooks that keep the penultimate features of every image and the outputs of the
    named ``layers`` for the images the current batch's ``mask`` marks (float32, on the CPU)."""

    def __init__(self, model: nn.Module, layers: list[str]) -> None:
        modules = dict(model.named_modules())
        unknown = [name for name in layers if name not in modules]
        if unknown:
            raise ValueError(f"the model has no layers named {unknown}")
        self.features: list[torch.Tensor] = []
        self.layers: dict[str, list[torch.Tensor]] = {name: [] for name in layers}
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.mask: torch.Tensor | None = None
        self._handles = [penultimate_layer(model).register_forward_pre_hook(self._grab_features)]
        self._handles += [modules[name].register_forward_hook(self._grab_layer(name)) for name in layers]

    def _grab_features(self, _module, inputs) -> None:
        self.features.append(inputs[0].detach().float().cpu())

    def _grab_layer(self, name: str):
        def hook(_module, _inputs, output) -> None:
            if self.mask is not None and self.mask.any():
                self.shapes[name] = tuple(int(d) for d in output.shape[1:])
                self.layers[name].append(output[self.mask].detach().flatten(1).float().cpu())

        return hook

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()


def _forward(model: nn.Module, split: Split, indices: np.ndarray, keep: np.ndarray, recorder: _Recorder,
             batch_size: int, device: torch.device | str, progress) -> list[torch.Tensor]:
    """The forward passes over ``split[indices]`` in batches; returns the logits of each batch."""
    logits: list[torch.Tensor] = []
    for lo in range(0, indices.size, batch_size):
        batch = indices[lo : lo + batch_size]
        recorder.mask = torch.from_numpy(keep[lo : lo + batch_size]).to(device)
        images, _ = split.batch(batch)
        images = images.to(device)
        if images.device.type == "cpu":
            # oneDNN convolutions run about 25% faster on channels-last input on a CPU.
            images = images.contiguous(memory_format=torch.channels_last)
        logits.append(model(images).float().cpu())
        if progress is not None:
            progress(min(lo + batch_size, indices.size), indices.size)
    return logits


def evaluate_scenario(
    model: nn.Module,
    scenario,
    layers: list[str] | tuple[str, ...] | None = None,
    *,
    device: torch.device | str | None = None,
    progress: Callable[[int, int], None] | None = None,
    precision: str | None = None,
) -> dict[str, Evaluation]:
    """``{"train": Evaluation, "test": Evaluation}`` of ``model`` on a scenario's whole splits.

    One pass per split. Activations of ``layers`` (default: every layer CKA reads) are kept for
    the scenario's CKA subsets only; pass ``layers=()`` to keep none. ``progress(done, total)``
    counts images over both splits. ``precision``: as in :func:`evaluate`.
    """
    from mucomp.models import layer_names

    layers = layer_names(scenario.arch) if layers is None else list(layers)
    out = {}
    total = len(scenario.data.train) + len(scenario.data.test)
    offset = 0
    for split_name in ("train", "test"):
        split = scenario.data.split(split_name)

        def report(done: int, _total: int, offset: int = offset) -> None:
            if progress is not None:
                progress(offset + done, total)

        out[split_name] = evaluate(
            model,
            split,
            None,
            layers,
            scenario.activation_indices(split_name) if layers else None,
            device=device,
            progress=report,
            precision=precision,
        )
        offset += len(split)
    return out
