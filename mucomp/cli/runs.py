"""``mucomp run``: one experiment or a grid through the job API (this process, local worker
processes or a Ray cluster), stored and printed."""

from __future__ import annotations

import argparse
import sys

from mucomp.cli.common import (
    UsageError,
    add_scenario_arguments,
    apply_torch_threads,
    emit,
    results_text,
    scenario_from_args,
    seed_list,
)
from mucomp.config import MAX_RUNS, ExperimentConfig
from mucomp.display_text import for_terminal


def _parse_value(method_info, key: str, text: str):
    """Convert one command-line value with the method's declared parameter (names the key on error)."""
    params = method_info.params
    if key not in params:
        raise UsageError(
            f"--grid/--param: {key!r} is not a parameter of {method_info.name}; use one of {', '.join(params)}"
        )
    try:
        method_info.check_used([key])  # e.g. SSD's lr: a grid over it would make identical runs
        return params[key].validate(text)
    except ValueError as err:
        raise UsageError(str(err)) from err  # the message names the parameter and its range


def _parse_assignments(method_info, items: list[str], many: bool) -> dict:
    parsed = {}
    for item in items or []:
        key, sep, values = item.partition("=")
        if not sep or not key or not values:
            raise UsageError(f"--grid/--param: expected NAME=VALUE{'[,VALUE...]' if many else ''}, got {item!r}")
        key = key.strip().replace("-", "_")
        texts = values.split(",") if many else [values]
        converted = [_parse_value(method_info, key, t.strip()) for t in texts]
        parsed[key] = converted if many else converted[0]
    return parsed


def _run_progress(enabled: bool, total_runs: int):
    if not enabled:
        return None

    def report(stage: str, fraction: float, **figures) -> None:
        run = figures.get("run", 1)
        detail = ""
        if "epoch" in figures:
            detail = f" epoch {figures['epoch']}/{figures.get('epochs', '?')}"
        if figures.get("forget_accuracy") is not None and stage == "unlearning":
            detail += f" forget acc {figures['forget_accuracy']:.3f}"
        line = f"[run {run}/{total_runs}] {stage:<11} {fraction * 100:5.1f}%{detail}"
        print(f"\r{line:<78}", end="", file=sys.stderr, flush=True)

    return report


def unknown_method_text(name: str, known: list[str]) -> str:
    """What to do about ``--method NAME`` that no loaded method registers: the names there are, and
    how a plugin's method is loaded (its ``@register`` name, the plugins that failed to load)."""
    from mucomp.methods import plugin_errors

    failed = "; ".join(str(error) for error in plugin_errors())
    return (f"--method: no method is registered as {name!r}; choose one of {', '.join(known)}. A method of your "
            "own: set MUCOMP_PLUGINS to its file and give the name its @register gives (`mucomp methods` lists "
            "them)" + (f"; plugins not loaded: {failed}" if failed else ""))


def _config_from_args(args):
    """The run's base config (first training and unlearning seed), its grid, and the seeds."""
    from mucomp.methods import available_methods

    methods = available_methods()
    if args.method not in methods:
        raise UsageError(unknown_method_text(args.method, list(methods)))
    info = methods[args.method]
    train_seeds = seed_list(args.train_seeds, args.seed, "--train-seeds")
    seeds = seed_list(args.seeds, args.seed, "--seeds")
    scenario = scenario_from_args(args, train_seeds[0])
    common = {}
    for key in ("epochs", "lr", "batch_size"):
        value = getattr(args, key)
        if value is not None:
            common[key] = _parse_value(info, key, str(value))
    config = ExperimentConfig.for_scenario(scenario, unlearn_seed=seeds[0], method=info.name, base=args.base,
                                           params=_parse_assignments(info, args.param, many=False), **common)
    grid = _parse_assignments(info, args.grid, many=True)
    try:
        info.resolve_for(scenario, config.hyper())
    except ValueError as err:
        raise UsageError(str(err)) from err
    if config.base != "original" and len(train_seeds) > 1:
        raise UsageError("--base: a stored experiment belongs to one training seed; drop --train-seeds or start "
                         "from the Original")
    return config, grid, train_seeds, seeds


