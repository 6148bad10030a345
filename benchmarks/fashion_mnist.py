"""The real Fashion-MNIST at full scale on a CPU: fmnist_cnn's references, every method, one
evaluation, storage, Screen, the audits, and how cost grows with the data (issue 28).

Reads the four official files (Debian's ``dataset-fashion-mnist``, or ``$MUCOMP_DATA_DIR``); no
network. Each heavy section runs in a child process of its own (fresh imports, its peak resident
memory read from the kernel), in a fresh ``MUCOMP_HOME`` under ``--work``:

- ``references``: ``mucomp references --dataset fashion_mnist --arch fmnist_cnn --forget-class 0``
  from cold (data read, both models trained, evaluated, stored); training's GFLOP/s against
  :func:`mucomp.recipes.dense_gflops` measured in the same process;
- ``methods``: the scenario's state once (the references evaluated: a worker's one-time cost),
  then one experiment per built-in method at its fmnist_cnn defaults: wall (unlearning +
  evaluation + saving), RT apart, the result's size; the child's peak memory is a worker's;
- ``evaluation``: one model's evaluation (one pass over the 70,000 images + every figure) against
  the bare forward of the same images, median of ``--repeats``;
- ``screen``: 200 copies of a stored FMNIST result; ``mucomp list`` cold (new process) and the
  Screen page warm and cold (AppTest);
- ``pages``: the app (AppTest) with the Original as Model A and the GA experiment as Model B:
  Screen, Contrast and Attack, first visit and warm (median of ``--repeats``), no exception;
- ``relearn`` / ``ulira``: ``mucomp audit ID --relearn`` and ``--ulira`` (K = 8, from cold, then
  with the shadows cached);
- ``scaling``: the same FT epoch and evaluation on digits and on Fashion-MNIST, per image.

    python benchmarks/fashion_mnist.py [--sections references,methods,...] [--work DIR]

Prints a Markdown table per section and writes everything to ``--json``
(default ``benchmarks/results/fashion_mnist.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = ("references", "methods", "evaluation", "screen", "pages", "relearn", "ulira", "scaling")
SCENARIO = ["--dataset", "fashion_mnist", "--arch", "fmnist_cnn", "--forget-class", "0"]
TARGETS = {"references_s": 360, "method_wall_s": 90, "evaluation_s": 10, "evaluation_ratio": 1.2,
           "result_mb": 2.0, "list_s": 1.0, "screen_warm_s": 1.0, "screen_cold_s": 3.0, "worker_gb": 3.0,
           "ulira_cold_s": 1800, "ulira_cached_s": 10, "relearn_s": 60}


def child_env(home: Path) -> dict[str, str]:
    return {**os.environ, "MUCOMP_HOME": str(home), "MUCOMP_DEVICE": "cpu", "HF_HUB_OFFLINE": "1",
            "MUCOMP_OFFLINE": "1", "MUCOMP_TORCH_THREADS": os.environ.get("MUCOMP_TORCH_THREADS", "2"),
            "PYTHONPATH": str(ROOT)}


def run_child(home: Path, argv: list[str]) -> tuple[float, float, str]:
    """Run ``argv`` with ``home`` as MUCOMP_HOME; (wall seconds, its peak resident GB, stdout)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        process = subprocess.Popen(argv, env=child_env(home), stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(process.pid, 0)  # this child's own rusage (Linux: kB)
        wall = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if process.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed ({process.returncode}): {err.read()[-2000:]}")
        return wall, usage.ru_maxrss / 1024**2, out.read()


def mucomp(home: Path, *args: str) -> tuple[float, float, str]:
    return run_child(home, [sys.executable, "-m", "mucomp.cli", *args])


def python_child(home: Path, section: str, *args: str) -> tuple[float, float, dict]:
    wall, peak, out = run_child(home, [sys.executable, __file__, "--child", section, *args])
    return wall, peak, json.loads(out.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------------
# Sections (parent side)


def section_references(work: Path, repeats: int) -> dict:
    """Both references from cold, ``repeats`` times in fresh homes; the child prints its own times."""
    runs = []
    for k in range(repeats):
        home = work / f"references-{k}"
        wall, peak, figures = python_child(home, "references")
        runs.append({"wall_s": wall, "peak_gb": peak, **figures})
    return {"runs": runs, "wall_s": statistics.median(r["wall_s"] for r in runs)}


def section_methods(work: Path, home: Path, methods: list[str]) -> dict:
    wall, peak, figures = python_child(home, "methods", ",".join(methods))
    return {"wall_s": wall, "worker_peak_gb": peak, **figures}


def section_screen(work: Path, home: Path, repeats: int) -> dict:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import store_scale

    from mucomp.data import Scenario

    store = home / "experiments"
    source = next(p for p in store.iterdir() if p.is_dir() and not p.name.startswith(("original-", "retrained-", ".")))
    refs = [p for p in store.iterdir() if p.name.startswith(("original-", "retrained-"))]
    target = work / "screen-200"
    ids = store_scale.populate(target / "experiments", source, refs, 200)
    list_cold = store_scale.cli_seconds(target, "list")  # builds the listing index
    list_runs = [store_scale.cli_seconds(target, "list") for _ in range(repeats)]
    first, warm = store_scale.screen_seconds(target, repeats, Scenario("fashion_mnist", 0, 0, arch="fmnist_cnn"))
    return {"experiments": len(ids), "list_first_s": list_cold, "list_s": statistics.median(list_runs),
            "screen_cold_s": first, "screen_warm_s": warm,
            "result_json_mb": (source / "result.json").stat().st_size / 1e6,
            "weights_mb": (source / "model.safetensors").stat().st_size / 1e6}


def section_audit(home: Path, experiment_id: str, flag: str, extra: list[str]) -> dict:
    wall, peak, _ = mucomp(home, "audit", experiment_id, flag, *extra)
    return {"wall_s": wall, "peak_gb": peak}


# ---------------------------------------------------------------------------------------------
# Child processes


def child_references() -> dict:
    import torch

    from mucomp.data import Scenario, load_dataset
    from mucomp.recipes import TRAINING_SPEEDS, dense_gflops, expected_reference_seconds, recipe_for
    from mucomp.references import load_reference
    from mucomp.settings import torch_threads

    torch.set_num_threads(torch_threads() or 2)
    dense = statistics.median(dense_gflops() for _ in range(5))
    start = time.perf_counter()
    data = load_dataset("fashion_mnist", download=False)
    read_s = time.perf_counter() - start
    scenario = Scenario("fashion_mnist", 0, 0, arch="fmnist_cnn")
    recipe = recipe_for("fashion_mnist", "fmnist_cnn")
    speed = TRAINING_SPEEDS["fmnist_cnn"]
    out = {"dense_gflops": dense, "read_s": read_s, "where": data.where}
    for kind, images in (("original", len(data.train)), ("retrained", int(scenario.retain_indices.size))):
        start = time.perf_counter()
        load_reference(scenario, kind, source="train", device="cpu")
        seconds = time.perf_counter() - start
        gflop = 3 * speed.forward_mflop * 1e-3 * images * recipe.epochs
        out[kind] = {"train_s": seconds, "gflops": gflop / seconds, "share_of_dense": gflop / seconds / dense}
    start = time.perf_counter()
    from mucomp.experiment.state import prepare_scenario
    from mucomp.store import ExperimentStore

    prepare_scenario(scenario, ExperimentStore())
    out["evaluate_and_store_s"] = time.perf_counter() - start
    out["estimate_s"] = expected_reference_seconds("fashion_mnist", "fmnist_cnn", len(data.train),
                                                   int(scenario.retain_indices.size), len(data.test))
    return out


def child_methods(methods: str) -> dict:
    from mucomp.config import ExperimentConfig
    from mucomp.data import Scenario
    from mucomp.experiment.state import prepare_scenario
    from mucomp.runner import run_experiment
    from mucomp.store import ExperimentStore

    store = ExperimentStore()
    scenario = Scenario("fashion_mnist", 0, 0, arch="fmnist_cnn")
    start = time.perf_counter()
    prepare_scenario(scenario, store)
    rows = {"state_s": time.perf_counter() - start}
    for method in methods.split(","):
        config = ExperimentConfig.from_dict({"dataset": "fashion_mnist", "arch": "fmnist_cnn", "forget": "class:0",
                                             "method": method})
        start = time.perf_counter()
        experiment = run_experiment(config, store)
        wall = time.perf_counter() - start
        result = experiment.result
        timings = result["timings"]
        metrics = result["metrics"]
        rows[method] = {
            "id": result["id"], "wall_s": wall, "RT": metrics.get("RT"),
            "evaluation_s": sum(v for k, v in timings.items() if k not in ("unlearning", "warmup", "preparation",
                                                                          "epoch_checks")),
            "result_mb": (store.root / result["id"] / "result.json").stat().st_size / 1e6,
            **{k: metrics.get(k) for k in ("UA", "RA", "TUA", "TRA", "PS", "MIA_efficacy", "avg_gap")},
        }
    return rows


def bare_forward_seconds(model, scenario) -> float:
    """Seconds of the plain forward over every train and test image: normalise a batch (in the
    model's memory order) and call the model, nothing kept; the evaluation's own batch size."""
    import torch

    from mucomp.models import channels_last

    batch = getattr(model, "eval_batch_size", 1024)
    model.eval()
    start = time.perf_counter()
    with torch.inference_mode():
        for split in (scenario.data.train, scenario.data.test):
            images = split.images
            for lo in range(0, len(split), batch):
                x = split.normalize(images[lo:lo + batch])
                if channels_last(model):
                    x = x.contiguous(memory_format=torch.channels_last)
                model(x)
    return time.perf_counter() - start


def child_evaluation(repeats: str) -> dict:
    from mucomp.data import Scenario
    from mucomp.experiment.figures import evaluate_model
    from mucomp.experiment.state import prepare_scenario
    from mucomp.store import ExperimentStore

    scenario = Scenario("fashion_mnist", 0, 0, arch="fmnist_cnn")
    state = prepare_scenario(scenario, ExperimentStore())
    model = state.original.model
    full, bare, stages = [], [], []
    for _ in range(int(repeats)):
        start = time.perf_counter()
        figures = evaluate_model(model, state, model_id="bench")
        full.append(time.perf_counter() - start)
        stages.append(figures["timings"])
        bare.append(bare_forward_seconds(model, scenario))
    keys = stages[0].keys()
    return {"evaluation_s": statistics.median(full), "bare_forward_s": statistics.median(bare),
            "stages_s": {k: statistics.median(s[k] for s in stages) for k in keys},
            "runs": [{**s, "total": t} for s, t in zip(stages, full, strict=True)]}


def child_scaling() -> dict:
    import copy

    from mucomp.data import Scenario
    from mucomp.evaluation import evaluate_scenario
    from mucomp.methods import run_unlearning
    from mucomp.references import load_references

    out = {}
    for dataset, arch in (("digits", "digits_cnn"), ("fashion_mnist", "fmnist_cnn")):
        scenario = Scenario(dataset, 0, 0, arch=arch)
        original, _ = load_references(scenario, device="cpu")
        model = copy.deepcopy(original.model)
        result = run_unlearning("ft", model, scenario, {"epochs": 1, "lr": 0.01, "batch_size": 128}, device="cpu")
        start = time.perf_counter()
        evaluate_scenario(model, scenario, device="cpu")
        evaluation = time.perf_counter() - start
        images = len(scenario.data.train) + len(scenario.data.test)
        out[dataset] = {"retain_images": int(scenario.retain_indices.size), "ft_epoch_s": result.rt_seconds,
                        "ft_us_per_image": 1e6 * result.rt_seconds / scenario.retain_indices.size,
                        "evaluation_s": evaluation, "evaluation_us_per_image": 1e6 * evaluation / images,
                        "images": images}
    return out


def child_pages(experiment_id: str, repeats: str) -> dict:
    from streamlit.testing.v1 import AppTest

    from mucomp.data import Scenario
    from mucomp.store import ExperimentStore

    store = ExperimentStore()
    original_id = next(p.name for p in store.root.iterdir() if p.name.startswith("original-fashion-mnist-fmnistcnn-c0"))
    pages = {"Screen": "pages/2_Screen.py", "Contrast": "pages/3_Contrast.py", "Attack": "pages/4_Attack.py"}
    at = AppTest.from_file(str(ROOT / "Home.py"), default_timeout=300)
    at.run()
    at.session_state["mucomp_scenario"] = Scenario("fashion_mnist", 0, 0, arch="fmnist_cnn")
    at.session_state["mucomp_model_a"] = original_id
    at.session_state["mucomp_model_b"] = experiment_id
    out: dict[str, dict] = {}
    for name, page in pages.items():
        start = time.perf_counter()
        at.switch_page(page).run()
        out[name] = {"first_s": time.perf_counter() - start}
        if at.exception:
            raise RuntimeError(f"{name}: {at.exception}")
    warm: dict[str, list[float]] = {name: [] for name in pages}
    for _ in range(int(repeats)):
        for name, page in pages.items():
            start = time.perf_counter()
            at.switch_page(page).run()
            warm[name].append(time.perf_counter() - start)
    for name, values in warm.items():
        out[name]["warm_s"] = statistics.median(values)
    return out


CHILDREN = {"pages": child_pages, "references": child_references, "methods": child_methods, "evaluation": child_evaluation,
            "scaling": child_scaling}


# ---------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", default=",".join(SECTIONS))
    parser.add_argument("--work", default=None, help="keep homes here (default: a new temporary folder)")
    parser.add_argument("--methods", default="ft,ga,rl,scrub,salun,neggrad_plus,l1_sparse,ssd,bad_teacher,unsir,retrain")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "fashion_mnist.json"))
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    # Repeats evaluate the same models: time UMAP itself, not a cached layout (children inherit it).
    os.environ.setdefault("MUCOMP_CACHE_DIR", "off")
    if args.child:
        import torch

        from mucomp.settings import torch_threads

        torch.set_num_threads(torch_threads() or 2)
        print(json.dumps(CHILDREN[args.child[0]](*args.child[1:]), default=float))
        return 0

    work = Path(args.work or tempfile.mkdtemp(prefix="mucomp-bench-fmnist-"))
    work.mkdir(parents=True, exist_ok=True)
    home = work / "home"  # references + one experiment per method: what screen and the audits read
    sections = [s for s in args.sections.split(",") if s]
    results_path = Path(args.json)
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    results["machine"] = {"cpus": os.cpu_count(), "threads": child_env(home)["MUCOMP_TORCH_THREADS"]}
    if "references" in sections:
        results["references"] = section_references(work, 1)
        refs = work / "references-0" / "references"
        if not (home / "references").exists():
            home.mkdir(parents=True, exist_ok=True)
            os.symlink(refs, home / "references")
    if "methods" in sections:
        results["methods"] = section_methods(work, home, args.methods.split(","))
    if "evaluation" in sections:
        wall, peak, figures = python_child(home, "evaluation", str(args.repeats))
        results["evaluation"] = {**figures, "ratio": figures["evaluation_s"] / figures["bare_forward_s"]}
        from stage_table import stage_table  # benchmarks/ is on sys.path: this script's folder

        print(stage_table(figures["runs"], {"evaluation": "forward pass, train + test (70,000 images, one pass)"}))
    experiment = (results.get("methods") or {}).get("ga", {}).get("id")
    if "screen" in sections:
        results["screen"] = section_screen(work, home, args.repeats)
    if "pages" in sections and experiment:
        results["pages"] = python_child(home, "pages", experiment, str(args.repeats))[2]
    if "relearn" in sections and experiment:
        results["relearn"] = section_audit(home, experiment, "--relearn", [])
    if "ulira" in sections and experiment:
        cold = section_audit(home, experiment, "--ulira", [])
        cached = section_audit(home, experiment, "--ulira", [])
        results["ulira"] = {"cold": cold, "cached": cached}
    if "scaling" in sections:
        results["scaling"] = python_child(home, "scaling")[2]
    results_path.parent.mkdir(parents=True, exist_ok=True)
    results_path.write_text(json.dumps(results, indent=1, default=float))
    print(json.dumps({k: results[k] for k in sections if k in results}, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
