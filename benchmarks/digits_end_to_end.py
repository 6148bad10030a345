"""End-to-end timings on the embedded default (digits, forget class 3), from an empty MUCOMP_HOME.

Times: building the references (train both, evaluate each once per split, store their figures),
one experiment per built-in method end to end (method + full evaluation, UMAP warm) with its stage
breakdown, and a 2 x 2 grid. Counts the images every model forward pass sees during each stage
(a global forward hook), so the table shows that each evaluated model makes exactly one pass per
split and that no later stage runs a model.

    python benchmarks/digits_end_to_end.py [--threads 2] [--out benchmarks/results/digits_end_to_end.md]

Target (issue 6): one digits experiment end to end <= 10 s on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("MUCOMP_DEVICE", "cpu")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


class StageClock:
    """Progress callback that records wall time per stage and which stage is current."""

    def __init__(self) -> None:
        self.current: str | None = None
        self.started = time.perf_counter()
        self.seconds: dict[str, float] = defaultdict(float)
        self._since = self.started

    def __call__(self, stage: str, fraction: float, **_figures) -> None:
        now = time.perf_counter()
        if stage != self.current:
            if self.current is not None:
                self.seconds[self.current] += now - self._since
            self.current, self._since = stage, now

    def finish(self) -> float:
        now = time.perf_counter()
        if self.current is not None:
            self.seconds[self.current] += now - self._since
        return now - self.started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "digits_end_to_end.md")
    args = parser.parse_args()
    home = tempfile.mkdtemp(prefix="mucomp-bench-home-")
    os.environ["MUCOMP_HOME"] = home

    import torch

    torch.set_num_threads(args.threads)
    from mucomp.data import Scenario
    from mucomp.embedding import warm_up
    from mucomp.methods import BUILTIN_METHODS
    from mucomp.models import DigitsCNN
    from mucomp.runner import ExperimentConfig, expand_grid, prepare_scenario, run_experiment
    from mucomp.store import ExperimentStore

    images_seen: dict[str, int] = defaultdict(int)
    clock_holder: dict[str, StageClock] = {}

    def count_forward(module, inputs, _output):
        if isinstance(module, DigitsCNN) and inputs:
            clock = clock_holder.get("clock")
            images_seen[clock.current if clock else "none"] += int(inputs[0].shape[0])

    torch.nn.modules.module.register_module_forward_hook(count_forward)

    scenario = Scenario("digits", 3, 0)
    n_images = len(scenario.data.train) + len(scenario.data.test)
    store = ExperimentStore()
    warm_start = time.perf_counter()
    warm_up(background=True)

    clock = clock_holder["clock"] = StageClock()
    prepare_scenario(scenario, store, progress=clock)
    reference_seconds = clock.finish()
    warm_up(background=False)
    umap_wait = time.perf_counter() - warm_start

    rows = []
    for method in BUILTIN_METHODS:
        images_seen.clear()
        clock = clock_holder["clock"] = StageClock()
        experiment = run_experiment(ExperimentConfig("digits", 3, 0, method), store, clock)
        total = clock.finish()
        rows.append((method, total, dict(clock.seconds), dict(images_seen), experiment))

    grid_clock = clock_holder["clock"] = StageClock()
    grid = expand_grid(ExperimentConfig("digits", 3, 0, "ga"), {"epochs": [6, 12], "lr": [0.03, 0.05]})
    for item in grid:
        run_experiment(item, store, grid_clock)
    grid_seconds = grid_clock.finish()

    stages = ("unlearning", "evaluating", "privacy", "similarity", "embedding", "saving")
    lines = [
        "# Digits end to end (forget class 3, seed 0)",
        "",
        f"Machine: {os.cpu_count()} CPUs, torch {torch.__version__}, {args.threads} threads; empty MUCOMP_HOME.",
        "",
        f"- References from an empty cache (train both, one pass per split each, figures, store): "
        f"**{reference_seconds:.1f} s**; UMAP numba warm-up finished {umap_wait:.1f} s after start "
        "(in the background).",
        f"- 2 x 2 grid (ga, epochs 6/12 x lr 0.03/0.05), four experiments one after another: **{grid_seconds:.1f} s**.",
        "",
        "| method | total s | " + " | ".join(stages) + " | RT s | images per evaluated split pass | images in later stages |",
        "| --- | ---: | " + " | ".join("---:" for _ in stages) + " | ---: | ---: | ---: |",
    ]
    for method, total, seconds, seen, experiment in rows:
        passes = seen.get("evaluating", 0) / n_images
        later = sum(seen.get(stage, 0) for stage in ("privacy", "similarity", "embedding", "saving"))
        lines.append(
            f"| {method} | {total:.2f} | " + " | ".join(f"{seconds.get(s, 0.0):.2f}" for s in stages)
            + f" | {experiment.metrics['RT']:.2f} | {passes:.2f} x (train+test) | {later} |"
        )
    lines += [
        "",
        "`unlearning` includes the method's per-epoch forget-accuracy checks (forget set only); "
        "`evaluating` is the one forward pass of the unlearned model over train and test "
        f"({n_images} images). A value of 1.00 x means every image exactly once.",
    ]
    text = "\n".join(lines)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
