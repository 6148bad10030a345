"""Layer-wise decodability: can a linear probe still tell forget images from retain images at
each named layer? CKA alone is a weak forgetting signal; a model "forgotten only in the head"
keeps the class decodable in its body.

Per layer: standardise the flattened activations, reduce them by PCA to at most
:data:`MAX_COMPONENTS` dimensions (fitted on the train subsets), fit a logistic regression forget
vs retain on the train subsets (train-forget, train-retain) and score it by ROC AUC on the test
subsets (test-forget, test-retain). 0.5 = not decodable; 1 = perfectly decodable. Everything is
seeded and reads the activations the one evaluation pass keeps for the CKA subsets.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

MAX_COMPONENTS = 256


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
            forget = evals[split].layer_activations(layer, subsets[f"{split}_forget"])
            retain = evals[split].layer_activations(layer, subsets[f"{split}_retain"])
            parts[split] = (np.concatenate([forget, retain]),
                            np.concatenate([np.ones(len(forget)), np.zeros(len(retain))]))
        out[layer] = probe_auc(*parts["train"], *parts["test"], seed=seed)
    return out
