"""A small store of digits-shaped results for the report tests (tests/test_report.py and
tests/test_report_browser.py): the Original, the Retrained model and unlearned runs of digits,
forget class 3, seed 0, with every block a page reads (per-class accuracies and matrices, attack
values, an embedding with its labels, CKA, leakage and probes), saved through the store's schema
check. Made from seeded random numbers in well under a second: the report reads stored results
only, so no model is trained (the real pipeline's results are checked by tests/test_compare.py).

One experiment carries a hostile method label: markup, a script end tag and external URLs, as a
plugin or an imported file could write it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

C, FORGET = 10, 3
LAYERS = ("block1", "block2", "fc")
SUBSETS = ("train_forget", "train_retain", "test_forget", "test_retain")
HOSTILE = ('<img src="https://evil.example/x.png" onerror="alert(1)"></script><a href="http://evil.example/">'
           "Evil</a> & 'co'")


def _probabilities(rng: np.random.Generator, n: int, winner: np.ndarray, sharpness: float) -> np.ndarray:
    logits = rng.normal(0.0, 1.0, (n, C))
    logits[np.arange(n), winner] += sharpness
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    return np.round(p / p.sum(axis=1, keepdims=True), 6)


def digits_result(kind: str, rng: np.random.Generator, *, forgets: float, method: str | None = None,
                  label: str | None = None, unlearn_seed: int = 0, epochs: int = 2, lr: float = 0.05) -> dict:
    """One stored-schema result; ``forgets`` in [0, 1]: how far it moved from the Original."""
    config = {"dataset": "digits", "forget": f"class:{FORGET}", "forget_class": FORGET, "train_seed": 0,
              "data_seed": 0, "arch": "digits_cnn", "unlearn_seed": unlearn_seed, "params": {}}
    if kind == "unlearned":
        config.update(method=method, base="original", epochs=epochs, lr=lr, batch_size=32)
    else:
        config.update(method=kind, base=None)
    accs = np.clip(rng.uniform(0.93, 1.0, C), 0, 1)
    accs[FORGET] = 1.0 - forgets
    t_accs = np.clip(accs - rng.uniform(0.0, 0.03, C), 0, 1)
    eye = np.eye(C)
    label_dist = eye * accs[:, None] + (1 - accs[:, None]) * (1 - eye) / (C - 1)
    forget_idx = np.arange(0, 60, dtype=int)  # 60 forget images
    entropy = np.clip(rng.normal(0.2 + 1.5 * forgets, 0.3, forget_idx.size), 0.0, 2.4)
    confidence = rng.normal(8.0 - 7.0 * forgets, 1.5, forget_idx.size)
    winner = np.where(rng.uniform(size=forget_idx.size) < forgets, (FORGET + 1) % C, FORGET)
    embedded = np.arange(100, 180, dtype=int)  # 80 embedded images, 8 per class
    labels = np.repeat(np.arange(C), 8)
    pred = labels.copy()
    pred[labels == FORGET] = np.where(rng.uniform(size=8) < forgets, (FORGET + 1) % C, FORGET)
    centres = rng.normal(0, 5, (C, 2))
    layout = centres[pred] + rng.normal(0, 0.5, (labels.size, 2))
    cka = {ref: {s: {layer: float(np.clip(1.0 - forgets * (k + 1) / 4 + rng.normal(0, 0.02), 0, 1))
                     for k, layer in enumerate(LAYERS)} for s in SUBSETS} for ref in ("original", "retrained")}
    mean_p = rng.dirichlet(np.ones(C)).round(6).tolist()
    result = {
        "kind": kind, "config": config, "method_label": label,
        "metrics": {"UA": float(accs[FORGET]), "RA": float(np.delete(accs, FORGET).mean()),
                    "TUA": float(t_accs[FORGET]), "TRA": float(np.delete(t_accs, FORGET).mean()),
                    "RT": None if kind != "unlearned" else float(rng.uniform(0.5, 3.0)),
                    "PS": float(rng.uniform(0.1, 0.9)), "PS_exact": float(rng.uniform(0.05, 0.1)),
                    "MIA_efficacy": float(forgets), "avg_gap": float(rng.uniform(0, 0.3)),
                    "accs": accs.round(6).tolist(), "t_accs": t_accs.round(6).tolist(),
                    "label_dist": label_dist.round(6).tolist(), "conf_dist": label_dist.round(6).tolist(),
                    "t_label_dist": label_dist.round(6).tolist(), "t_conf_dist": label_dist.round(6).tolist()},
        "attack": {"indices": forget_idx.tolist(), "entropy": entropy.round(6).tolist(),
                   "confidence": confidence.round(6).tolist(),
                   "probs": _probabilities(rng, forget_idx.size, winner, 4.0).tolist()},
        "embedding": {"indices": embedded.tolist(), "x": layout[:, 0].round(5).tolist(),
                      "y": layout[:, 1].round(5).tolist(), "pred": pred.tolist(), "labels": labels.tolist(),
                      "probs_t2": _probabilities(rng, labels.size, pred, 3.0).tolist()},
        "cka": {"layers": list(LAYERS), **cka},
        "audits": {"leakage": {"mean_probability": mean_p, "retrained_mean_probability": mean_p, "js_mean": 0.1,
                               "rank_counts": [1] * C, "retrained_rank_counts": [1] * C, "mean_rank": 2.0,
                               "retrained_mean_rank": 3.0},
                   "probes": {layer: float(rng.uniform(0.6, 0.9)) for layer in LAYERS}},
    }
    if kind == "unlearned":
        result["epochs"] = [{"epoch": e + 1, "forget_accuracy": 1.0 - forgets * (e + 1) / epochs, "loss": 0.1,
                             "seconds": 0.1 * (e + 1)} for e in range(epochs)]
    return result


RUNS = {"ga_0": ("ga", "Gradient ascent (GA)", 0.7, 0), "ga_1": ("ga", "Gradient ascent (GA)", 0.75, 1),
        "rl": ("rl", "Random labels (RL)", 0.95, 0), "hostile": ("evil_plugin", HOSTILE, 0.5, 0)}


def make_store(home: Path, runs: tuple[str, ...] = tuple(RUNS)) -> dict[str, str]:
    """A digits store under ``home/experiments``: the references and the ``runs`` of :data:`RUNS`
    (GA with two unlearning seeds, a replicate group; RL; the hostile-labelled plugin run);
    returns role -> experiment id."""
    from mucomp.store import ExperimentStore

    store = ExperimentStore(home / "experiments")
    rng = np.random.default_rng(0)
    ids = {
        "original": store.save(digits_result("original", rng, forgets=0.0)).id,
        "retrained": store.save(digits_result("retrained", rng, forgets=1.0)).id,
    }
    for role in runs:
        method, label, forgets, seed = RUNS[role]
        ids[role] = store.save(digits_result("unlearned", rng, forgets=forgets, method=method, label=label,
                                             unlearn_seed=seed)).id
    return ids
