"""The app in a real browser: `streamlit run Home.py` on 127.0.0.1 and headless Chromium through
Playwright. One first pass on digits (forget class 3): prepare the references, run GA, pick
Original as Model A and the run as Model B, open Contrast and Attack; on the way, upload a
weights file on Build (XSRF protection on, as configured for local use). With
``MUCOMP_SCREENSHOTS=1`` a full-page screenshot of every page goes to tests/artifacts/ (not
committed; off by default: they cost the suite about 10 s).

Needs Debian's chromium at /usr/bin/chromium (`apt-get install -y chromium chromium-driver`;
`.ci/run` installs it); skipped with that reason when it is missing.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "tests" / "artifacts"
FLAGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
]
WAIT_MS = 600_000
SCREENSHOTS = os.environ.get("MUCOMP_SCREENSHOTS", "") == "1"
#: Every HTTP error response the browser got, as (status, url).
FAILED_RESPONSES: list[tuple[int, str]] = []
#: The only errors expected: Streamlit's front end first asks for its health and host config under
#: the page's own path when a page URL is loaded (a reload), then at the root (streamlit#7074).
STREAMLIT_PROBE = re.compile(r"/(Build|Screen|Contrast|Attack)/_stcore/(health|host-config)$")

#: Environment settings that would override the repository's XSRF / CORS protection.
XSRF_OVERRIDES = ("STREAMLIT_SERVER_ENABLE_XSRF_PROTECTION", "STREAMLIT_SERVER_ENABLE_CORS")

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="no browser at /usr/bin/chromium: install it with `apt-get install -y chromium chromium-driver` "
           "(.ci/run does)",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory, digits_references):
    """A fresh `streamlit run Home.py` with a private MUCOMP_HOME; yields its URL. The home starts
    with the session's trained digits references in its cache (a returning user's machine), so
    "Prepare reference models" loads, evaluates and stores them without training (test_app.py
    covers the training and its progress)."""
    from mucomp import settings

    home = tmp_path_factory.mktemp("browser-home")
    shutil.copytree(settings.references_dir(), home / "references")
    port = free_port()
    # The repository's .streamlit/config.toml as a local user gets it: no environment override
    # of XSRF / CORS (the Docker Space sets one), so the upload below meets XSRF protection.
    inherited = {k: v for k, v in os.environ.items() if k not in XSRF_OVERRIDES}
    env = {**inherited, "MUCOMP_HOME": str(home), "MUCOMP_DEVICE": "cpu", "HF_HUB_OFFLINE": "1",
           "MUCOMP_OFFLINE": "1"}
    log_path = tmp_path_factory.mktemp("browser-log") / "streamlit.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "Home.py", "--server.headless", "true",
             "--server.address", "127.0.0.1", "--server.port", str(port), "--browser.gatherUsageStats", "false"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.read().decode().strip() == "ok":
                    break
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"streamlit did not start:\n{log_path.read_text()}")
        time.sleep(0.3)
    yield url
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
    text = log_path.read_text()
    assert "Traceback" not in text, text


@pytest.fixture(scope="module")
def page(server):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed: pip install -e '.[test]'")
    sync_playwright = sync_api.sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        tab = browser.new_page(viewport={"width": 1440, "height": 1000})
        tab.set_default_timeout(60_000)
        tab.on("response", lambda r: FAILED_RESPONSES.append((r.status, r.url)) if r.status >= 400 else None)
        tab.goto(server)
        yield tab
        browser.close()


def settle(page, charts: int = 0) -> None:
    """Wait until the script run is over and ``charts`` plotly charts are drawn.

    The short first pause lets the rerun an action triggers begin (until then the status widget is
    hidden already); the last lets the charts finish their layout before the next click."""
    page.wait_for_timeout(300)
    page.locator('[data-testid="stStatusWidget"]').wait_for(state="hidden", timeout=WAIT_MS)
    if charts:
        page.wait_for_function(f"document.querySelectorAll('.js-plotly-plot .main-svg').length >= {charts}",
                               timeout=60_000)
    page.wait_for_timeout(400)


def shoot(page, name: str) -> Path | None:
    """A screenshot of the whole page when ``MUCOMP_SCREENSHOTS=1`` (else None): Streamlit scrolls
    inside its main block, so the viewport is stretched to the content's height first."""
    if not SCREENSHOTS:
        return None
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.mouse.move(5, 5)  # no tooltip in the picture
    size = page.viewport_size
    height = page.evaluate(
        "() => { const m = document.querySelector('[data-testid=\"stMainBlockContainer\"]');"
        " return m ? m.scrollHeight + 120 : document.body.scrollHeight; }")
    page.set_viewport_size({"width": size["width"], "height": min(max(int(height), size["height"]), 9000)})
    page.wait_for_timeout(1000)  # plotly charts resize to the new viewport
    page.screenshot(path=str(path), full_page=True)
    page.set_viewport_size(size)
    page.wait_for_timeout(300)
    return path


