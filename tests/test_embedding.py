"""Embedding space: seeded UMAP, twin alignment, the layout cache and the per-point table.

UMAP compiles for about 10 s on the first fit of a process: the real fits here share one
module-scoped warm-up and use small inputs; everything else runs on a stub layout function.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mucomp import embedding as emb
from mucomp.embedding import (
    FILTERS,
    STATUSES,
    embed,
    exact_knn,
    filter_mask,
    layout_spread,
    mean_displacement,
    point_status,
    points_frame,
    probabilities,
    procrustes_align,
)
from mucomp.evaluation import Evaluation

SMALL_SEED = 7

# umap-learn warns that transform() is unavailable with a precomputed kNN graph; mucomp.embedding
# silences that at import, but pytest resets warning filters per test.
pytestmark = pytest.mark.filterwarnings("ignore:precomputed_knn")


def small_features() -> np.ndarray:
    """150 points in 16-D around three centres; the child processes rebuild exactly this."""
    rng = np.random.default_rng(42)
    centres = np.repeat(np.arange(3), 50)[:, None] * 4.0
    return (rng.standard_normal((150, 16)) + centres).astype(np.float32)


CHILD = """
import hashlib, sys
sys.path.insert(0, {tests!r})
from test_embedding import small_features, SMALL_SEED
from mucomp.embedding import embed
print(hashlib.sha256(embed(small_features(), SMALL_SEED).tobytes()).hexdigest())
"""


def digest(layout: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(layout).tobytes()).hexdigest()


@pytest.fixture(scope="module", autouse=True)
def no_layout_cache():
    """Every fit here is a real one (the layout cache has tests of its own below)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MUCOMP_CACHE_DIR", "off")
        yield


@pytest.fixture(scope="module")
def warm():
    """Compile UMAP once for this module (the warm-up is idempotent across the session)."""
    thread = emb.warm_up(background=True)
    assert emb.warm_up(background=False) is thread
    assert emb.is_warm() and emb.warm_up_error() is None
    return thread


@pytest.fixture(scope="module")
def small_layout(warm):
    return embed(small_features(), SMALL_SEED)


def stub_layout(features: np.ndarray, seed: int) -> np.ndarray:
    """A cheap deterministic stand-in for UMAP: the first two centred columns plus a seed shift."""
    x = np.asarray(features, dtype=np.float64)
    return x[:, :2] - x[:, :2].mean(axis=0) + seed


# --- UMAP --------------------------------------------------------------------------------------


def test_warm_up_is_idempotent(warm):
    assert emb.warm_up() is warm
    assert emb.is_warm()
    if warm is None:
        # An earlier test in this process already fitted UMAP: nothing is left to compile.
        assert emb.warm_up(background=False) is None
    else:
        assert warm.daemon and warm.name == "mucomp-umap-warm-up"
        assert not warm.is_alive()


def test_same_seed_gives_identical_coordinates_in_two_processes(small_layout):
    # This process and one child: two processes, each compiling and fitting on its own.
    code = CHILD.format(tests=str(Path(__file__).parent))
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                           env={**os.environ, "MUCOMP_CACHE_DIR": "off"})
    assert child.returncode == 0, child.stderr[-2000:]
    assert child.stdout.strip().splitlines()[-1] == digest(small_layout)
    assert small_layout.shape == (150, 2) and small_layout.dtype == np.float64
    assert np.isfinite(small_layout).all()


def test_pynndescents_kernels_compile_only_when_called_and_umaps_keep_their_signatures(small_layout):
    # umap-learn imports pynndescent, whose kernels declared with signatures would compile as it is
    # imported (about 20 s of CPU on a machine's first import); a fit never calls them.
    import pynndescent.rp_trees
    import pynndescent.utils
    import umap.utils

    for kernel in (pynndescent.utils.tau_rand_int, pynndescent.utils.norm, pynndescent.rp_trees.make_euclidean_tree):
        assert kernel.signatures == [], kernel
    # umap-learn's own random generator kept its declared int32 signature (it shapes the layouts).
    assert [str(s) for s in umap.utils.tau_rand_int.signatures] == ["(Array(int64, 1, 'A', False, aligned=True),)"]
    assert umap.utils.tau_rand_int.nopython_signatures[0].return_type.name == "int32"