def _may_run_here(args) -> bool:
    """Whether the arguments ask for runs in this process (:func:`_runs_here`), guessed from the
    arguments alone before torch is imported: then UMAP may compile while torch loads."""
    from mucomp.catalogue import BUILTIN_METHODS

    if args.executor != "local" or args.workers not in (None, 0):
        return False
    return args.workers == 0 or (args.method in BUILTIN_METHODS and not args.grid
                                 and args.seeds is None and args.train_seeds is None)


def _runs_here(args, runs: int, builtin: bool) -> bool:
    """Whether the runs execute in this process: asked for (``--workers 0``) or, by default, a
    single run of a built-in method (no worker start-up). A grid, replicates and a plugin's method
    run in a worker process: a run that ends its process (a crash, ``os._exit``, the OOM killer)
    then fails alone, with the reason, and the others complete."""
    if args.executor != "local":
        return False
    return args.workers == 0 or (args.workers is None and runs == 1 and builtin)


def _executor(args, runs: int, here: bool):
    """The job API backend ``mucomp run`` submits to: this process (``here``), local worker
    processes (``--workers N``, one by default) or a Ray cluster (``--executor ray``)."""
    from mucomp import settings
    from mucomp.execution import make_executor

    threads = settings.torch_threads()
    if args.executor == "ray":
        return make_executor("ray", ray_address=args.ray_address, torch_threads=threads)
    if here:
        apply_torch_threads()
        from mucomp.embedding import warm_up

        warm_up(background=True)  # started by cmd_run already when it could tell; RT waits for it
        return make_executor("inline")
    workers = min(args.workers or 1, runs)
    # UMAP compiles at its first use (the evaluation, after RT) rather than before the first job:
    # a worker that a run ends (then replaced) has not spent seconds compiling for nothing.
    return make_executor("local", workers=workers, torch_threads=settings.torch_threads(workers), warm_umap=False)


def _follow(executor, ids: list[int], progress) -> None:
    """Wait for ``ids``, drawing the progress of the running one(s); Ctrl-C cancels them all."""
    shown = None  # the run whose progress line is on screen
    try:
        while not executor.wait(0.2, ids):
            if progress is None:
                continue
            running = [j for j in (executor.get(i) for i in ids) if j and j["state"] == "running"]
            if not running:
                continue
            job = running[0]
            run = ids.index(job["id"]) + 1
            if shown not in (None, run):
                print(file=sys.stderr)  # the previous run's line stays, the next one starts below
            shown = run
            if job["stage"]:
                progress(job["stage"], job["fraction"], run=run, **job["figures"])
    except KeyboardInterrupt:
        for job_id in ids:
            executor.cancel(job_id)
        executor.wait(10, ids)
        raise
    finally:
        if shown is not None:
            print(file=sys.stderr)


def _check_base(store, config) -> None:
    """Refuse a ``--base`` that is not a stored experiment of the run's scenario, before any work
    (the rule every path asks: :func:`mucomp.config.base_problem`)."""
    from mucomp.config import base_problem
    from mucomp.store import ExperimentNotFoundError, InvalidIdError

    if config.base == "original":
        return
    try:
        base = store.load(config.base)
    except (InvalidIdError, ExperimentNotFoundError) as err:
        raise UsageError(f"--base: {err}; give 'original' or the id of a stored experiment (`mucomp list`)") from err
    problem = base_problem(config, base.id, base.config)
    if problem is not None:
        raise UsageError(f"--base: {problem}")


def cmd_run(args) -> int:
    """Run one experiment or a grid through the job API, store the results and print them.

    Exits only once a UMAP compilation this process started has finished, whatever happened: the
    interpreter must not shut down under numba's compiler thread (that aborts, exit 134, instead of
    the exit status the run earned)."""
    if args.max_runs is not None and args.max_runs < 1:
        raise UsageError(f"--max-runs: must be at least 1, got {args.max_runs}")
    if args.workers is not None and args.workers < 0:
        raise UsageError(f"--workers: must be 0 (this process) or more, got {args.workers}")
    if _may_run_here(args):
        from mucomp.embedding import warm_up  # torch-free: starts before torch is imported

        warm_up(background=True)  # numba compiles while torch and the references load; RT waits for it
    try:
        return _run_and_report(args)
    finally:
        embedding = sys.modules.get("mucomp.embedding")
        if embedding is not None:
            embedding.settle_warm_up()