def navigate(page, label: str) -> None:
    """Change page through the sidebar (keeps the session, unlike loading a URL)."""
    page.locator(f'[data-testid="stSidebarNavLink"][href$="/{label}"]').click()
    page.get_by_role("heading", name=label, exact=True).first.wait_for()


def choose(page, label: str, option: str | re.Pattern, attempts: int = 5) -> None:
    """Pick ``option`` in the selectbox labelled ``label``. A click that lands while the page's
    charts are still laying out, or a rerun of the page while the list is open, can leave the list
    closed (seen after a page change, and on a loaded machine with the option already found and
    then detached): the list is opened again then (its options are a lasting state to wait on)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    item = page.get_by_role("option", name=option).first
    for attempt in range(attempts):
        page.get_by_role("combobox", name=label).click()
        try:
            item.click(timeout=5_000)
            break
        except PlaywrightTimeout:
            if attempt == attempts - 1:
                raise
            page.keyboard.press("Escape")
            settle(page)
    settle(page)


def detail_config(page) -> str:
    """The configuration table of the experiment the Screen page's Details section shows."""
    return page.locator(".st-key-screen_detail_config").first.inner_text()


def click_point(page, chart_key: str) -> None:
    """A single click on the first point of the first trace of a plotly chart."""
    point = page.locator(f".st-key-{chart_key} .scatterlayer .trace").first.locator("path.point").first
    point.scroll_into_view_if_needed()
    box = point.bounding_box()
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)


def upload_weights(page, folder: Path) -> None:
    """Upload a digits state dict through Build's file uploader with the repository's settings
    (XSRF protection on: the browser's upload request must carry the token) and wait on the
    lasting check message (a refused upload would show an error, a blocked request none)."""
    import torch

    from mucomp.models import seeded_model

    path = folder / "upload.pth"
    torch.save(seeded_model("digits_cnn", 10, 0).state_dict(), path)
    page.locator('.st-key-build_upload input[type="file"]').set_input_files(str(path))
    page.get_by_text(re.compile(r"upload\.pth fits digits_cnn \(\d+ kB\)")).wait_for(timeout=60_000)
    # XSRF protection was on: the server set its token cookie, which the upload request had to echo.
    assert any(c["name"] == "_streamlit_xsrf" for c in page.context.cookies())
    settle(page)
    assert_no_exception(page)


def assert_no_exception(page) -> None:
    assert page.locator('[data-testid="stException"]').count() == 0, page.locator(
        '[data-testid="stException"]').first.inner_text()


