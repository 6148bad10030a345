"""The headless ``mucomp`` command.

Exit codes: 0 success, 2 bad arguments (the message names the argument and what is allowed),
1 the work itself failed (the message says why).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

from mucomp.specs import DATASETS  # torch-free: `mucomp list` and `show` never import torch


class UsageError(ValueError):
    """A bad command-line argument: exit code 2."""


def _emit(payload, as_json: bool, text: Callable[[], str]) -> None:
    if as_json:
        try:  # stored results are JSON-safe already: no numpy import for list / show
            print(json.dumps(payload, allow_nan=False))
        except (TypeError, ValueError):
            from mucomp.metrics import to_json_safe

            print(json.dumps(to_json_safe(payload), allow_nan=False))
    else:
        print(text())


def _forget_class(dataset: str, value: str) -> int:
    """The index of ``--forget-class`` (an index or a class name) in ``dataset``."""
    spec = DATASETS[dataset]
    try:
        return spec.class_index(value)
    except ValueError as err:  # an unknown name or an index out of range
        raise UsageError(
            f"--forget-class: unknown class {value!r} for {dataset}; use an index 0-{spec.num_classes - 1} "
            f"or one of {', '.join(spec.class_names)}"
        ) from err


def _forget_text(args) -> str:
    """The forget set of ``--forget`` or its short form ``--forget-class`` (exactly one)."""
    forget, forget_class = getattr(args, "forget", None), getattr(args, "forget_class", None)
    if forget is not None and forget_class is not None:
        raise UsageError("give --forget or --forget-class, not both (--forget-class K is --forget class:K)")
    if forget is None and forget_class is None:
        raise UsageError("say what to forget: --forget class:K | classes:K1,K2 | random:P% | random:N | "
                         "indices:FILE, or --forget-class K")
    if forget is None:
        return f"class:{_forget_class(args.dataset, forget_class)}"
    return forget


def _scenario(args, train_seed: int | None = None):
    from mucomp.data import Scenario

    forget = _forget_text(args)
    try:
        return Scenario(args.dataset, None, args.seed if train_seed is None else train_seed, forget,
                        getattr(args, "data_seed", 0) or 0, getattr(args, "arch", None))
    except ValueError as err:
        raise UsageError(f"{'--forget' if args.forget is not None else '--forget-class'} / --seed / --arch: {err}") from err


def _seed_list(text: str | None, default: int, option: str) -> list[int]:
    from mucomp.seeds import parse_seeds

    if text is None:
        return [default]
    try:
        return parse_seeds(text)
    except ValueError as err:
        raise UsageError(f"{option}: {err}") from err


def _stderr_progress(enabled: bool):
    if not enabled:
        return None

    def report(epoch: int, total: int, **figures) -> None:
        label = figures.get("reference", "")
        end = "\n" if epoch == total else ""
        print(f"\r  {label} epoch {epoch}/{total}", end=end, file=sys.stderr, flush=True)

    return report


def torch_threads_from_env() -> int | None:
    """``MUCOMP_TORCH_THREADS`` as a positive int, else None (torch's own default then)."""
    from mucomp.execution.local import env_int

    return env_int("MUCOMP_TORCH_THREADS", 0) or None


def _apply_torch_threads() -> None:
    """Work done in this process uses ``MUCOMP_TORCH_THREADS`` threads when it is set."""
    threads = torch_threads_from_env()
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


def cmd_references(args) -> int:
    """Build or load both reference models of a scenario and print their metrics."""
    from mucomp.evaluation import evaluate_scenario
    from mucomp.metrics import model_metrics
    from mucomp.reference_check import check_reference
    from mucomp.references import load_reference

    scenario = _scenario(args)
    _apply_torch_threads()
    progress = _stderr_progress(sys.stderr.isatty() and not args.json)
    out = {}
    for kind in ("original", "retrained"):
        ref = load_reference(scenario, kind, source=args.source, progress=progress)
        evals = evaluate_scenario(ref.model, scenario, layers=())
        out[kind] = model_metrics(evals["train"], evals["test"], scenario)
        print(f"{kind}: {ref.source} ({ref.path}) in {ref.seconds:.1f} s", file=sys.stderr)
        if ref.source == "hub":
            check = check_reference(scenario.dataset, kind, scenario.forget_class, ref.path.name, evals["test"], out[kind])
            if check is not None:
                out[kind]["reference_check"] = check
                if not check["matches"]:
                    print(f"mucomp: warning: {check['message']}", file=sys.stderr)

    def text() -> str:
        lines = [f"scenario {scenario.key} (forget {scenario.forget_set.describe(scenario.spec)})"]
        for kind, metrics in out.items():
            figures = "  ".join(f"{k} {metrics[k]:.4f}" for k in ("UA", "RA", "TUA", "TRA"))
            check = metrics.get("reference_check")
            mark = "" if check is None else ("  [matches published]" if check["matches"] else "  [DIFFERS FROM PUBLISHED]")
            lines.append(f"{kind:<10} {figures}{mark}")
            if check is not None and not check["matches"]:
                lines.append(f"           {check['message']}")
        return "\n".join(lines)

    _emit(out, args.json, text)
    return 0


def cmd_download(args) -> int:
    """Download a torchvision data set into $MUCOMP_HOME/data."""
    from mucomp.data import load_dataset

    data = load_dataset(args.dataset, download=True)
    print(f"{data.spec.label}: {len(data.train)} train and {len(data.test)} test images ready")
    return 0


def _format_value(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _methods_text(dataset: str, methods: list[dict]) -> str:
    lines = [f"unlearning methods, defaults for {dataset}:"]
    for method in methods:
        where = "" if method["source"] == "builtin" else f"  [{method['source']}]"
        lines.append(f"\n{method['name']:<10} {method['label']}{where}")
        if method["description"]:
            lines.append(f"  {method['description']}")
        for param in method["params"]:
            default = method["defaults"].get(param["name"])
            shown = "(required)" if default is None else _format_value(default)
            lines.append(f"  {param['name']:<20} {shown:<10} {param['allowed']}{'; ' + param['help'] if param['help'] else ''}")
        if method.get("optimizer"):
            lines.append(f"  {'optimizer':<20} {method['optimizer']}")
        for source in dict.fromkeys(method.get("default_sources", {}).values()):
            cited = [k for k, v in method["default_sources"].items() if v == source]
            lines.append(f"  defaults of {', '.join(cited)}: {source}")
    return "\n".join(lines)


def cmd_methods(args) -> int:
    """List every unlearning method (built-in and plugin) with its defaults for a data set."""
    from mucomp.methods import available_methods, plugin_errors

    arch = getattr(args, "arch", None)
    if arch is not None and arch not in DATASETS[args.dataset].archs:
        raise UsageError(f"--arch: {arch!r} is not an architecture of {args.dataset}; use one of "
                         f"{', '.join(DATASETS[args.dataset].archs)}")
    forget_kind = None
    if getattr(args, "forget", None) is not None:
        from mucomp.forget_sets import parse_forget

        try:
            forget_kind = parse_forget(args.forget, DATASETS[args.dataset]).kind
        except ValueError as err:
            raise UsageError(f"--forget: {err}") from None
    methods = [info.as_dict(args.dataset, arch, forget_kind) for info in available_methods().values()]
    errors = plugin_errors()
    for error in errors:
        print(f"mucomp: plugin not loaded: {error}", file=sys.stderr)
    payload = {"dataset": args.dataset, "arch": arch or DATASETS[args.dataset].arch, "methods": methods,
               "plugin_errors": [vars(e) for e in errors]}
    _emit(payload, args.json, lambda: _methods_text(args.dataset, methods))
    return 0


# ---------------------------------------------------------------------------------------------
# Experiments: run, list, show, export, import, delete


def _parse_value(method_info, key: str, text: str):
    """Convert one command-line value with the method's declared parameter (names the key on error)."""
    params = method_info.params
    if key not in params:
        raise UsageError(
            f"--grid/--param: {key!r} is not a parameter of {method_info.name}; use one of {', '.join(params)}"
        )
    try:
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


def _config_from_args(args):
    """The run's base config (first training and unlearning seed), its grid, and the seeds."""
    from mucomp.methods import available_methods
    from mucomp.runner import ExperimentConfig

    methods = available_methods()
    if args.method not in methods:
        raise UsageError(f"--method: unknown method {args.method!r}; choose one of {', '.join(methods)}")
    info = methods[args.method]
    train_seeds = _seed_list(args.train_seeds, args.seed, "--train-seeds")
    seeds = _seed_list(args.seeds, args.seed, "--seeds")
    scenario = _scenario(args, train_seeds[0])
    common = {}
    for key in ("epochs", "lr", "batch_size"):
        value = getattr(args, key)
        if value is not None:
            common[key] = _parse_value(info, key, str(value))
    config = ExperimentConfig.for_scenario(scenario, seed=seeds[0], method=info.name, base=args.base,
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


def _replicate(configs: list, train_seeds: list[int], seeds: list[int]) -> list:
    """Every config for every training seed (outermost: a worker prepares each scenario once)
    and unlearning seed."""
    import dataclasses

    return [dataclasses.replace(config, train_seed=train_seed, seed=seed)
            for train_seed in train_seeds for config in configs for seed in seeds]


def _check_base(store, config) -> None:
    """Refuse a ``--base`` that is not a stored experiment of the run's scenario (before any work)."""
    from mucomp.data import Scenario
    from mucomp.store import ExperimentNotFoundError, InvalidIdError

    if config.base == "original":
        return
    try:
        base = store.load(config.base)
    except (InvalidIdError, ExperimentNotFoundError) as err:
        raise UsageError(f"--base: {err}; give 'original' or the id of a stored experiment (`mucomp list`)") from err
    found, wanted = Scenario.from_config(base.config), config.scenario
    if found.key != wanted.key:
        raise UsageError(
            f"--base: experiment {base.id} belongs to scenario {found.key}, not to this run's {wanted.key}; pick a "
            f"base of the same scenario (`mucomp list --dataset {config.dataset} --forget {config.forget}`)"
        )


def _executor(args, runs: int):
    """The job API backend ``mucomp run`` submits to: this process (no ``--workers``), local worker
    processes (``--workers N``) or a Ray cluster (``--executor ray``)."""
    from mucomp.execution import make_executor

    threads = torch_threads_from_env()
    if args.executor == "ray":
        return make_executor("ray", ray_address=args.ray_address, torch_threads=threads or 1)
    if not args.workers:
        _apply_torch_threads()
        return make_executor("inline")  # cmd_run has started UMAP's compilation already
    workers = min(args.workers, runs)
    return make_executor("local", workers=workers, torch_threads=threads or max(1, (os.cpu_count() or 1) // workers))


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


def cmd_run(args) -> int:
    """Run one experiment or a grid through the job API, store the results and print them."""
    if args.executor == "local" and not args.workers:
        from mucomp.embedding import warm_up  # torch-free: starts before torch is imported

        warm_up(background=True)  # numba compiles while torch and the references load; RT waits for it
    from mucomp.execution import TooManyRunsError
    from mucomp.runner import expand_grid
    from mucomp.store import ExperimentStore

    if args.max_runs is not None and args.max_runs < 1:
        raise UsageError(f"--max-runs: must be at least 1, got {args.max_runs}")
    if args.workers is not None and args.workers < 0:
        raise UsageError(f"--workers: must be 0 (this process) or more, got {args.workers}")
    config, grid, train_seeds, seeds = _config_from_args(args)
    try:
        configs = expand_grid(config, grid, max_runs=args.max_runs)
        replicas = len(train_seeds) * len(seeds)
        if args.max_runs is not None and len(configs) * replicas > args.max_runs:
            raise TooManyRunsError(f"{len(configs)} grid points x {replicas} seed pairs make "
                                   f"{len(configs) * replicas} runs, more than --max-runs {args.max_runs}")
    except TooManyRunsError as err:
        raise UsageError(f"--grid / --seeds: {err}") from err
    configs = _replicate(configs, train_seeds, seeds)
    store = ExperimentStore()
    _check_base(store, config)
    executor = _executor(args, len(configs))
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
        print(f"mucomp: {failure}", file=sys.stderr)
    payload = results[0] if len(configs) == 1 and results else results
    if results:
        _emit(payload, args.json, lambda: _table_text([r for r in results]))
    return 1 if failures else 0


LIST_COLUMNS = ("UA", "RA", "TUA", "TRA", "RT", "PS", "PS_exact", "MIA_efficacy", "avg_gap")


def _summary(result: dict) -> dict:
    config, metrics = result["config"], result["metrics"]
    row = {"id": result["id"], "kind": result["kind"], "group": result.get("group"), "dataset": config.get("dataset"),
           "forget": config.get("forget"), "forget_class": config.get("forget_class"),
           "train_seed": config.get("train_seed"), "seed": config.get("seed"), "method": config.get("method"),
           "base": config.get("base"), "epochs": config.get("epochs"), "lr": config.get("lr"),
           "batch_size": config.get("batch_size"), "created_at": result.get("created_at")}
    row.update({key: metrics.get(key) for key in LIST_COLUMNS})
    return row


def _format_cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _table_text(results: list[dict]) -> str:
    rows = [_summary(r) for r in results]
    if not rows:
        return "no experiments"
    columns = ["id", "kind", "dataset", "forget", "train_seed", "seed", "method", "epochs", "lr", "batch_size",
               *LIST_COLUMNS]
    cells = [[_format_cell(row[c]) for c in columns] for row in rows]
    widths = [max(len(c), *(len(line[i]) for line in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)) for line in cells]
    return "\n".join(lines)


def _store_call(fn, *args, **kwargs):
    """Run a store operation; a malformed or unknown id is the caller's argument error."""
    from mucomp.store import ExperimentNotFoundError, InvalidIdError

    try:
        return fn(*args, **kwargs)
    except (ExperimentNotFoundError, InvalidIdError) as err:
        raise UsageError(str(err)) from err


def cmd_list(args) -> int:
    """List stored experiments (optionally of one scenario) from the store's index; unreadable ones
    are listed apart with the reason (they never stop the listing)."""
    from mucomp.store import ExperimentStore

    store = ExperimentStore()
    filters = {}
    if args.dataset:
        filters["dataset"] = args.dataset
    if args.forget_class is not None or args.forget is not None:
        filters["forget"] = _canonical_forget(args)
    entries = store.entries(**filters)
    if args.group:
        entries = [e for e in entries if e.get("group") == args.group]
    unreadable = store.problems
    for name, problem in unreadable.items():
        print(f"mucomp: experiment {name} is unreadable ({problem}); delete it with `mucomp delete {name}`",
              file=sys.stderr)

    def text() -> str:
        table = _table_text(entries)
        if not unreadable:
            return table
        lines = [f"  {name}  {problem}" for name, problem in unreadable.items()]
        return "\n".join([table, "", f"unreadable ({len(unreadable)}; delete with `mucomp delete ID`):", *lines])

    _emit([_summary(r) for r in entries], args.json, text)
    return 0


def _canonical_forget(args) -> str:
    """The canonical text of the listing's ``--forget`` / ``--forget-class`` filter."""
    from mucomp.forget_sets import parse_forget

    if args.dataset is None:
        args.dataset = "digits"
    try:
        return parse_forget(_forget_text(args), DATASETS[args.dataset]).text
    except ValueError as err:
        raise UsageError(f"--forget: {err}") from err


SUMMARY_TEXT_METRICS = ("UA", "RA", "TUA", "TRA", "RT", "PS", "MIA_efficacy", "avg_gap")


def cmd_summary(args) -> int:
    """Mean, 95 % Student-t interval and n of every metric per replicate group (from the index)."""
    from mucomp.groups import group_summaries
    from mucomp.store import ExperimentStore

    filters = {"dataset": args.dataset} if args.dataset else {}
    if args.forget is not None or args.forget_class is not None:
        filters["forget"] = _canonical_forget(args)
    entries = ExperimentStore().entries(**filters)
    summaries = group_summaries(entries, group=args.group, method=args.method)
    if args.group and not summaries:
        raise UsageError(f"--group: no stored experiment belongs to group {args.group!r} (see `mucomp list --json`)")

    def cell(entry: dict | None) -> str:
        if not entry or entry["mean"] is None:
            return "-"
        if entry["half_width"] is None:
            return f"{entry['mean']:.4g}"
        return f"{entry['mean']:.4g} ± {entry['half_width']:.2g}"

    def text() -> str:
        if not summaries:
            return "no replicate groups (run with --seeds 0-4 to make one)"
        header = ["group", "method", "n", *SUMMARY_TEXT_METRICS]
        rows = [[g["group"], str(g["method"]), str(g["n"]), *(cell(g["metrics"].get(m)) for m in SUMMARY_TEXT_METRICS)]
                for g in summaries]
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
        lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
        lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in rows]
        return "\n".join(lines + ["", "mean ± half-width of the 95 % Student-t interval over the group's seeds"])

    payload = summaries[0] if args.group else summaries
    _emit(payload, args.json, text)
    return 0


def cmd_show(args) -> int:
    """Print one stored experiment: its listing fields (from the index), or with ``--json`` the
    whole stored result."""
    from mucomp.store import ExperimentStore, UnreadableExperimentError

    store = ExperimentStore()
    try:
        if args.json:
            _emit(_store_call(store.load, args.id).result, True, str)
        else:
            entry = _store_call(store.entry, args.id)
            print(json.dumps(_summary(entry), indent=1))
    except UnreadableExperimentError as err:
        raise RuntimeError(str(err)) from err
    return 0


def cmd_audit(args) -> int:
    """Print an experiment's audits; ``--ulira`` / ``--relearn`` first compute those (through the
    job API: this process, or ``--workers N`` local worker processes) and store them with it."""
    from mucomp.audits.run import AuditError, run_audit_jobs
    from mucomp.audits.views import audit_text, stored_audits
    from mucomp.store import ExperimentStore, UnreadableExperimentError

    store = ExperimentStore()
    try:
        _store_call(store.load, args.id)
    except UnreadableExperimentError as err:
        raise RuntimeError(str(err)) from err
    wanted = [name for name, flag in (("ulira", args.ulira), ("relearn", args.relearn)) if flag]
    for option, value, low in (("--shadows", args.shadows, 1), ("--held-out", args.held_out, 1),
                               ("--steps", args.steps, 1), ("--workers", args.workers, 0)):
        if value < low:
            raise UsageError(f"{option}: must be at least {low}, got {value}")
    if wanted:
        if not args.workers:
            _apply_torch_threads()
        progress = _audit_progress(sys.stderr.isatty() and not args.json)
        try:
            run_audit_jobs(args.id, wanted, workers=args.workers, torch_threads=torch_threads_from_env(),
                           shadows=args.shadows, held_out=args.held_out, steps=args.steps, follow=progress)
        except AuditError as err:
            raise UsageError(f"{'--ulira' if 'ulira' in wanted else '--relearn'}: {err}") from err
        finally:
            if progress is not None:
                print(file=sys.stderr)
    audits = stored_audits(store.load(args.id).result)
    if all(block is None for block in audits.values()):
        raise RuntimeError(f"{args.id} was stored before mucomp computed its audits; run the experiment again")
    _emit({"id": args.id, **{k: v for k, v in audits.items() if v is not None}}, args.json,
          lambda: audit_text(args.id, audits))
    return 0


def _audit_progress(enabled: bool):
    """A progress line on stderr for :func:`mucomp.audits.run.run_audit_jobs`."""
    if not enabled:
        return None

    def follow(jobs: list[dict]) -> None:
        running = [j for j in jobs if j["state"] == "running"]
        done = sum(j["state"] == "completed" for j in jobs)
        if running:
            job = running[-1]
            figures = job["figures"]
            detail = f" pair {figures['pair']}/{figures['pairs']}" if "pair" in figures and job["stage"] == "shadows" else ""
            line = f"[job {done + 1}/{len(jobs)}] {job['stage'] or 'starting'} {job['fraction'] * 100:5.1f}%{detail}"
            print(f"\r{line:<78}", end="", file=sys.stderr, flush=True)

    return follow


def _chosen_ids(store, args) -> list[str]:
    """The experiments a command names: its ids, or every member of ``--group`` (not both)."""
    from mucomp.sharing import group_members
    from mucomp.store import StoreError

    if args.group and args.ids:
        raise UsageError("give experiment ids or --group, not both")
    if args.group:
        try:
            return group_members(store, args.group)
        except StoreError as err:
            raise UsageError(f"--group: {err}") from err
    if not args.ids:
        raise UsageError("give the ids of the experiments (`mucomp list`) or --group G")
    return args.ids


def cmd_export(args) -> int:
    """Write chosen experiments to a zip file; with ``--bundle`` a reproducibility bundle (the
    experiments they start from included) that ``mucomp reproduce`` reruns."""
    from mucomp.store import ExperimentStore

    store = ExperimentStore()
    ids = _chosen_ids(store, args)
    if args.no_weights and not args.bundle:
        raise UsageError("--no-weights: only a --bundle can leave the weights out (an import needs them)")
    if args.bundle:
        from mucomp.sharing import write_bundle

        bundled = _store_call(write_bundle, store, ids, args.output, weights=not args.no_weights)
        extra = len(bundled) - len(set(ids))
        print(f"bundled {len(bundled)} experiment(s) to {args.output}"
              + (f" ({extra} of them the bases the others start from)" if extra > 0 else "")
              + ("" if args.no_weights else ", with their weights"))
        return 0
    ids = _store_call(store.export, ids, args.output)
    print(f"exported {len(ids)} experiment(s) to {args.output}")
    return 0


def cmd_import(args) -> int:
    """Import the experiments of an exported zip file."""
    from mucomp.store import ExperimentExistsError, ExperimentStore

    if not Path(args.archive).is_file():
        raise UsageError(f"archive: no file {args.archive!r}; give the path of a zip made by `mucomp export`")
    try:
        imported = ExperimentStore().import_(args.archive, on_conflict="skip" if args.skip_existing else "error",
                                             allow_references=args.allow_references)
    except ExperimentExistsError as err:
        done = f"only {', '.join(err.imported)} had been imported" if err.imported else "nothing was imported"
        raise RuntimeError(
            f"the store already has {', '.join(err.ids)}; {done}. Delete them first "
            "(`mucomp delete ID`) or run `mucomp import --skip-existing` to import only the new ones"
        ) from err
    print(f"imported {len(imported)} experiment(s): {', '.join(imported) or '-'}")
    return 0


def cmd_reproduce(args) -> int:
    """Rerun every experiment of a bundle here and print a side-by-side diff of every metric;
    exit 1 when any experiment was not reproduced."""
    from mucomp.sharing.reproduce import reproduce
    from mucomp.store import ExperimentStore

    if not Path(args.bundle).is_file():
        raise UsageError(f"bundle: no file {args.bundle!r}; give a zip made by `mucomp export --bundle`")
    if args.tolerance is not None and not (args.tolerance >= 0):
        raise UsageError(f"--tolerance: must be 0 or more, got {args.tolerance}")
    _apply_torch_threads()
    verbose = sys.stderr.isatty() and not args.json
    report = reproduce(args.bundle, ExperimentStore(), tolerance=args.tolerance, keep=args.keep,
                       progress=(lambda message: print(message, file=sys.stderr, flush=True)) if verbose else None)
    _emit(report.as_dict(), args.json, report.text)
    return 0 if report.ok else 1


def cmd_push(args) -> int:
    """Push experiments (or a group) to a Hugging Face dataset repo with a generated dataset card."""
    from mucomp.sharing.hub import HubError, check_repo_id, hub_endpoint, push
    from mucomp.store import ExperimentStore

    try:
        check_repo_id(args.repo)
    except HubError as err:
        raise UsageError(str(err)) from err
    store = ExperimentStore()
    ids = _chosen_ids(store, args)
    result = _store_call(push, args.repo, store, ids, weights=args.weights, endpoint=hub_endpoint(),
                         private=True if args.private else None)
    for warning in result.warnings:
        print(f"mucomp: warning: {warning}", file=sys.stderr)
    payload = {"repo": result.repo_id, "url": result.url, "commit": result.commit, "ids": result.ids,
               "files": result.files}
    _emit(payload, args.json, lambda: (
        f"pushed {len(result.ids)} experiment(s) to {result.url} ({len(result.files)} files, "
        f"{'with' if args.weights else 'without'} weights; commit {result.commit or '-'})"))
    return 0


def cmd_pull(args) -> int:
    """Download the experiments of a dataset repo and import them (the checks of `mucomp import`),
    or write them as a bundle with -o."""
    from mucomp.sharing.hub import HubError, check_repo_id, hub_endpoint, pull
    from mucomp.store import ExperimentExistsError, ExperimentStore

    try:
        check_repo_id(args.repo)
    except HubError as err:
        raise UsageError(str(err)) from err
    try:
        result = pull(args.repo, ExperimentStore(), output=args.output, revision=args.revision,
                      on_conflict="skip" if args.skip_existing else "error", allow_references=args.allow_references,
                      endpoint=hub_endpoint())
    except ExperimentExistsError as err:
        raise RuntimeError(
            f"the store already has {', '.join(err.ids)}; nothing was imported. Delete them first "
            f"(`mucomp delete ID`) or run `mucomp pull {args.repo} --skip-existing` to import only the new ones"
        ) from err
    for path in result.ignored:
        print(f"mucomp: ignored {path} (not part of a mucomp experiment folder)", file=sys.stderr)
    payload = {"repo": result.repo_id, "commit": result.commit, "ids": result.ids, "imported": result.imported,
               "written": result.written}
    if result.written:
        _emit(payload, args.json, lambda: f"wrote {len(result.ids)} experiment(s) of {args.repo} to {result.written}; "
                                          f"rerun them with `mucomp reproduce {result.written}`")
    else:
        skipped = [i for i in result.ids if i not in result.imported]
        _emit(payload, args.json, lambda: (
            f"imported {len(result.imported)} experiment(s) from {args.repo}: {', '.join(result.imported) or '-'}"
            + (f" (already stored, left as they are: {', '.join(skipped)})" if skipped else "")))
    return 0


def cmd_delete(args) -> int:
    """Delete stored experiments (references can't be deleted; unreadable experiments can)."""
    from mucomp.store import ExperimentStore

    store = ExperimentStore()
    for experiment_id in args.ids:
        _store_call(store.delete, experiment_id)
        print(f"deleted {experiment_id}")
    return 0


def cmd_zoo(args) -> int:
    """List the published unlearned models mucomp knows, or pull one into the store."""
    from mucomp import zoo

    if args.zoo_command == "list":
        entries = [entry.as_dict() for entry in zoo.catalogue()]

        def text() -> str:
            lines = ["published unlearned models (one file per forget class; card accuracies TUA / TRA):"]
            for e in entries:
                lines.append(f"\n{e['repo']}  [{e['dataset']}, {e['method']}]  {e['filename']}")
                lines.append(f"  recipe: {e['recipe']}")
                lines.append("  " + "  ".join(f"{k}: {v['forget_test_accuracy']:.3f}/{v['retain_test_accuracy']:.3f}"
                                              for k, v in e["published"].items()))
            return "\n".join(lines)

        _emit(entries, args.json, text)
        return 0
    from mucomp.store import ExperimentStore

    scenario = _scenario(args)
    _apply_torch_threads()
    try:
        entry = zoo.find(args.repo)
    except zoo.ZooError as err:
        raise UsageError(f"REPO: {err}") from err
    if scenario.dataset != entry.dataset:
        raise UsageError(f"--dataset: {entry.repo} holds {entry.dataset} models; pass --dataset {entry.dataset}")
    experiment = zoo.pull(entry.repo, scenario, ExperimentStore(), progress=_stderr_progress(sys.stderr.isatty()))
    check = experiment.result.get("published_check")
    if check is not None and not check["matches"]:
        print(f"mucomp: warning: {check['message']}", file=sys.stderr)
    summary = {"id": experiment.id, "source": experiment.config.get("source"),
               **{k: experiment.metrics.get(k) for k in ("UA", "TUA", "TRA", "PS", "PS_exact")},
               "published_check": check}
    _emit(summary, args.json, lambda: (
        f"stored {experiment.id} ({experiment.config.get('source')}): "
        + "  ".join(f"{k} {summary[k]:.4f}" for k in ("UA", "TUA", "TRA", "PS") if summary[k] is not None)
        + ("" if check is None else ("  [matches the card]" if check["matches"] else "  [DIFFERS FROM THE CARD]"))))
    return 0


def _add_forget_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--forget", default=None, metavar="SET",
                        help="what to forget: class:K, classes:K1,K2, random:P%% (e.g. random:10%%), random:N or "
                             "indices:FILE (one training index per line)")
    parser.add_argument("--forget-class", default=None, help="short for --forget class:K (an index or a class name)")


def _add_scenario_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", default="digits", choices=sorted(DATASETS), help="data set (default: digits)")
    parser.add_argument("--arch", default=None, help="architecture (default: the data set's; digits: digits_cnn or vit_digits)")
    _add_forget_arguments(parser)
    parser.add_argument("--seed", type=int, default=0,
                        help="training seed of the references (default: 0); for run also the unlearning seed unless "
                             "--seeds is given")
    parser.add_argument("--data-seed", dest="data_seed", type=int, default=0,
                        help="seed of a random forget set and of the fixed subsets (default: 0)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mucomp", description="Machine Unlearning Comparator, headless")
    parser.add_argument("--precision", choices=["fp32", "bf16", "fp16"], default=None,
                        help="precision of the evaluation passes (default: $MUCOMP_PRECISION, else fp32); bf16 / "
                             "fp16 run them under autocast where the device supports it")
    sub = parser.add_subparsers(dest="command", required=True)

    refs = sub.add_parser("references", help="build or load the Original and Retrained models of a scenario")
    _add_scenario_arguments(refs)
    refs.add_argument("--source", choices=["train", "hub"], default=None,
                      help="train locally or use published checkpoints (default: train for digits, hub otherwise)")
    refs.add_argument("--json", action="store_true", help="print JSON")
    refs.set_defaults(func=cmd_references)

    methods = sub.add_parser("methods", help="list the unlearning methods (built-in and plugins) with their defaults")
    methods.add_argument("--dataset", default="digits", choices=sorted(DATASETS), help="whose defaults to show (default: digits)")
    methods.add_argument("--arch", default=None, help="the architecture's defaults (default: the data set's own)")
    methods.add_argument("--forget", default=None, metavar="SET",
                         help="the defaults for this kind of forget set, e.g. random:10%% (default: class-wise)")
    methods.add_argument("--json", action="store_true", help="print JSON")
    methods.set_defaults(func=cmd_methods)

    run = sub.add_parser("run", help="run an unlearning experiment (or a grid of them) and store it")
    _add_scenario_arguments(run)
    run.add_argument("--method", required=True, help="unlearning method (see `mucomp methods`)")
    run.add_argument("--base", default="original", help="start from the Original (default) or a stored experiment id")
    run.add_argument("--epochs", default=None, help="epochs (default: the method's default for the data set)")
    run.add_argument("--lr", default=None, help="learning rate")
    run.add_argument("--batch-size", dest="batch_size", default=None, help="batch size")
    run.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                     help="a method parameter, e.g. --param clip_grad_norm=1 (repeatable)")
    run.add_argument("--grid", nargs="+", default=[], metavar="NAME=V1,V2",
                     help="run every combination, e.g. --grid epochs=3,5 lr=1e-4,3e-4")
    run.add_argument("--max-runs", dest="max_runs", type=int, default=256,
                     help="refuse a grid of more runs than this before any work (default: 256)")
    run.add_argument("--executor", choices=["local", "ray"], default="local",
                     help="where the runs execute: this machine (default) or a Ray cluster (pip install 'mucomp[ray]')")
    run.add_argument("--workers", type=int, default=None,
                     help="local worker processes running the grid in parallel (default: run in this process)")
    run.add_argument("--ray-address", dest="ray_address", default=None,
                     help="with --executor ray: the cluster to join, e.g. auto or ray://HOST:10001 (default: a local Ray)")
    run.add_argument("--seeds", default=None, metavar="LIST",
                     help="unlearning seeds, e.g. 0-4 or 0,3: one replicate per seed (default: --seed)")
    run.add_argument("--train-seeds", dest="train_seeds", default=None, metavar="LIST",
                     help="training seeds, each with its own references, e.g. 0-2 (default: --seed)")
    run.add_argument("--json", action="store_true", help="print the stored result(s) as JSON")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.set_defaults(func=cmd_run)

    listing = sub.add_parser("list", help="list stored experiments")
    listing.add_argument("--dataset", default=None, choices=sorted(DATASETS))
    _add_forget_arguments(listing)
    listing.add_argument("--group", default=None, help="only this replicate group")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=cmd_list)

    summary = sub.add_parser("summary", help="mean, 95%% interval and n of every metric per replicate group")
    summary.add_argument("--group", default=None, help="one group (its id, from `mucomp list --json` or run --json)")
    summary.add_argument("--method", default=None, help="only this method's groups")
    summary.add_argument("--dataset", default=None, choices=sorted(DATASETS))
    _add_forget_arguments(summary)
    summary.add_argument("--json", action="store_true")
    summary.set_defaults(func=cmd_summary)

    show = sub.add_parser("show", help="show one stored experiment")
    show.add_argument("id")
    show.add_argument("--json", action="store_true", help="the whole stored result as JSON")
    show.set_defaults(func=cmd_show)

    audit = sub.add_parser("audit", help="show an experiment's audits; --ulira / --relearn compute those first")
    audit.add_argument("id")
    audit.add_argument("--ulira", action="store_true", help="run U-LiRA (per-example likelihood-ratio attack; "
                       "digits: K + M shadow pairs, cached for every experiment of the same config)")
    audit.add_argument("--relearn", action="store_true", help="run the relearning attack (model and Retrained)")
    audit.add_argument("--shadows", type=int, default=8, metavar="K", help="U-LiRA: shadow pairs fitted (default 8)")
    audit.add_argument("--held-out", type=int, default=4, metavar="M", help="U-LiRA: held-out pairs (default 4)")
    audit.add_argument("--steps", type=int, default=50, metavar="S", help="relearning: optimiser steps (default 50)")
    audit.add_argument("--workers", type=int, default=0, metavar="N",
                       help="local worker processes (shadow pairs side by side); 0: this process (default)")
    audit.add_argument("--json", action="store_true")
    audit.set_defaults(func=cmd_audit)

    export = sub.add_parser("export", help="export experiments to a zip file (--bundle: a reproducibility bundle)")
    export.add_argument("ids", nargs="*", help="experiment ids (or --group)")
    export.add_argument("-o", "--output", required=True, help="zip file to write")
    export.add_argument("--bundle", action="store_true",
                        help="a reproducibility bundle: configs with every seed, data and forget-set hashes, the "
                             "references' identities, code, environment, metrics (and the bases the experiments "
                             "start from); `mucomp reproduce FILE` reruns it")
    export.add_argument("--group", default=None, help="every experiment of this replicate group")
    export.add_argument("--no-weights", dest="no_weights", action="store_true",
                        help="with --bundle: leave the weights out (their hash stays in the manifest)")
    export.set_defaults(func=cmd_export)

    reproducing = sub.add_parser("reproduce", help="rerun every experiment of a bundle here and diff every metric")
    reproducing.add_argument("bundle", help="a zip made by `mucomp export --bundle` (or `mucomp pull -o`)")
    reproducing.add_argument("--tolerance", type=float, default=None,
                             help="largest |difference| accepted (default: 0 on the bundle's CPU and versions, "
                                  "else 0.01); every difference is printed either way")
    reproducing.add_argument("--keep", action="store_true",
                             help="store the reruns (default: a scratch store, removed afterwards)")
    reproducing.add_argument("--json", action="store_true", help="print the whole report as JSON")
    reproducing.set_defaults(func=cmd_reproduce)

    pushing = sub.add_parser("push", help="push experiments to a Hugging Face dataset repo, with a dataset card")
    pushing.add_argument("repo", help="OWNER/NAME of the dataset repo (created when missing)")
    pushing.add_argument("ids", nargs="*", help="experiment ids (or --group)")
    pushing.add_argument("--group", default=None, help="every experiment of this replicate group")
    pushing.add_argument("--weights", action="store_true", help="upload the weights too (needed to pull and import)")
    pushing.add_argument("--private", action="store_true", help="create the repo private (an existing repo keeps its own)")
    pushing.add_argument("--json", action="store_true")
    pushing.set_defaults(func=cmd_push)

    pulling = sub.add_parser("pull", help="import the experiments of a dataset repo made by push (or write a bundle)")
    pulling.add_argument("repo", help="OWNER/NAME of the dataset repo")
    pulling.add_argument("-o", "--output", default=None,
                         help="write the experiments as a bundle file for `mucomp reproduce` instead of importing")
    pulling.add_argument("--revision", default=None, help="a branch, tag or commit (default: main)")
    pulling.add_argument("--skip-existing", action="store_true", help="leave experiments that exist as they are")
    pulling.add_argument("--allow-references", action="store_true",
                         help="also import reference models whose recorded weights hash and id match (as import)")
    pulling.add_argument("--json", action="store_true")
    pulling.set_defaults(func=cmd_pull)

    importing = sub.add_parser("import", help="import experiments from a zip file made by export")
    importing.add_argument("archive")
    importing.add_argument("--skip-existing", action="store_true", help="leave experiments that exist as they are")
    importing.add_argument("--allow-references", action="store_true",
                           help="also import reference models (Original / Retrained), only those whose recorded "
                                "weights hash and id match their weights, never replacing one already stored")
    importing.set_defaults(func=cmd_import)

    delete = sub.add_parser("delete", help="delete stored experiments")
    delete.add_argument("ids", nargs="+")
    delete.set_defaults(func=cmd_delete)

    zoo_parser = sub.add_parser("zoo", help="published unlearned models: list them, or pull one into the store")
    zoo_sub = zoo_parser.add_subparsers(dest="zoo_command", required=True)
    zoo_list = zoo_sub.add_parser("list", help="the repositories mucomp knows, with the cards' accuracies")
    zoo_list.add_argument("--json", action="store_true")
    zoo_pull = zoo_sub.add_parser("pull", help="download one file, check and evaluate it, store it as Published")
    zoo_pull.add_argument("repo", help="a repository of `mucomp zoo list`, e.g. Yurim0507/Selective_Synapse_Dampening")
    _add_scenario_arguments(zoo_pull)
    zoo_pull.add_argument("--json", action="store_true")
    zoo_parser.set_defaults(func=cmd_zoo)

    download = sub.add_parser("download", help="download a torchvision data set")
    download.add_argument("dataset", choices=[n for n, s in DATASETS.items() if s.needs_download])
    download.set_defaults(func=cmd_download)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.precision is not None:  # read by every evaluation here and in the workers this starts
        os.environ["MUCOMP_PRECISION"] = args.precision
    try:
        return int(args.func(args) or 0)
    except UsageError as err:
        parser.print_usage(sys.stderr)
        print(f"mucomp: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mucomp: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader (e.g. `| head`) stopped early: not a failure; silence the flush at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as err:  # every other failure is the work's, not the arguments'
        print(f"mucomp: {args.command} failed: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
