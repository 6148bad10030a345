"""App vs CLI on digits (forget class 3, seed 0): do runs started from the app measure like the CLI?

App path (this one process): an AppTest session that has opened the Build page re-runs it about
every 0.5 s (start to start, like the page's progress fragment) while each job runs; jobs are
submitted through ``mucomp.ui.session.get_queue()`` exactly as the Build page does, after the
executor's workers are warm (``ready()``). The store holds 100 experiments of the scenario (one
real GA run and 99 copies with new ids) so the page lists what a used store lists.

- References: a ``PrepareReferences`` job in a fresh home whose ``references/`` folder is absent
  (both models trained from scratch), with the 100 experiments copied in beforehand (only
  unlearned ones, so the references' own figures are computed and stored by the job).
- Methods: one ``ExperimentConfig("digits", 3, 0, method)`` job per built-in method at its digits
  defaults, in the last of those homes (references ready, worker warm).

Recorded per job: RT (the stored ``metrics.RT``), wall (``finished_at - started_at``) and
submit -> finish. Controls: each method job is repeated with no page rerun while it runs, and
the reference job in a home with an empty store; the app process's and the worker's CPU use during
each job are read (``os.times``, ``/proc/PID/stat``) to tell contention from slower code.

CLI path (fresh processes, ``HF_HUB_OFFLINE=1 MUCOMP_OFFLINE=1 MUCOMP_DEVICE=cpu`` and the app's
``MUCOMP_TORCH_THREADS``): ``mucomp references`` on an empty home (process wall);
``mucomp run --method M`` on a home whose references are prepared (RT from its JSON, process
wall); ``mucomp run --method ga`` on an empty home (references trained inside it).

``mucomp run`` (without ``--workers``) and ``mucomp references`` run in the command's own process
with ``MUCOMP_TORCH_THREADS`` torch threads, like the app's worker. The command without that
variable (torch's default thread count) is also timed for ``run --method ga`` with references ready.

    python benchmarks/app_vs_cli.py [--repeats 3] [--quick] [--threads 1] [--out benchmarks/out/app_vs_cli.md]

Writes the markdown to ``--out`` and the raw records beside it (``.json``); about 8.5 min with 3
repeats on a quiet 2-core machine (``--quick``: about 1.5 min).

Goals: RT app/CLI <= 1.1 for every method; the references' wall app/CLI <= 1.2; ``mucomp run
--method ga`` with references ready <= 10 s wall on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ("digits", 3, 0)
POLL_S = 0.5
JOB_TIMEOUT_S = 1200.0
STORE_SIZE = 100

def load() -> float:
    return os.getloadavg()[0]


def median(values: list[float]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


# ---------------------------------------------------------------------------------------------
# The store: copies of one experiment


def copy_experiment(source: Path, experiments: Path) -> str:
    """Copy one experiment folder under a new 8-hex-char id (the store's own id form), rewriting
    ``id`` in its ``result.json``. The store has no index: a folder is an experiment."""
    while True:
        new_id = secrets.token_hex(4)
        if not (experiments / new_id).exists():
            break
    tmp = experiments / f".tmp-{new_id}"
    shutil.copytree(source, tmp)
    result_path = tmp / "result.json"
    result = json.loads(result_path.read_text())
    result["id"] = new_id
    result_path.write_text(json.dumps(result, allow_nan=False, indent=1))
    os.rename(tmp, experiments / new_id)  # whole folders appear, as the store writes them
    return new_id


def unlearned_folders(experiments: Path) -> list[Path]:
    found = []
    for folder in sorted(experiments.iterdir()):
        if folder.name.startswith(".") or not (folder / "result.json").is_file():
            continue
        if json.loads((folder / "result.json").read_text()).get("kind") == "unlearned":
            found.append(folder)
    return found


def populate(home: Path, template: Path) -> int:
    """Copy the template's unlearned experiments (not its references) into ``home``'s store."""
    experiments = home / "experiments"
    experiments.mkdir(parents=True, exist_ok=True)
    folders = unlearned_folders(template / "experiments")
    for folder in folders:
        shutil.copytree(folder, experiments / folder.name)
    return len(folders)


# ---------------------------------------------------------------------------------------------
# App path


class App:
    """One AppTest session on the Build page of digits / forget 3 / seed 0, and the app's queue."""

    def __init__(self, home: Path) -> None:
        from streamlit.testing.v1 import AppTest

        os.environ["MUCOMP_HOME"] = str(home)
        started = time.perf_counter()
        self.at = AppTest.from_file(str(ROOT / "Home.py"), default_timeout=60)
        self.run()
        self.at.selectbox(key="home_forget").set_value(SCENARIO[1]).run()
        self.at.switch_page("pages/1_Build.py")
        self.run()
        from mucomp.ui import session

        self.session = session
        self.queue = session.get_queue()
        if not self.queue.ready(timeout=600):
            raise RuntimeError("the app's worker processes did not get warm within 600 s")
        self.ready_s = time.perf_counter() - started
        self.owner = self.at.session_state["mucomp_owner"]

    def run(self) -> float:
        start = time.perf_counter()
        self.at.run()
        if self.at.exception:
            raise RuntimeError(f"the page raised: {[e.value for e in self.at.exception]}")
        return time.perf_counter() - start

    def idle_reruns(self, home: Path, count: int = 6) -> float:
        """Median seconds of a Build page rerun of ``home`` with no job running (after one to warm caches)."""
        os.environ["MUCOMP_HOME"] = str(home)
        self.run()
        return statistics.median(self.run() for _ in range(count))

    def job(self, home: Path, request, *, poll: bool = True) -> dict:
        """Submit ``request`` as the Build page does and re-run the page until the job ends
        (``poll=False``: the control, no page rerun while the job runs)."""
        from mucomp.execution import FINISHED

        os.environ["MUCOMP_HOME"] = str(home)
        self.run()  # the page of this home before the click
        load_start = load()
        worker_pids = self.queue.worker_pids()
        worker_cpu = {pid: process_cpu(pid) for pid in worker_pids}
        own_cpu = own_cpu_seconds()
        [job_id] = self.queue.submit([request], owner=self.owner)
        reruns, slow = [], []
        submitted = time.perf_counter()
        deadline = time.monotonic() + JOB_TIMEOUT_S
        while True:
            start = time.perf_counter()
            if not poll:
                if not self.queue.wait(timeout=JOB_TIMEOUT_S, ids=[job_id]):
                    raise RuntimeError(f"job {job_id} did not finish within {JOB_TIMEOUT_S:.0f} s")
                job = self.queue.get(job_id)
                break
            stage = self.queue.get(job_id)["stage"]
            reruns.append(self.run())
            job = self.queue.get(job_id)
            if reruns[-1] > 2.0:  # which page rerun was slow, and during what
                slow.append((round(start - submitted, 1), round(reruns[-1], 2), stage, job["state"]))
            if job["state"] in FINISHED:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"job {job_id} did not finish within {JOB_TIMEOUT_S:.0f} s")
            time.sleep(max(0.0, POLL_S - (time.perf_counter() - start)))
        own_cpu = own_cpu_seconds() - own_cpu
        if job["state"] != "completed":
            raise RuntimeError(f"app job {request!r} ended {job['state']}: {job['message']}")
        pid = int(job["worker"].removeprefix("pid ")) if job["worker"].startswith("pid ") else None
        wall = job["finished_at"] - job["started_at"]
        used = process_cpu(pid) - worker_cpu[pid] if pid in worker_cpu and process_cpu(pid) is not None else None
        record = {
            "wall": wall,
            "submit_to_finish": job["finished_at"] - job["submitted_at"],
            "queued": job["started_at"] - job["submitted_at"],
            "reruns": len(reruns),
            "rerun_mean": statistics.fmean(reruns) if reruns else 0.0,
            "rerun_max": max(reruns, default=0.0),
            "slow_reruns": slow,
            "load": (load_start, load()),
            "worker": job["worker"],
            "experiment_id": job["experiment_id"],
            "app_cpu": own_cpu,  # this process (page reruns, the executor's slot thread) while the job ran
            "worker_cpu_share": None if used is None or wall <= 0 else used / wall,
        }
        if job["experiment_id"]:
            result = json.loads((home / "experiments" / job["experiment_id"] / "result.json").read_text())
            record["RT"] = result["metrics"]["RT"]
            record["timings"] = result.get("timings", {})
        return record