def test_first_pass_in_a_browser(page, tmp_path):
    page.get_by_role("heading", name="Machine Unlearning Comparator").wait_for()
    settle(page)
    choose(page, "Class to forget", "3 (class 3)")
    page.get_by_role("button", name="Prepare reference models").click()
    page.get_by_text("reference models (Original and Retrained) of this scenario are ready").wait_for(timeout=WAIT_MS)
    settle(page)
    assert_no_exception(page)
    shoot(page, "1_home")

    navigate(page, "Build")
    settle(page)
    page.get_by_role("button", name="Run 1 experiment").click()
    # Wait on the lasting "done" line (a short GA run's epochs may all pass between two refreshes):
    # it keeps the last epoch and shows the stored UA / TRA / PS.
    done = page.get_by_text(re.compile(r"done → stored as .* 12/12 epochs · UA .* · TRA .* · PS ")).first
    done.wait_for(timeout=WAIT_MS)
    experiment_id = re.search(r"stored as ([a-z0-9]+)", done.inner_text()).group(1)
    settle(page)
    assert_no_exception(page)
    upload_weights(page, tmp_path)
    shoot(page, "2_build")

    navigate(page, "Screen")
    settle(page, charts=1)
    choose(page, "Model A", re.compile(r"^Original"))
    choose(page, "Model B", re.compile(r"^Gradient ascent"))
    settle(page, charts=2)
    assert_no_exception(page)
    assert re.search(r"Method\s+ga\b", detail_config(page))  # Details open on the model just picked (B)
    # A click on a Pareto point (trace 0, the Original first) opens that experiment's details.
    click_point(page, "screen_pareto")
    settle(page, charts=2)
    assert re.search(r"Method\s+original\b", detail_config(page))
    shoot(page, "3_screen")

    navigate(page, "Contrast")
    settle(page, charts=6)
    assert_no_exception(page)
    for heading in ("Class-wise accuracy", "Prediction matrices", "Embedding space", "Layer-wise similarity"):
        page.get_by_role("heading", name=heading).wait_for()
    # A single click on an embedding point selects it: the instance panel shows that image.
    click_point(page, "contrast_embedding_a")
    page.get_by_role("button", name="Clear the selection (1 image)").wait_for()
    page.get_by_text(re.compile(r"^Image #\d+ · true class ")).first.wait_for()
    settle(page, charts=7)
    assert_no_exception(page)
    shoot(page, "4_contrast")

    navigate(page, "Attack")
    settle(page, charts=4)
    assert_no_exception(page)
    assert page.get_by_text("Privacy score").count() >= 2
    # Click the first image of Model A's high-risk grid: the instance panel shows it.
    grid = page.locator(".stPlotlyChart").filter(has_text="High-risk images").first
    grid.scroll_into_view_if_needed()
    box = grid.bounding_box()
    page.mouse.click(box["x"] + 23, box["y"] + 30 + 23)
    page.get_by_role("heading", name="Instance").wait_for()
    page.locator('[data-testid="stImage"]').first.wait_for(timeout=60_000)
    settle(page, charts=5)
    assert_no_exception(page)
    shoot(page, "5_attack")
    # A reload starts a new browser session: the URL brings back the scenario and Model A / B.
    page.reload()
    page.get_by_role("heading", name="Attack", exact=True).first.wait_for()
    settle(page, charts=4)
    assert_no_exception(page)
    sidebar = page.locator('[data-testid="stSidebar"]')
    assert "forget '3'" in sidebar.inner_text() and "Model A: Original" in sidebar.inner_text()
    assert "Model B: Gradient ascent" in sidebar.inner_text()

    # The owner token survived the reload (a cookie): this browser may still delete its run, and
    # Delete asks first.
    navigate(page, "Screen")
    settle(page, charts=1)
    choose(page, "Experiment", re.compile(experiment_id))
    page.get_by_role("button", name="Delete", exact=True).click()
    page.get_by_text("can't be undone").wait_for()
    page.get_by_role("button", name="Yes, delete").click()
    page.get_by_text(f"Deleted experiment {experiment_id}").wait_for()
    assert_no_exception(page)

    if SCREENSHOTS:
        for name in ("1_home", "2_build", "3_screen", "4_contrast", "5_attack"):
            assert (ARTIFACTS / f"{name}.png").stat().st_size > 10_000
    unexpected = [(status, url) for status, url in FAILED_RESPONSES if not STREAMLIT_PROBE.search(url)]
    assert not unexpected, unexpected