def test_layout_keeps_the_clusters_apart(small_layout):
    groups = [small_layout[k * 50 : (k + 1) * 50] for k in range(3)]
    centres = np.array([g.mean(axis=0) for g in groups])
    within = max(float(np.linalg.norm(g - g.mean(axis=0), axis=1).mean()) for g in groups)
    between = min(np.linalg.norm(centres[i] - centres[j]) for i in range(3) for j in range(i + 1, 3))
    assert between > 2 * within


def test_aligned_twin_of_a_model_with_itself_lies_on_top(small_layout):
    features = small_features()
    layout_a, layout_b = embed(features, SMALL_SEED), embed(features, SMALL_SEED)  # two separate fits
    layout_b, _ = procrustes_align(layout_b, layout_a, scale="spread")
    np.testing.assert_array_equal(layout_a, small_layout)
    assert mean_displacement(layout_a, layout_b) < 1e-6 * layout_spread(layout_a)


def test_initialised_layout_and_seed_change(small_layout):
    features = small_features()
    other_seed = embed(features, SMALL_SEED + 1)
    assert not np.array_equal(other_seed, small_layout)
    started = embed(features, SMALL_SEED, init=small_layout)
    assert started.shape == (150, 2) and np.isfinite(started).all()


def test_the_same_inputs_read_their_layout_back_and_other_inputs_fit_anew(small_layout, tmp_path, monkeypatch):
    from mucomp import layout_cache

    monkeypatch.setenv("MUCOMP_CACHE_DIR", str(tmp_path / "cache"))
    features = small_features()
    first = embed(features, SMALL_SEED)  # a fit, stored
    np.testing.assert_array_equal(first, small_layout)
    [stored] = (tmp_path / "cache" / "layouts").glob("*.npy")
    fits = []
    real_fit = emb._fit_umap
    monkeypatch.setattr(emb, "_fit_umap", lambda *args: fits.append(args) or real_fit(*args))
    np.testing.assert_array_equal(embed(features, SMALL_SEED), small_layout)
    assert fits == []  # read back
    nudged = features.copy()
    nudged[0, 0] = np.nextafter(nudged[0, 0], np.float32(np.inf))  # one bit of one feature
    for args in ((nudged, SMALL_SEED), (features, SMALL_SEED + 1), (features, SMALL_SEED, small_layout)):
        embed(*args)
    assert len(fits) == 3 and len(list(stored.parent.glob("*.npy"))) == 4

    # A damaged or foreign file under the key is not used: the layout is fitted and stored again.
    for damaged in (b"not a numpy file", None):
        if damaged is None:
            np.save(stored, np.full((150, 2), np.nan))
        else:
            stored.write_bytes(damaged)
        fits.clear()
        np.testing.assert_array_equal(embed(features, SMALL_SEED), small_layout)
        assert len(fits) == 1 and np.array_equal(np.load(stored), small_layout)

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as patch:  # a cache that cannot be written: the layout all the same, no file left
        patch.setattr(layout_cache.np, "save", disk_full)
        np.testing.assert_array_equal(embed(features, SMALL_SEED + 2), embed(features, SMALL_SEED + 2))
    assert not [p for p in stored.parent.iterdir() if p.suffix == ".tmp"]

    monkeypatch.setattr(layout_cache, "MAX_FILES", 2)  # the oldest files go first
    layout_cache.write_layout("f" * 64, small_layout)
    assert len(list(stored.parent.glob("*.npy"))) == 2 and (stored.parent / f"{'f' * 64}.npy").exists()
    monkeypatch.setenv("MUCOMP_CACHE_DIR", "off")
    assert layout_cache.cache_dir() is None and layout_cache.read_layout("f" * 64, 150) is None


