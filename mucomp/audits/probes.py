"""Layer-wise decodability: can a linear probe still tell forget images from retain images at
each named layer? CKA alone is a weak forgetting signal; a model "forgotten only in the head"
keeps the class decodable in its body.

Per layer: standardise the flattened activations, reduce them by PCA to at most
:data:`MAX_COMPONENTS` dimensions (fitted on the train subsets), fit a logistic regression forget
vs retain on the train subsets (train-forget, train-retain) and score it by ROC AUC on the test
subsets (test-forget, test-retain). 0.5 = not decodable; 1 = perfectly decodable. Everything is
seeded and reads the activations the one evaluation pass keeps for the CKA subsets.

A layer wider than :data:`MAX_PROBE_WIDTH` values per image is first average-pooled
(:func:`reduced_width`): a convolution's feature map onto the finest grid that divides it and
keeps ``channels x grid <= MAX_PROBE_WIDTH`` (a CIFAR ResNet-18's ``conv1``, 64 x 32 x 32, onto 64 x
4 x 4), a transformer block's tokens onto their mean. Every channel stays; what the probe reads is
still the layer's representation, at a coarser spatial resolution, and the PCA and the fit cost
a few per cent of the full-width probe's (docs/definitions.md, "Layer-wise decodability"). The
digits and Fashion-MNIST layers up to 2,048 values are probed at full width as before.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

MAX_COMPONENTS = 256
#: Values per image above which a layer's activations are average-pooled before the probe.
MAX_PROBE_WIDTH = 2048


def reduced_width(x: np.ndarray, shape: Sequence[int] | None, cap: int = MAX_PROBE_WIDTH) -> np.ndarray:
    """``x`` (``[n, D]``, rows flattened from per-image ``shape``) average-pooled to at most
    ``cap`` values per image when ``D > cap``; unchanged otherwise or when ``shape`` is unknown.

    ``(C, H, W)``: each channel's map onto the largest ``s x s`` grid with ``s`` dividing ``H`` and
    ``W`` and ``C * s * s <= cap`` (``s = 1``, one mean per channel, when none fits);
    ``(tokens, width)``: the mean over the tokens. Returns ``[n, D']`` (float32 when pooled).
    """
    x = np.asarray(x)
    if shape is None or x.shape[1] <= cap or int(np.prod(shape)) != x.shape[1]:
        return x
    n = x.shape[0]
    if len(shape) == 3:
        channels, height, width = (int(d) for d in shape)
        side = max((s for s in range(1, min(height, width) + 1)
                    if height % s == 0 and width % s == 0 and channels * s * s <= cap), default=1)
        import torch  # lazily: the reading path imports this module without torch

        # torch's pooling reads the rows once; numpy's reduce over short strided runs was measured
        # about twice as slow on a CIFAR conv1 (64 x 32 x 32).
        maps = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).view(n, channels, height, width)
        pooled = torch.nn.functional.avg_pool2d(maps, (height // side, width // side))
        return pooled.reshape(n, channels * side * side).numpy()
    if len(shape) == 2:
        return x.reshape(n, int(shape[0]), int(shape[1])).mean(axis=1)
    return x


def principal_features(train_x: np.ndarray, test_x: np.ndarray, components: int) -> tuple[np.ndarray, np.ndarray]:
    """Standardise both sets with the train statistics and project them on the train set's top
    ``components`` principal axes; ``([n, k], [m, k])``, k <= components.

    The axes come from an eigendecomposition of whichever is smaller, the ``[n, n]`` Gram matrix
    or the ``[D, D]`` covariance (exact PCA, no random draws): activations of early layers are
    wide (a CIFAR conv layer flattens to 65,536 values per image) while the subsets hold a few
    hundred images.
    """
    mean, std = train_x.mean(axis=0), train_x.std(axis=0)
    std[std == 0] = 1.0  # constant features carry nothing; keep them finite
    a, b = (train_x - mean) / std, (test_x - mean) / std
    if a.shape[0] <= a.shape[1]:
        values, vectors = np.linalg.eigh(a @ a.T)  # ascending
        keep = values > values[-1] * 1e-10
        values, vectors = values[keep][::-1][:components], vectors[:, keep][:, ::-1][:, :components]
        axes = (a.T @ vectors) / np.sqrt(values)  # [D, k], orthonormal
    else:
        values, vectors = np.linalg.eigh(a.T @ a)
        axes = vectors[:, ::-1][:, :components]
    return a @ axes, b @ axes


def probe_auc(train_x: Any, train_y: Any, test_x: Any, test_y: Any, *, seed: int = 0) -> float:
    """ROC AUC on ``test_*`` of a linear probe fitted on ``train_*``.

    ``*_x``: ``[n, D]`` features; ``*_y``: ``[n]`` 0/1 labels (1 = forget). NaN when either set
    lacks one of the two labels.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    train_y, test_y = np.asarray(train_y).astype(int), np.asarray(test_y).astype(int)
    if len(set(train_y.tolist())) < 2 or len(set(test_y.tolist())) < 2:
        return float("nan")
    train_x = np.asarray(train_x, np.float64).reshape(len(train_y), -1)
    test_x = np.asarray(test_x, np.float64).reshape(len(test_y), -1)
    a, b = principal_features(train_x, test_x, MAX_COMPONENTS)
    probe = LogisticRegression(max_iter=500, random_state=seed).fit(a, train_y)
    return float(roc_auc_score(test_y, probe.predict_proba(b)[:, 1]))


def layer_probes(
    evals: Mapping[str, Any], subsets: Mapping[str, np.ndarray], layers: Sequence[str], *, seed: int = 0
) -> dict[str, float]:
    """``{layer: probe AUC}`` for one model.

    ``evals``: ``{"train": Evaluation, "test": Evaluation}`` whose activations cover ``subsets``
    (``scenario.cka_indices``: train_forget, train_retain, test_forget, test_retain).

    BLAS runs on one thread here: these are small dense problems (a few hundred rows, at most
    :data:`MAX_COMPONENTS` columns) where threads cost more than they save (digits, 2 cores:
    0.36 s a model with 2 BLAS threads, 0.20 s with 1), and one thread keeps the AUCs independent
    of the machine's thread settings.
    """
    from mucomp.blas import limited_blas

    with limited_blas(1):
        return _layer_probes(evals, subsets, layers, seed)


def _layer_probes(evals: Mapping[str, Any], subsets: Mapping[str, np.ndarray], layers: Sequence[str],
                  seed: int) -> dict[str, float]:
    out = {}
    for layer in layers:
        parts = {}
        for split in ("train", "test"):
            shape = getattr(evals[split], "activation_shapes", {}).get(layer)
            forget = reduced_width(evals[split].layer_activations(layer, subsets[f"{split}_forget"]), shape)
            retain = reduced_width(evals[split].layer_activations(layer, subsets[f"{split}_retain"]), shape)
            parts[split] = (np.concatenate([forget, retain]),
                            np.concatenate([np.ones(len(forget)), np.zeros(len(retain))]))
        out[layer] = probe_auc(*parts["train"], *parts["test"], seed=seed)
    return out
