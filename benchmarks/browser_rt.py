"""Runs started from a real browser vs the CLI on digits (forget class 3, seed 0): the same RT?

Browser side: ``streamlit run Home.py`` (the command of tests/test_browser.py) on a free port of
127.0.0.1 with a fresh private MUCOMP_HOME (``HF_HUB_OFFLINE=1 MUCOMP_OFFLINE=1 MUCOMP_DEVICE=cpu
MUCOMP_TORCH_THREADS=1``), driven by headless Chromium through Playwright like a user: Home, "Class
to forget" -> "3 (class 3)", "Prepare reference models" (the wall from the click to the lasting
"... are ready" line is recorded), then on Build, for each method: pick it in the "Method"
selectbox, click "Run 1 experiment" and wait for its lasting "done → stored as ID" line (never on
the transient progress text). The page stays open, so its live progress fragment polls every
0.5 s while each job runs, as a user would see it. RT is read from the stored
``<MUCOMP_HOME>/experiments/<ID>/result.json`` (``metrics.RT``).

CLI side: ``mucomp run --dataset digits --forget-class 3 --method M --json`` in a fresh process
each time, with the same env (``MUCOMP_TORCH_THREADS=1``), on a fresh home holding a copy of the
server home's ``references/`` folder (the reference models, already trained). Every CLI run of the
benchmark uses that one home; RT is the JSON's ``metrics.RT``.

The two sides are interleaved (per repeat, per method: the browser run, then the CLI run), so a
drift of the machine's load hits both alike; the page is idle (no job, no polling) while a CLI
run goes.

    python benchmarks/browser_rt.py [--methods ft,ga,...] [--repeats 3] [--out benchmarks/out/browser_rt.md]

Needs Debian's chromium at /usr/bin/chromium and the Python playwright package (no browser
download). Writes the markdown to ``--out`` and the raw records beside it (``.json``).

Goal: RT browser-app / CLI <= 1.1 for every method.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from importlib.metadata import version
from pathlib import Path

from app_vs_cli import fmt, load, median, ratio  # this folder: the shared figures helpers

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
]
BUILTIN = ["ft", "ga", "rl", "scrub", "salun", "retrain"]
SCENARIO = ("digits", 3, 0)
WAIT_MS = 1_200_000
READY_TEXT = "reference models (Original and Retrained) of this scenario are ready"
# The lasting line of a finished run (st.success in mucomp.ui.widgets._draw_job); the id is
# rendered as inline code, so innerText has it bare.
DONE_JS = r"/done → stored as\s+([0-9a-z]+)/g"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def base_env(home: Path, threads: int) -> dict:
    env = dict(os.environ)
    env.update(MUCOMP_HOME=str(home), HF_HUB_OFFLINE="1", MUCOMP_OFFLINE="1", MUCOMP_DEVICE="cpu",
               MUCOMP_TORCH_THREADS=str(threads))
    return env


# ---------------------------------------------------------------------------------------------
# The server and the browser


class Server:
    """``streamlit run Home.py`` with a private MUCOMP_HOME, as tests/test_browser.py starts it."""

    def __init__(self, home: Path, log_path: Path, threads: int):
        self.home, self.log_path = home, log_path
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        with open(log_path, "w") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "streamlit", "run", "Home.py", "--server.headless", "true",
                 "--server.address", "127.0.0.1", "--server.port", str(self.port),
                 "--browser.gatherUsageStats", "false"],
                cwd=ROOT, env=base_env(home, threads), stdout=log, stderr=subprocess.STDOUT,
            )
        start = time.perf_counter()
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as response:
                    if response.read().decode().strip() == "ok":
                        break
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.process.kill()
                raise RuntimeError(f"streamlit did not start:\n{log_path.read_text()}")
            time.sleep(0.3)
        self.start_s = time.perf_counter() - start

    def stop(self) -> str:
        """Stop the server; its log."""
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        return self.log_path.read_text()


def settle(page) -> None:
    """Wait until the script run is over (tests/test_browser.py's settle)."""
    page.wait_for_timeout(500)
    page.locator('[data-testid="stStatusWidget"]').wait_for(state="hidden", timeout=WAIT_MS)
    page.wait_for_timeout(800)


def navigate(page, label: str) -> None:
    page.locator(f'[data-testid="stSidebarNavLink"][href$="/{label}"]').click()
    page.get_by_role("heading", name=label, exact=True).first.wait_for()


def choose(page, label: str, option: str | re.Pattern) -> None:
    page.get_by_role("combobox", name=label).click()
    page.get_by_role("option", name=option).first.click()
    settle(page)


def exceptions(page) -> list[str]:
    shown = page.locator('[data-testid="stException"]')
    return [shown.nth(i).inner_text()[:500] for i in range(shown.count())]


def done_ids(page) -> list[str]:
    """The ids of every "done → stored as ID" line on the page."""
    return page.evaluate(f"() => [...document.body.innerText.matchAll({DONE_JS})].map(m => m[1])")


def prepare_references(page) -> dict:
    page.get_by_role("heading", name="Machine Unlearning Comparator").wait_for()
    settle(page)
    choose(page, "Class to forget", "3 (class 3)")
    load_start = load()
    button = page.get_by_role("button", name="Prepare reference models")
    start = time.perf_counter()
    button.click()
    page.get_by_text(READY_TEXT).first.wait_for(timeout=WAIT_MS)
    wall = time.perf_counter() - start
    settle(page)
    return {"wall": wall, "load": (load_start, load()), "exceptions": exceptions(page)}


def browser_run(page, home: Path, method: str, label: str) -> dict:
    """Pick ``method`` on Build, click Run, wait for the new lasting "done" line; its stored RT."""
    choose(page, "Method", re.compile(f"^{re.escape(label)}$"))
    button = page.get_by_role("button", name=re.compile(r"^Run \d+ experiments?$"))
    text = button.inner_text().strip()
    if text != "Run 1 experiment":
        raise RuntimeError(f"{method}: the default grid is not one run: {text!r}")
    before = done_ids(page)
    load_start = load()
    start = time.perf_counter()
    button.click()
    page.wait_for_function(
        f"""(before) => [...document.body.innerText.matchAll({DONE_JS})].some(m => !before.includes(m[1]))""",
        arg=before, polling=200, timeout=WAIT_MS,
    )
    wall = time.perf_counter() - start
    new = [i for i in done_ids(page) if i not in before]
    if len(new) != 1:
        raise RuntimeError(f"{method}: expected one new done line, found {new}")
    experiment_id = new[0]
    line = page.get_by_text(re.compile(f"done → stored as\\s+{experiment_id}")).first.inner_text()
    result = json.loads((home / "experiments" / experiment_id / "result.json").read_text())
    stored_method = result.get("config", {}).get("method", result.get("method"))
    if stored_method is not None and stored_method != method:
        raise RuntimeError(f"{method}: experiment {experiment_id} is a {stored_method} run")
    shown_rt = re.search(r"RT ([0-9.]+) s", line)
    record = {"id": experiment_id, "RT": result["metrics"]["RT"], "click_to_done": wall,
              "load": (load_start, load()), "line": line.strip(),
              "shown_RT": float(shown_rt.group(1)) if shown_rt else None,
              "timings": result.get("timings", {})}
    settle(page)  # the page's rerun after the job's end
    record["exceptions"] = exceptions(page)
    return record


# ---------------------------------------------------------------------------------------------
# The CLI


def mucomp_command() -> list[str]:
    script = Path(sys.executable).parent / "mucomp"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "mucomp.cli"]