def test_embed_rejects_bad_input():
    x = small_features()
    with pytest.raises(ValueError, match="at least 10 points"):
        embed(x[:9], 0)
    with pytest.raises(ValueError, match="NaN"):
        embed(np.where(x > 3, np.nan, x), 0)
    with pytest.raises(ValueError, match=r"\[n, d\]"):
        embed(x[:, 0], 0)
    with pytest.raises(ValueError, match="seed"):
        embed(x, -1)
    with pytest.raises(ValueError, match="init"):
        embed(x, 0, init=np.zeros((150, 3)))


def test_exact_knn_matches_brute_force():
    from sklearn.neighbors import NearestNeighbors

    x = small_features()[::2] + 100.0  # a large offset must not cost precision
    indices, distances = exact_knn(x, 9)
    assert indices.shape == distances.shape == (75, 9)
    np.testing.assert_array_equal(indices[:, 0], np.arange(75))
    assert (distances[:, 0] == 0).all() and (np.diff(distances, axis=1) >= 0).all()
    ref_dist, ref_idx = NearestNeighbors(n_neighbors=9, algorithm="brute").fit(x.astype(np.float64)).kneighbors()
    np.testing.assert_allclose(distances[:, 1:], ref_dist[:, :8], rtol=1e-5)
    np.testing.assert_array_equal(np.sort(indices[:, 1:], axis=1), np.sort(ref_idx[:, :8], axis=1))


# --- Procrustes --------------------------------------------------------------------------------


@pytest.mark.parametrize("reflect", [False, True])
def test_procrustes_recovers_a_similarity_transform(reflect):
    rng = np.random.default_rng(0)
    fixed = rng.standard_normal((80, 2)) * [3.0, 1.0]
    angle = 1.1
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    if reflect:
        rotation = rotation @ np.diag([1.0, -1.0])
    moving = 0.37 * fixed @ rotation + [5.0, -2.0]
    aligned, transform = procrustes_align(moving, fixed)
    np.testing.assert_allclose(aligned, fixed, atol=1e-10)
    assert transform.scale == pytest.approx(1 / 0.37)
    assert np.linalg.det(transform.rotation) == pytest.approx(-1.0 if reflect else 1.0)
    np.testing.assert_allclose(transform.apply(moving), aligned)


def test_spread_scaling_puts_a_dissimilar_layout_in_the_same_frame_without_squeezing_it():
    rng = np.random.default_rng(3)
    fixed, moving = rng.normal(size=(200, 2)), rng.normal(size=(200, 2))  # unrelated layouts
    squeezed, _ = procrustes_align(moving, fixed)  # least squares shrinks it towards the centre
    framed, transform = procrustes_align(moving, fixed, scale="spread")
    assert layout_spread(squeezed) < 0.5 * layout_spread(fixed)
    assert layout_spread(framed) == pytest.approx(layout_spread(fixed))
    assert np.allclose(framed.mean(axis=0), fixed.mean(axis=0))
    with pytest.raises(ValueError, match="'spread'"):
        procrustes_align(moving, fixed, scale="big")


def test_procrustes_fits_on_shared_points_and_moves_all():
    rng = np.random.default_rng(1)
    fixed = rng.standard_normal((50, 2))
    moving = np.vstack([2.0 * fixed[:, ::-1], rng.standard_normal((5, 2))])  # 5 extra points of B
    aligned, _ = procrustes_align(moving, fixed, pairs=(np.arange(50), np.arange(50)))
    assert aligned.shape == (55, 2)
    np.testing.assert_allclose(aligned[:50], fixed, atol=1e-10)
    unscaled, transform = procrustes_align(2.0 * fixed, fixed, scale=False)
    assert transform.scale == 1.0 and layout_spread(unscaled) == pytest.approx(2 * layout_spread(fixed))
    with pytest.raises(ValueError, match="pairs"):
        procrustes_align(moving, fixed)
    with pytest.raises(ValueError, match="one place"):
        procrustes_align(np.zeros((4, 2)), fixed[:4])
    with pytest.raises(ValueError, match=r"\[n, 2\]"):
        procrustes_align(np.zeros((4, 3)), fixed[:4])