def _run_and_report(args) -> int:
    from mucomp.config import TooManyRunsError, plan_runs
    from mucomp.methods import available_methods
    from mucomp.store import ExperimentStore

    config, grid, train_seeds, seeds = _config_from_args(args)
    try:
        configs = plan_runs(config, grid, train_seeds=train_seeds, unlearn_seeds=seeds, max_runs=args.max_runs)
    except (TooManyRunsError, ValueError) as err:
        raise UsageError(f"--grid / --seeds: {err}") from err
    store = ExperimentStore()
    _check_base(store, config)
    here = _runs_here(args, len(configs), available_methods()[config.method].builtin)
    executor = _executor(args, len(configs), here)
    try:
        ids = executor.submit(configs, max_runs=args.max_runs)
        _follow(executor, ids, _run_progress(sys.stderr.isatty() and not args.quiet, len(configs)))
        jobs = [executor.get(i) for i in ids]
    finally:
        executor.shutdown()
    results, failures = [], []
    for position, (item, job) in enumerate(zip(configs, jobs, strict=True), start=1):
        if job["state"] == "completed" and job["experiment_id"]:
            results.append(store.load(job["experiment_id"]).result)
        else:
            failures.append(f"run {position} ({item.hyper()}): {job['state']}: {job['message']}")
    for failure in failures:
        print(f"mucomp: {for_terminal(failure)}", file=sys.stderr)
    payload = results[0] if len(configs) == 1 and results else results
    if results:
        emit(payload, args.json, lambda: results_text(results))
    return 1 if failures else 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    run = sub.add_parser("run", help="run an unlearning experiment (or a grid of them) and store it")
    add_scenario_arguments(run)
    run.add_argument("--method", required=True, help="unlearning method (see `mucomp methods`)")
    run.add_argument("--base", default="original", help="start from the Original (default) or a stored experiment id")
    run.add_argument("--epochs", default=None, help="epochs (default: the method's default for the data set)")
    run.add_argument("--lr", default=None, help="learning rate")
    run.add_argument("--batch-size", dest="batch_size", default=None, help="batch size")
    run.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                     help="a method parameter, e.g. --param clip_grad_norm=1 (repeatable)")
    run.add_argument("--grid", nargs="+", default=[], metavar="NAME=V1,V2",
                     help="run every combination, e.g. --grid epochs=3,5 lr=1e-4,3e-4")
    run.add_argument("--max-runs", dest="max_runs", type=int, default=MAX_RUNS,
                     help=f"refuse a grid of more runs than this before any work (default: {MAX_RUNS})")
    run.add_argument("--executor", choices=["local", "ray"], default="local",
                     help="where the runs execute: this machine (default) or a Ray cluster (pip install 'mucomp[ray]')")
    run.add_argument("--workers", type=int, default=None,
                     help="local worker processes running the grid in parallel (default: one worker process for a "
                          "grid, replicates or a plugin's method, this process for a single built-in run; 0: this "
                          "process always)")
    run.add_argument("--ray-address", dest="ray_address", default=None,
                     help="with --executor ray: the cluster to join, e.g. auto or ray://HOST:10001 (default: a local Ray)")
    run.add_argument("--seeds", default=None, metavar="LIST",
                     help="unlearning seeds, e.g. 0-4 or 0,3: one replicate per seed (default: --seed)")
    run.add_argument("--train-seeds", dest="train_seeds", default=None, metavar="LIST",
                     help="training seeds, each with its own references, e.g. 0-2 (default: --seed)")
    run.add_argument("--json", action="store_true", help="print the stored result(s) as JSON")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.set_defaults(func=cmd_run)