def cli_run(home: Path, method: str, threads: int) -> dict:
    command = mucomp_command() + ["run", "--dataset", SCENARIO[0], "--forget-class", str(SCENARIO[1]),
                                  "--method", method, "--json", "--quiet"]
    load_start = load()
    start = time.perf_counter()
    done = subprocess.run(command, env=base_env(home, threads), capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"mucomp run --method {method} exited {done.returncode}: {done.stderr[-2000:]}")
    lines = [line for line in done.stdout.splitlines() if line.startswith(("{", "["))]
    payload = json.loads(lines[-1])
    if isinstance(payload, list):
        payload = payload[-1]
    return {"id": payload.get("id"), "RT": payload["metrics"]["RT"], "wall": wall, "load": (load_start, load()),
            "timings": payload.get("timings", {})}


# ---------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", default=",".join(BUILTIN),
                        help=f"comma-separated methods (default: {','.join(BUILTIN)})")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="MUCOMP_TORCH_THREADS of the server and the CLI")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "browser_rt.md")
    parser.add_argument("--keep", action="store_true", help="keep the temporary homes and the server log")
    args = parser.parse_args()
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    repeats = max(1, args.repeats)
    if not CHROMIUM.exists():
        sys.exit(f"no browser at {CHROMIUM}")
    from playwright.sync_api import sync_playwright

    from mucomp.methods import available_methods

    known = available_methods()
    unknown = [m for m in methods if m not in known]
    if unknown:
        sys.exit(f"unknown method(s): {', '.join(unknown)}; known: {', '.join(known)}")
    labels = {m: known[m].label for m in methods}

    bench_start = time.perf_counter()
    load_begin = os.getloadavg()

    def log(text: str) -> None:
        print(f"[{time.perf_counter() - bench_start:7.1f} s, load {load():.1f}] {text}", file=sys.stderr, flush=True)

    work = Path(tempfile.mkdtemp(prefix="mucomp-browser-rt-"))
    server_home, cli_home = work / "server-home", work / "cli-home"
    server_home.mkdir()
    browser: dict[str, list[dict]] = {m: [] for m in methods}
    cli: dict[str, list[dict]] = {m: [] for m in methods}
    server = None
    server_log = ""
    try:
        server = Server(server_home, work / "streamlit.log", args.threads)
        log(f"server up on {server.url} after {server.start_s:.1f} s")
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
            page = chromium.new_page(viewport={"width": 1440, "height": 1000})
            page.set_default_timeout(60_000)
            page.goto(server.url)
            refs = prepare_references(page)
            log(f"browser references: click -> ready {refs['wall']:.1f} s")
            shutil.copytree(server_home / "references", cli_home / "references")
            navigate(page, "Build")
            settle(page)
            for r in range(repeats):
                for method in methods:
                    record = browser_run(page, server_home, method, labels[method])
                    browser[method].append(record)
                    log(f"browser {method} #{r + 1}: RT {record['RT']:.2f} s (click -> done "
                        f"{record['click_to_done']:.1f} s) id {record['id']}")
                    record = cli_run(cli_home, method, args.threads)
                    cli[method].append(record)
                    log(f"cli {method} #{r + 1}: RT {record['RT']:.2f} s (process wall {record['wall']:.1f} s)")
            page_errors = exceptions(page)
            chromium.close()
    finally:
        if server is not None:
            server_log = server.stop()
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)

    total = time.perf_counter() - bench_start
    load_end = os.getloadavg()
    odd = []
    if "Traceback" in server_log:
        odd.append("the server log has a Traceback: " + server_log[server_log.index("Traceback"):][:1500])
    for method in methods:
        for record in browser[method]:
            if record["exceptions"]:
                odd.append(f"{method} {record['id']}: exception shown on the page: {record['exceptions']}")
            if record["shown_RT"] is not None and abs(record["shown_RT"] - record["RT"]) > 0.01:
                odd.append(f"{method} {record['id']}: the done line shows RT {record['shown_RT']} s, "
                           f"result.json {record['RT']:.3f} s")
    if refs["exceptions"] or page_errors:
        odd.append(f"exceptions on the page: {refs['exceptions'] + page_errors}")

    text = report(methods, repeats, args.threads, refs, browser, cli, load_begin, load_end, total, odd)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")
    raw = {"references": refs, "browser": browser, "cli": cli, "seconds": total, "load": [load_begin, load_end],
           "odd": odd}
    args.out.with_suffix(".json").write_text(json.dumps(raw, indent=1, default=str) + "\n")
    print(text)


