"""Test set-up: offline, CPU, and a private MUCOMP_HOME for the whole session.

The environment is set before anything imports huggingface_hub (it reads HF_HUB_OFFLINE at
import time) or mucomp.
"""

import os
import tempfile

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["MUCOMP_OFFLINE"] = "1"
os.environ["MUCOMP_DEVICE"] = "cpu"
if os.environ.get("PYTEST_XDIST_WORKER") or "MUCOMP_HOME" not in os.environ:
    # pytest-xdist workers inherit the controller's environment: each gets a home of its own.
    os.environ["MUCOMP_HOME"] = tempfile.mkdtemp(prefix="mucomp-test-home-")
os.environ["HF_HUB_CACHE"] = tempfile.mkdtemp(prefix="mucomp-test-hf-")
if not os.environ.get("PYTEST_XDIST_WORKER"):
    # One UMAP layout cache for the session (never the user's): the workers inherit it, and so do
    # the processes they start; a layout fitted once is read back wherever its inputs come back.
    os.environ["MUCOMP_CACHE_DIR"] = tempfile.mkdtemp(prefix="mucomp-test-cache-")
# pytest-xdist workers (pyproject's addopts) share the cores: each gets its share of threads for
# torch, BLAS and the processes it starts. Two workers of two threads each on 2 cores spent 40 %
# more CPU on the same suite (OpenMP and OpenBLAS threads spin while they wait for a core).
XDIST_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 0) if os.environ.get("PYTEST_XDIST_WORKER") else 0
CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
THREAD_SHARE = max(1, CORES // XDIST_WORKERS) if XDIST_WORKERS > 1 else None
if THREAD_SHARE is not None:
    # The references too (their own fixed count; a count other than 2 names its own cache files).
    for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "MUCOMP_TORCH_THREADS",
                  "MUCOMP_REFERENCE_THREADS"):
        os.environ.setdefault(_name, str(THREAD_SHARE))
os.environ.pop("MUCOMP_REFERENCE_DIR", None)

import pytest  # noqa: E402

from mucomp.data import Scenario  # noqa: E402

if THREAD_SHARE is not None:  # in case torch or numpy were imported before the variables were set
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(int(os.environ["MUCOMP_TORCH_THREADS"]))
    threadpool_limits(int(os.environ["OPENBLAS_NUM_THREADS"]), user_api="blas")


@pytest.fixture(scope="session")
def digits_scenario() -> Scenario:
    """Digits, forget class 3, seed 0: the acceptance scenario."""
    return Scenario("digits", 3, 0)


@pytest.fixture(scope="session")
def digits_references(digits_scenario, tmp_path_factory):
    """(original, retrained) ReferenceModels of the acceptance scenario, trained once per session.

    Under pytest-xdist the two workers train them side by side: each trains one of the two into a
    home they share (the reference cache's file lock makes the other wait for it, then read it)
    and copies both into its own cache, so each reference is trained once, not once per worker.
    """
    from mucomp.references import load_references

    if XDIST_WORKERS > 1:
        _train_shared_references(digits_scenario, tmp_path_factory.getbasetemp().parent / "shared-home")
    return load_references(digits_scenario)


def _train_shared_references(scenario, shared_home) -> None:
    from mucomp.references import load_reference
    from tests.helpers import seed_reference_cache

    first = int(os.environ["PYTEST_XDIST_WORKER"].removeprefix("gw") or 0) % 2
    kinds = ("original", "retrained")[first:] + ("original", "retrained")[:first]
    own_home = os.environ["MUCOMP_HOME"]
    shared_home.mkdir(exist_ok=True)
    os.environ["MUCOMP_HOME"] = str(shared_home)
    try:
        for kind in kinds:
            load_reference(scenario, kind)
    finally:
        os.environ["MUCOMP_HOME"] = own_home
    seed_reference_cache(own_home, scenario, kinds, from_home=shared_home)


@pytest.fixture(scope="session")
def digits_reference_evals(digits_scenario, digits_references):
    """{"original": {"train": Evaluation, "test": Evaluation}, "retrained": {...}}."""
    from mucomp.evaluation import evaluate_scenario

    original, retrained = digits_references
    return {
        "original": evaluate_scenario(original.model, digits_scenario),
        "retrained": evaluate_scenario(retrained.model, digits_scenario),
    }


@pytest.fixture(scope="module")
def original(digits_references):
    """The acceptance scenario's Original model (never modified: methods unlearn copies)."""
    return digits_references[0].model



#: The slowest modules (measured with --durations on 2 cores; heaviest first). pytest-xdist hands
#: whole files to its two workers in collection order (pyproject's addopts turn off its own
#: reordering by test count, which put the 75 s browser test last, alone), so the long ones go
#: first and the short ones fill in at the end (longest-first scheduling) instead of one worker
#: finishing a long file alone.
SLOW_MODULES_FIRST = ("test_methods", "test_browser", "test_ray", "test_app", "test_concurrency", "test_forget_sets",
                      "test_sharing", "test_execution", "test_runner", "test_audits_deep", "test_reference_check",
                      "test_sharing_hardening", "test_privacy", "test_references", "test_app_forget_kinds",
                      "test_replicate_integrity", "test_zoo", "test_report_browser", "test_cli_grid_worker",
                      "test_embedding", "test_ensembles", "test_compare", "test_vit", "test_fashion_mnist")


def pytest_collection_modifyitems(items) -> None:
    rank = {name: position for position, name in enumerate(SLOW_MODULES_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.stem, len(rank)))