def own_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def process_cpu(pid: int | None) -> float | None:
    """CPU seconds (user + system) a process has used so far, from /proc (None where unreadable)."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------------------------------------
# CLI path


def cli_env(home: Path, threads: int | None) -> dict:
    """The CLI's environment; ``threads`` None leaves torch's default thread count."""
    env = dict(os.environ)
    env.update(MUCOMP_HOME=str(home), HF_HUB_OFFLINE="1", MUCOMP_OFFLINE="1", MUCOMP_DEVICE="cpu")
    env.pop("MUCOMP_TORCH_THREADS", None)
    if threads is not None:
        env["MUCOMP_TORCH_THREADS"] = str(threads)
    return env


def mucomp_command() -> list[str]:
    script = Path(sys.executable).parent / "mucomp"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "mucomp.cli"]


def cli(home: Path, args: list[str], threads: int, *, plain: bool = False) -> dict:
    """Run ``mucomp ARGS`` in a fresh process; its wall clock and parsed JSON output."""
    command = mucomp_command() + args
    load_start = load()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, env=cli_env(home, None if plain else threads), capture_output=True, text=True,
                          cwd=ROOT)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if done.returncode != 0:
        raise RuntimeError(f"mucomp {' '.join(args)} exited {done.returncode}: {done.stderr[-2000:]}")
    lines = [line for line in done.stdout.splitlines() if line.startswith(("{", "["))]
    payload = json.loads(lines[-1])
    record = {"wall": wall, "cpu_share": cpu / wall, "load": (load_start, load()),
              "stderr": done.stderr.strip().splitlines()[-4:]}
    if args[0] == "run":
        record["RT"] = payload["metrics"]["RT"]
        record["timings"] = payload.get("timings", {})
    return record


def list_seconds(home: Path) -> tuple[float, int]:
    """Seconds to list the scenario's experiments (what the page's cached listing does when the store
    changes) and the size of one stored result."""
    from mucomp.store import ExperimentStore

    store = ExperimentStore(home / "experiments")
    start = time.perf_counter()
    found = store.list(dataset=SCENARIO[0], forget_class=SCENARIO[1], seed=SCENARIO[2])
    return time.perf_counter() - start, (found[-1].path / "result.json").stat().st_size


def scenario_args() -> list[str]:
    return ["--dataset", SCENARIO[0], "--forget-class", str(SCENARIO[1]), "--seed", str(SCENARIO[2])]


# ---------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="measurements of each figure (medians reported)")
    parser.add_argument("--quick", action="store_true", help="1 repeat, references and ga only (a smoke check)")
    parser.add_argument("--threads", type=int, default=1,
                        help="MUCOMP_TORCH_THREADS for the app's worker and the CLI (default 1, the app's default)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "app_vs_cli.md")
    parser.add_argument("--keep", action="store_true", help="keep the temporary homes")
    args = parser.parse_args()
    repeats = 1 if args.quick else max(1, args.repeats)
    bench_start = time.perf_counter()
    load_begin = os.getloadavg()

    os.environ.setdefault("STREAMLIT_LOGGER_LEVEL", "error")  # bare-mode warnings (also in spawned workers)
    os.environ.update(HF_HUB_OFFLINE="1", MUCOMP_OFFLINE="1", MUCOMP_DEVICE="cpu",
                      MUCOMP_TORCH_THREADS=str(args.threads), MUCOMP_WORKERS="1",
                      # the same config runs in both: a cached UMAP layout would favour the second
                      MUCOMP_CACHE_DIR="off")
    import torch

    default_threads = torch.get_num_threads()
    from mucomp.data import Scenario
    from mucomp.execution import PrepareReferences
    from mucomp.methods import available_methods
    from mucomp.runner import ExperimentConfig

    methods = [name for name, info in available_methods().items() if info.builtin]
    if args.quick:
        methods = ["ga"]
    scenario = Scenario(*SCENARIO)
    work = Path(tempfile.mkdtemp(prefix="mucomp-app-vs-cli-"))
    app_refs, app_refs_bare, cli_refs, cli_empty, cli_plain = [], [], [], [], []
    app_runs: dict[str, list[dict]] = {m: [] for m in methods}
    cli_runs: dict[str, list[dict]] = {m: [] for m in methods}
    app_quiet: dict[str, list[dict]] = {m: [] for m in methods}  # the control: no page reruns during the job

    def log(text: str) -> None:
        print(f"[{time.perf_counter() - bench_start:7.1f} s, load {load():.1f}] {text}", file=sys.stderr, flush=True)

    try:
        # Template home: the app's first reference job (empty store), one real GA run, 99 copies.
        template = work / "app-template"
        app = App(template)
        log(f"app ready (workers warm) {app.ready_s:.1f} s after the first page run started")
        first_refs = app.job(template, PrepareReferences(scenario))
        log(f"app references (empty store) wall {first_refs['wall']:.1f} s")
        seed_run = app.job(template, ExperimentConfig(*SCENARIO, "ga"))
        source = template / "experiments" / seed_run["experiment_id"]
        for _ in range(STORE_SIZE - 1):
            copy_experiment(source, template / "experiments")
        log(f"template store: {len(unlearned_folders(template / 'experiments'))} unlearned experiments")
        listing = list_seconds(template)
        log(f"listing the store (ExperimentStore.list) in this process: {listing[0]:.2f} s, result.json "
            f"{listing[1] / 1024:.0f} kB each")

        idle = {"empty store": app.idle_reruns(work / "idle-empty")}
        populate(work / "idle-100", template)
        idle[f"{STORE_SIZE} experiments, references not ready"] = app.idle_reruns(work / "idle-100")
        idle[f"{STORE_SIZE} experiments + references"] = app.idle_reruns(template)
        log("idle Build page reruns: " + ", ".join(f"{k} {v:.2f} s" for k, v in idle.items()))

        for r in range(repeats):
            record = app.job(work / f"app-bare-{r}", PrepareReferences(scenario))
            record["stored_before"] = 0
            app_refs_bare.append(record)
            log(f"app references, empty store #{r + 1} wall {record['wall']:.1f} s")

            home = work / f"app-{r}"
            stored = populate(home, template)
            if (home / "references").exists():
                raise RuntimeError("the reference job must start on an empty references cache")
            record = app.job(home, PrepareReferences(scenario))
            record["stored_before"] = stored
            app_refs.append(record)
            log(f"app references #{r + 1} wall {record['wall']:.1f} s ({stored} experiments listed)")

            record = cli(work / f"cli-refs-{r}", ["references", *scenario_args(), "--json"], args.threads)
            cli_refs.append(record)
            log(f"cli references #{r + 1} wall {record['wall']:.1f} s")

            record = cli(work / f"cli-empty-{r}", ["run", *scenario_args(), "--method", "ga", "--json", "--quiet"],
                         args.threads)
            cli_empty.append(record)
            log(f"cli run ga on an empty home #{r + 1} wall {record['wall']:.1f} s")

        app_home = work / f"app-{repeats - 1}"  # references ready, the worker's state for it is warm
        cli_home = work / "cli-empty-0"  # references (models and stored results) prepared by the run above
        for r in range(repeats):
            for method in methods:
                record = app.job(app_home, ExperimentConfig(*SCENARIO, method))
                app_runs[method].append(record)
                log(f"app {method} #{r + 1}: RT {record['RT']:.2f} s wall {record['wall']:.2f} s")
                record = app.job(app_home, ExperimentConfig(*SCENARIO, method), poll=False)
                app_quiet[method].append(record)
                log(f"app {method} #{r + 1}, no page reruns: RT {record['RT']:.2f} s wall {record['wall']:.2f} s")
                record = cli(cli_home, ["run", *scenario_args(), "--method", method, "--json", "--quiet"],
                             args.threads)
                cli_runs[method].append(record)
                log(f"cli {method} #{r + 1}: RT {record['RT']:.2f} s wall {record['wall']:.2f} s")
            record = cli(cli_home, ["run", *scenario_args(), "--method", "ga", "--json", "--quiet"],
                         args.threads, plain=True)
            cli_plain.append(record)
            log(f"plain `mucomp run` ga #{r + 1}: RT {record['RT']:.2f} s wall {record['wall']:.2f} s")
        app.queue.wait(timeout=60)
        app.queue.shutdown()
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    total = time.perf_counter() - bench_start
    load_end = os.getloadavg()
    text = report(args, repeats, methods, default_threads, torch.__version__, load_begin, load_end, total,
                  app, idle, listing, first_refs, app_refs_bare, app_refs, cli_refs, cli_empty, cli_plain,
                  app_runs, cli_runs, app_quiet)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")
    raw = {"first_refs": first_refs, "app_refs_bare": app_refs_bare, "idle_reruns": idle, "app_refs": app_refs,
           "app_quiet": app_quiet, "cli_refs": cli_refs, "cli_empty": cli_empty,
           "cli_plain": cli_plain, "app_runs": app_runs, "cli_runs": cli_runs, "seconds": total,
           "load": [load_begin, load_end]}
    args.out.with_suffix(".json").write_text(json.dumps(raw, indent=1, default=str) + "\n")
    print(text)


def report(args, repeats, methods, default_threads, torch_version, load_begin, load_end, total, app,
           idle, listing, first_refs, app_refs_bare, app_refs, cli_refs, cli_empty, cli_plain, app_runs,
           cli_runs, app_quiet) -> str:
    def med(records, key):
        return median([r.get(key) for r in records])

    lines = [
        "# App vs CLI on digits (forget class 3, seed 0)",
        "",
        f"Machine: {os.cpu_count()} CPUs, torch {torch_version}; torch threads: {args.threads} in the app's worker "
        f"(MUCOMP_WORKERS=1, MUCOMP_TORCH_THREADS={args.threads}) and in every CLI process (the same "
        f"MUCOMP_TORCH_THREADS; torch's default here is {default_threads}). CLI env: HF_HUB_OFFLINE=1 MUCOMP_OFFLINE=1 MUCOMP_DEVICE=cpu.",
        f"Load average (1/5/15 min): {' / '.join(f'{x:.2f}' for x in load_begin)} at start, "
        f"{' / '.join(f'{x:.2f}' for x in load_end)} at the end; other processes may share the cores.",
        f"Medians of {repeats} repeat(s); the benchmark took {total / 60:.1f} min. App: one AppTest session on the "
        f"Build page re-run every {POLL_S} s (start to start) while each job runs, with {STORE_SIZE} stored "
        f"experiments of the scenario; the workers were warm {app.ready_s:.1f} s after the first page run.",
        "",
        "Goals: RT app/CLI <= 1.1 (every method); references wall app/CLI <= 1.2; `mucomp run --method ga` "
        "with references ready <= 10 s wall on 2 cores.",
        "",
        "| | app RT s | CLI RT s | RT app/CLI | app wall s | CLI wall s | wall app/CLI | app submit->finish s |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    app_w, cli_w = med(app_refs, "wall"), med(cli_refs, "wall")
    lines.append(f"| references | - | - | - | {fmt(app_w, 1)} | {fmt(cli_w, 1)} | {fmt(ratio(app_w, cli_w))} | "
                 f"{fmt(med(app_refs, 'submit_to_finish'), 1)} |")
    worst_rt = None
    for method in methods:
        a_rt, c_rt = med(app_runs[method], "RT"), med(cli_runs[method], "RT")
        a_w, c_w = med(app_runs[method], "wall"), med(cli_runs[method], "wall")
        rt_ratio = ratio(a_rt, c_rt)
        worst_rt = rt_ratio if worst_rt is None or (rt_ratio or 0) > worst_rt else worst_rt
        lines.append(f"| {method} | {fmt(a_rt)} | {fmt(c_rt)} | {fmt(rt_ratio)} | {fmt(a_w)} | {fmt(c_w)} | "
                     f"{fmt(ratio(a_w, c_w))} | {fmt(med(app_runs[method], 'submit_to_finish'))} |")
    empty_w, ready_w = med(cli_empty, "wall"), med(cli_runs.get("ga", []), "wall")
    stage = None if empty_w is None or ready_w is None else empty_w - ready_w
    lines += [
        "",
        "Single-run walls (CLI, fresh process each):",
        "",
        f"- `mucomp run --method ga` on an empty home (both references trained inside it): **{fmt(empty_w, 1)} s**",
        f"- `mucomp run --method ga` with references ready: **{fmt(ready_w, 1)} s** "
        f"(goal <= 10 s: {'met' if ready_w is not None and ready_w <= 10 else 'NOT met'}); plain `mucomp` command "
        f"(torch's default {default_threads} threads): {fmt(med(cli_plain, 'wall'), 1)} s, RT "
        f"{fmt(med(cli_plain, 'RT'))} s",
        f"- references stage of `mucomp run` = wall(empty home) - wall(references ready) = **{fmt(stage, 1)} s**; "
        f"app reference job / that = **{fmt(ratio(app_w, stage))}** (like for like: both train both references "
        "and compute and store every figure of both)",
        f"- app reference job in a home with an EMPTY store (nothing listed; same page polling): "
        f"**{fmt(med(app_refs_bare, 'wall'), 1)} s** (app/CLI {fmt(ratio(med(app_refs_bare, 'wall'), cli_w))} against "
        f"`mucomp references`, {fmt(ratio(med(app_refs_bare, 'wall'), stage))} against the references stage of "
        f"`mucomp run`); the very first job of the worker, also on an empty store: {fmt(first_refs['wall'], 1)} s",
        "",
        f"Goal check: worst RT app/CLI {fmt(worst_rt)} "
        f"(goal <= 1.1: {'met' if worst_rt and worst_rt <= 1.1 else 'NOT met'}); "
        f"references wall app/CLI {fmt(ratio(app_w, cli_w))} against `mucomp references`, {fmt(ratio(app_w, stage))} "
        "against the references stage of `mucomp run` (goal <= 1.2).",
        "",
        "Notes:",
        "",
        "- The references row compares unlike work: the app's job trains both references AND computes and stores "
        "every figure of both (evaluation, privacy, CKA, UMAP embedding); `mucomp references` only trains (or "
        "loads) them and computes their accuracies. The like-for-like figure is the references stage of "
        "`mucomp run` above.",
        "- App wall = the job's finished_at - started_at in the warm worker (references already in its memory); "
        "CLI wall = the whole process (interpreter start, imports, loading and evaluating the stored references, "
        "UMAP's numba compilation), so the CLI wall is expected to be larger for the methods.",
        "- Page reruns while the jobs ran (mean / max s per rerun): "
        + "; ".join(f"{name} {fmt(med(recs, 'rerun_mean'))} / {fmt(max(r['rerun_max'] for r in recs))}"
                    for name, recs in [("references", app_refs), *[(m, app_runs[m]) for m in methods]] if recs)
        + ". AppTest re-runs the whole page each time (fragment timers don't fire in AppTest), more than the "
        "live app's fragment does. Idle Build page rerun (median, no job running): "
        + ", ".join(f"{k} {v:.2f} s" for k, v in idle.items()) + ".",
    ]
    slow = [(name, s) for name, recs in [("references", app_refs), *[(m, app_runs[m]) for m in methods]]
            for r in recs for s in r["slow_reruns"]]
    if slow:
        lines.append("- Page reruns over 2 s (job, s after submit, rerun s, stage before, state after): "
                     + "; ".join(f"{name} {t} / {d} / {stage or '-'} / {state}" for name, (t, d, stage, state) in slow)
                     + f". Listing the {STORE_SIZE} stored experiments (ExperimentStore.list, what the page's "
                     f"cached listing recomputes whenever the store changes) took {listing[0]:.2f} s in this process "
                     f"(one result.json: {listing[1] / 1024:.0f} kB).")
    ready_warm = median([r.get("timings", {}).get("warmup") for recs in cli_runs.values() for r in recs])
    lines.append(f"- Stored `timings.warmup` of the CLI runs (median): {fmt(ready_warm)} s: the once-per-process "
                 "torch warm-up (one forward/backward of one batch) before the RT clock; 0 in the app's warm "
                 "worker. It is in the CLI wall, never in RT.")
    lines += [
        "",
        "Diagnostics (medians): the app's RT and wall with NO page reruns during the job (the control), the CPU "
        "the app process itself used during a polled job (page reruns; the executor's slot thread), the worker's "
        "CPU-s per wall-s during the job, the CLI process's CPU-s per wall-s.",
        "",
        "| | app RT s, polled | app RT s, no reruns | CLI RT s | app wall s, polled | app wall s, no reruns "
        "| app-process CPU s per job | worker CPU/wall, polled | worker CPU/wall, no reruns | CLI CPU/wall |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        f"| references | - | - | - | {fmt(med(app_refs, 'wall'), 1)} | - | {fmt(med(app_refs, 'app_cpu'))} | "
        f"{fmt(med(app_refs, 'worker_cpu_share'))} | - | {fmt(med(cli_refs, 'cpu_share'))} |",
    ]
    for method in methods:
        polled, quiet, cli_recs = app_runs[method], app_quiet.get(method, []), cli_runs[method]
        lines.append(
            f"| {method} | {fmt(med(polled, 'RT'))} | {fmt(med(quiet, 'RT'))} | {fmt(med(cli_recs, 'RT'))} | "
            f"{fmt(med(polled, 'wall'))} | {fmt(med(quiet, 'wall'))} | {fmt(med(polled, 'app_cpu'))} | "
            f"{fmt(med(polled, 'worker_cpu_share'))} | {fmt(med(quiet, 'worker_cpu_share'))} | "
            f"{fmt(med(cli_recs, 'cpu_share'))} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