def report(methods, repeats, threads, refs, browser, cli, load_begin, load_end, total, odd) -> str:
    lines = [
        "# Browser app vs CLI RT on digits (forget class 3, seed 0)",
        "",
        f"Machine: {os.cpu_count()} CPUs, torch {version('torch')}, streamlit {version('streamlit')}, "
        f"playwright {version('playwright')}, headless Chromium at {CHROMIUM}. MUCOMP_TORCH_THREADS={threads} in the "
        "server (its job worker) and every CLI process; HF_HUB_OFFLINE=1 MUCOMP_OFFLINE=1 MUCOMP_DEVICE=cpu.",
        f"Load average (1/5/15 min): {' / '.join(f'{x:.2f}' for x in load_begin)} at start, "
        f"{' / '.join(f'{x:.2f}' for x in load_end)} at the end.",
        f"Medians of {repeats} repeat(s), browser and CLI runs interleaved; the benchmark took {total / 60:.1f} min.",
        f"Browser: references prepared from Home (click -> \"ready\" line): **{refs['wall']:.1f} s**.",
        "",
        "| method | browser-app RT s | CLI RT s | RT app/CLI (goal <= 1.1) | browser click -> done s | CLI process wall s "
        "| browser RTs | CLI RTs |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    worst = None
    for method in methods:
        a, c = median([r["RT"] for r in browser[method]]), median([r["RT"] for r in cli[method]])
        rt_ratio = ratio(a, c)
        if rt_ratio is not None and (worst is None or rt_ratio > worst):
            worst = rt_ratio
        lines.append(
            f"| {method} | {fmt(a)} | {fmt(c)} | {fmt(rt_ratio)} | "
            f"{fmt(median([r['click_to_done'] for r in browser[method]]), 1)} | "
            f"{fmt(median([r['wall'] for r in cli[method]]), 1)} | "
            f"{', '.join(fmt(r['RT']) for r in browser[method])} | {', '.join(fmt(r['RT']) for r in cli[method])} |")
    lines += [
        "",
        f"Goal check: worst RT app/CLI {fmt(worst)} ({'met' if worst is not None and worst <= 1.1 else 'NOT met'}).",
        "",
        "Browser click -> done: from the click on \"Run 1 experiment\" to the lasting \"done → stored as ID\" line "
        "(queueing, the job in the warm worker, the page's refresh). CLI process wall: the whole `mucomp run` "
        "process (interpreter start, imports, loading the references, warm-up); the first CLI run of the home "
        "also evaluates and stores the copied references.",
    ]
    if odd:
        lines += ["", "Odd:", ""] + [f"- {o}" for o in odd]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
