"""Page-switch time of the app with cached results (AppTest, warm), digits, forget class 3.

Target (issue 7): switching to Screen, Contrast or Attack takes <= 0.5 s (median) once the
results are cached, on 2 CPU cores.

It prepares a private ``MUCOMP_HOME`` with the scenario's references and one GA experiment
through the core (not timed), opens the app in AppTest with Original as Model A and the GA
experiment as Model B, visits every page once (warm-up: caches, imports), then times
``switch_page(page).run()`` for each page ``--repeats`` times, cycling through the pages so every
measurement is a real page change.

    python benchmarks/app_pages_digits.py [--repeats 15] [--busy] [--profile Contrast]

``--busy`` times the same page changes while another session's run (fine-tuning, many epochs)
goes on in the app's background worker: the "a run does not block browsing" figure.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGES = {"Screen": "pages/2_Screen.py", "Contrast": "pages/3_Contrast.py", "Attack": "pages/4_Attack.py"}
TARGET_S = 0.5


def prepare(home: str) -> tuple[str, str]:
    """References and one GA run of digits / class 3 in ``home``; returns (original id, ga id)."""
    import torch

    from mucomp.data import Scenario
    from mucomp.runner import ExperimentConfig, prepare_scenario, run_experiment
    from mucomp.store import ExperimentStore

    torch.set_num_threads(1)
    store = ExperimentStore(Path(home) / "experiments")
    state = prepare_scenario(Scenario("digits", 3, 0), store)
    ga = run_experiment(ExperimentConfig("digits", 3, 0, "ga"), store)
    return state.original.experiment_id, ga.id


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--profile", choices=list(PAGES), help="print a cProfile of one warm switch to this page")
    parser.add_argument("--busy", action="store_true", help="time the pages while a run goes on in the background")
    args = parser.parse_args()
    home = tempfile.mkdtemp(prefix="mucomp-bench-app-")
    os.environ.update(MUCOMP_HOME=home, MUCOMP_DEVICE="cpu", HF_HUB_OFFLINE="1", MUCOMP_OFFLINE="1")
    sys.path.insert(0, str(ROOT))
    original_id, ga_id = prepare(home)

    from streamlit.testing.v1 import AppTest

    from mucomp.data import Scenario

    at = AppTest.from_file(str(ROOT / "Home.py"), default_timeout=60)
    at.run()
    at.session_state["mucomp_scenario"] = Scenario("digits", 3, 0)
    at.session_state["mucomp_model_a"] = original_id
    at.session_state["mucomp_model_b"] = ga_id
    first: dict[str, float] = {}
    for name, page in PAGES.items():  # first visits: figures built and cached
        start = time.perf_counter()
        at.switch_page(page).run()
        first[name] = time.perf_counter() - start
        assert not at.exception, at.exception
    if args.profile:
        import cProfile
        import pstats

        at.switch_page("Home.py").run()
        profiler = cProfile.Profile()
        profiler.enable()
        at.switch_page(PAGES[args.profile]).run()
        profiler.disable()
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(40)
        return 0
    queue = job = None
    if args.busy:
        from mucomp.runner import ExperimentConfig
        from mucomp.ui import session

        queue = session.get_queue()
        job = queue.submit([ExperimentConfig("digits", 3, 0, "ft", epochs=1000)], owner="benchmark")[0]
        while queue.get(job)["stage"] != "unlearning":
            time.sleep(0.2)
    times: dict[str, list[float]] = {name: [] for name in PAGES}
    for _ in range(args.repeats):
        for name, page in PAGES.items():
            start = time.perf_counter()
            at.switch_page(page).run()
            times[name].append(time.perf_counter() - start)
            assert not at.exception, at.exception
    if queue is not None:
        assert queue.get(job)["state"] == "running", "the background run ended before the measurements did"
        queue.cancel(job)
        queue.wait(60)
    print(f"cores: {os.cpu_count()}, repeats: {args.repeats}, load average: {os.getloadavg()[0]:.2f}"
          + (", during a background run" if args.busy else ""))
    print(f"{'page':<10} {'median s':>9} {'min s':>7} {'max s':>7} {'first s':>8}  target <= {TARGET_S} s (warm median)")
    failed = False
    for name, values in times.items():
        median = statistics.median(values)
        failed |= median > TARGET_S
        print(f"{name:<10} {median:>9.3f} {min(values):>7.3f} {max(values):>7.3f} {first[name]:>8.3f}  "
              f"{'ok' if median <= TARGET_S else 'SLOW'}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
