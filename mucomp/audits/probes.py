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


def probe_auc(train_x: Any, train_y: Any, test_x: Any, test_y: Any, *, seed: int = 0) -> float:
    """ROC AUC on ``test_*`` of a linear probe fitted on ``train_*``.

    ``*_x``: ``[n, D]`` features; ``*_y``: ``[n]`` 0/1 labels (1 = forget). NaN when either set
    lacks one of the two labels.
    """
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    train_x, test_x = np.asarray(train_x, np.float64), np.asarray(test_x, np.float64)
    train_y, test_y = np.asarray(train_y).astype(int), np.asarray(test_y).astype(int)
    if len(set(train_y.tolist())) < 2 or len(set(test_y.tolist())) < 2:
        return float("nan")
    train_x, test_x = train_x.reshape(len(train_x), -1), test_x.reshape(len(test_x), -1)
    components = min(MAX_COMPONENTS, train_x.shape[0] - 1, train_x.shape[1])
    probe = make_pipeline(
        StandardScaler(),
        PCA(n_components=components, svd_solver="randomized", random_state=seed),
        LogisticRegression(max_iter=500, random_state=seed),
    )
    probe.fit(train_x, train_y)
    return float(roc_auc_score(test_y, probe.predict_proba(test_x)[:, 1]))


def layer_probes(
    evals: Mapping[str, Any], subsets: Mapping[str, np.ndarray], layers: Sequence[str], *, seed: int = 0
) -> dict[str, float]:
    """``{layer: probe AUC}`` for one model.

    ``evals``: ``{"train": Evaluation, "test": Evaluation}`` whose activations cover ``subsets``
    (``scenario.cka_indices``: train_forget, train_retain, test_forget, test_retain).
    """
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