# --- cache -------------------------------------------------------------------------------------


def test_point_status_definitions():
    true = np.array([3, 3, 1, 1, 2])
    pred = np.array([3, 5, 1, 3, 0])
    assert list(point_status(true, pred, 3)) == [
        "not_forgotten", "correctly_forgotten", "retained", "overly_forgotten", "overly_forgotten",
    ]
    assert set(point_status(true, pred, 3)) <= set(STATUSES)


def make_eval(indices, labels, logits, features) -> Evaluation:
    return Evaluation("train", np.asarray(indices), np.asarray(labels), np.asarray(logits, np.float32),
                      np.asarray(features, np.float32))


def test_points_frame_table_and_filters():
    rng = np.random.default_rng(3)
    n, classes = 40, 4
    wanted = np.arange(500, 500 + n)[::-1][:30]  # any order, a subset
    labels = np.arange(30) % classes
    logits_a = np.eye(classes)[labels] * 5 + rng.standard_normal((30, classes))
    logits_b = rng.standard_normal((30, classes)) * 3
    layout_a, layout_b = stub_layout(rng.standard_normal((30, 6)), 0), stub_layout(rng.standard_normal((30, 6)), 0)
    soft = lambda z: np.exp(z / 2) / np.exp(z / 2).sum(1, keepdims=True)  # noqa: E731
    points = points_frame(wanted, labels, 1, layout_a, layout_b, logits_a.argmax(1), logits_b.argmax(1),
                          soft(logits_a), soft(logits_b))

    assert list(points.columns[:13]) == [
        "index", "true_class", "pred_a", "pred_b", "is_forget", "x_a", "y_a", "x_b", "y_b",
        "status_a", "status_b", "conf_a", "conf_b",
    ]
    assert list(points.columns[13:]) == [f"prob_a_{k}" for k in range(classes)] + [f"prob_b_{k}" for k in range(classes)]
    np.testing.assert_array_equal(points["index"], wanted)
    np.testing.assert_array_equal(points["true_class"], labels)
    np.testing.assert_array_equal(points["pred_a"], logits_a.argmax(1))
    np.testing.assert_array_equal(points["is_forget"], labels == 1)
    np.testing.assert_allclose(probabilities(points, "b"), soft(logits_b), rtol=1e-5)
    np.testing.assert_allclose(probabilities(points, "a").sum(1), 1.0)
    np.testing.assert_allclose(points["conf_b"], soft(logits_b).max(1), rtol=1e-5)
    np.testing.assert_allclose(points[["x_a", "y_a"]].to_numpy(), layout_a)
    np.testing.assert_allclose(points[["x_b", "y_b"]].to_numpy(), layout_b)

    for model in ("a", "b"):
        status = points[f"status_{model}"].to_numpy()
        assert filter_mask(points, "all", model).all()
        np.testing.assert_array_equal(filter_mask(points, "target", model), points["is_forget"])
        for name in ("correctly_forgotten", "not_forgotten", "overly_forgotten"):
            np.testing.assert_array_equal(filter_mask(points, name, model), status == name)
        target = filter_mask(points, "target", model)
        assert (target == (filter_mask(points, "correctly_forgotten", model)
                           | filter_mask(points, "not_forgotten", model))).all()
    assert set(FILTERS) == {"all", "target", "correctly_forgotten", "not_forgotten", "overly_forgotten"}
    with pytest.raises(ValueError, match="unknown filter"):
        filter_mask(points, "forgotten")
