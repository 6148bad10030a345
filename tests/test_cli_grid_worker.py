"""Issue 30: ``mucomp run`` runs grids, replicates and plugin methods in a worker process (a run
that ends its process fails alone, with the reason), and exits with 1, never an abort, when a run
fails while UMAP's compilation is still under way in the command's process."""

import json
import os
import subprocess
import sys
import textwrap
from argparse import Namespace
from pathlib import Path

import pytest

from mucomp.cli.runs import _may_run_here, _runs_here

ROOT = Path(__file__).resolve().parents[1]

CRASHING_PLUGIN = '''
import os

import torch.nn.functional as F

from mucomp.methods import Param, register


@register("crash_on_demand", label="FT that may end its process",
          defaults={"epochs": 1, "lr": 0.01, "batch_size": 64, "crash": 0}, params=[Param("crash", "int", min=0, max=1)])
def crash_on_demand(ctx):
    if ctx.hyper["crash"]:
        os._exit(1)  # what a native crash or the OOM killer does to the process, as far as mucomp sees
    for _ in ctx.epochs():
        for x, y in ctx.retain_batches():
            ctx.step(F.cross_entropy(ctx.model(x), y))
'''


def _args(**given) -> Namespace:
    defaults = {"executor": "local", "workers": None, "method": "ga", "grid": [], "seeds": None, "train_seeds": None}
    return Namespace(**{**defaults, **given})


def test_where_runs_execute():
    assert _runs_here(_args(), 1, builtin=True) and _may_run_here(_args())
    assert not _runs_here(_args(grid=["epochs=1,2"]), 2, builtin=True) and not _may_run_here(_args(grid=["epochs=1,2"]))
    assert not _runs_here(_args(seeds="0-4"), 5, builtin=True) and not _may_run_here(_args(seeds="0-4"))
    assert not _runs_here(_args(method="mine"), 1, builtin=False) and not _may_run_here(_args(method="mine"))
    assert _runs_here(_args(workers=0), 3, builtin=False) and _may_run_here(_args(workers=0))  # asked for
    assert not _runs_here(_args(workers=2), 1, builtin=True) and not _may_run_here(_args(workers=2))
    assert not _runs_here(_args(executor="ray"), 1, builtin=True) and not _may_run_here(_args(executor="ray"))


def _cli(env: dict, *args: str, timeout: float = 540) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mucomp.cli", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture
def plugin_env(tmp_path, digits_references) -> dict:
    """The session's environment (its MUCOMP_HOME holds the digits class-3 references) with the
    crashing plugin."""
    plugin = tmp_path / "crash_plugin.py"
    plugin.write_text(textwrap.dedent(CRASHING_PLUGIN))
    return {**os.environ, "MUCOMP_PLUGINS": str(plugin)}


def test_a_grid_goes_to_a_worker_process_that_a_member_may_end():
    """The CLI's grid runs in the local backend's worker processes; that a worker a job ends fails
    that job alone, is replaced and the next job runs is tests/test_execution.py's
    ``test_a_worker_that_exits_fails_its_job_and_is_replaced`` (the same executor)."""
    from mucomp.cli.runs import _executor

    executor = _executor(_args(grid=["epochs=1,2"]), 2, here=False)
    try:
        assert executor.kind == "local" and executor.ready()
        assert executor.worker_pids() and os.getpid() not in executor.worker_pids()
    finally:
        executor.shutdown()


QUICK_FAILURE = '''
import json, sys, threading

import mucomp.embedding as embedding
import mucomp.references as references

failed = threading.Event()
compile_umap = embedding._warm_up_worker


def warm_up_after_the_failure():
    failed.wait()  # the worst timing: numba starts compiling just as the run fails
    compile_umap()


def download_checkpoint(*args, **kwargs):
    try:
        return real_download(*args, **kwargs)
    finally:
        failed.set()


real_download, references.download_checkpoint = references.download_checkpoint, download_checkpoint
embedding._warm_up_worker = warm_up_after_the_failure

from mucomp.cli import main

code = main(sys.argv[1:])
warming = [t.name for t in threading.enumerate() if t.name == "mucomp-umap-warm-up" and t.is_alive()]
print(json.dumps({"code": code, "warming": warming}))
sys.exit(code)
'''


def test_a_quickly_failing_run_exits_1_after_the_warm_up():
    """CIFAR-10's published references are not in the (empty, offline) cache: the run fails in
    seconds, in this process, while numba compiles UMAP; the command waits for the compilation
    and exits 1 with the reason."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "MUCOMP_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", QUICK_FAILURE, "run", "--dataset", "cifar10", "--forget-class", "3",
                           "--method", "ft", "--quiet"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"code": 1, "warming": []}
    assert "failed: resnet18_cifar10_full.pth from the Hub repo" in done.stderr
