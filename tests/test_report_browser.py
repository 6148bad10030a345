"""A generated report in a real browser, opened from disk with the network blocked.

`mucomp report` writes a site from a small digits-shaped store (tests/report_store.py, with a
hostile method label); headless Chromium (Playwright, Debian's /usr/bin/chromium, as
tests/test_browser.py) opens its pages as file:// URLs while every request is recorded and any
that is not file:// is aborted. Checked: every figure draws (plotly's .plot-container and
.main-svg in each placeholder), no request leaves the page, no script error, and sorting the
experiment table by a column orders its rows as the stored values say (missing values last),
then reversed; the filter hides the other rows. With ``MUCOMP_SCREENSHOTS=1`` full-page
screenshots go to /tmp/report_shots/ (MUCOMP_REPORT_SHOTS names another folder and turns them on).
"""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

import pytest

from mucomp.cli import main
from tests.report_store import make_store

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]
SHOTS = Path(os.environ.get("MUCOMP_REPORT_SHOTS", "/tmp/report_shots"))
#: Screenshots cost the suite seconds: taken on request only.
TAKE_SHOTS = os.environ.get("MUCOMP_SCREENSHOTS", "") == "1" or bool(os.environ.get("MUCOMP_REPORT_SHOTS"))
SCENARIO = "digits-c3-s0"

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="no browser at /usr/bin/chromium: install it with `apt-get install -y chromium chromium-driver` "
           "(.ci/run does)",
)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The report of the whole store, with two named pairs: the hostile run against the Original
    (with the twin embedding) and GA against the Retrained model."""
    home = tmp_path_factory.mktemp("report-browser-home")
    ids = make_store(home)
    out = tmp_path_factory.mktemp("report-browser") / "site"
    patch = pytest.MonkeyPatch()
    patch.setenv("MUCOMP_HOME", str(home))
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            code = main(["report", "-o", str(out), "--embeddings", "1", "--pairs",
                         f"{ids['hostile']}:{ids['original']},{ids['ga_0']}:{ids['retrained']}"])
    finally:
        patch.undo()
    assert code == 0
    return out, ids, home


@pytest.fixture(scope="module")
def browser_tab():
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed: pip install -e '.[test]'")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        tab = browser.new_page(viewport={"width": 1440, "height": 1000})
        tab.set_default_timeout(60_000)
        requests: list[str] = []
        errors: list[str] = []

        def route(r):  # every request is recorded; only the site's own files are served
            requests.append(r.request.url)
            if r.request.url.startswith("file://"):
                r.continue_()
            else:
                r.abort()

        tab.route("**/*", route)
        tab.on("pageerror", lambda err: errors.append(str(err)))
        tab.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        yield tab, requests, errors
        browser.close()


def open_page(tab, path: Path, shot: str | None = None) -> None:
    """Open a page from disk, wait until its script drew every figure; a full-page screenshot."""
    tab.goto(path.resolve().as_uri())
    tab.wait_for_selector("body[data-figures=drawn]")
    if shot is not None and TAKE_SHOTS:
        SHOTS.mkdir(parents=True, exist_ok=True)
        tab.screenshot(path=str(SHOTS / f"{shot}.png"), full_page=True)


def assert_every_figure_drawn(tab) -> int:
    placeholders = tab.locator("div.fig[data-fig]")
    count = placeholders.count()
    states = placeholders.evaluate_all("divs => divs.map(d => [d.getAttribute('data-state'), "
                                       "d.querySelectorAll('.plot-container').length, "
                                       "d.querySelectorAll('.main-svg').length])")
    assert states and all(state == "drawn" and containers == 1 and svgs >= 1 for state, containers, svgs in states), states
    return count


def test_every_page_draws_every_figure_without_a_network_request(site, browser_tab):
    out, ids, _ = site
    tab, requests, errors = browser_tab
    pages = {"index": out / "index.html", "definitions": out / "definitions.html",
             "screen": out / SCENARIO / "index.html",
             "pair_hostile": out / SCENARIO / f"{ids['hostile']}_vs_{ids['original']}.html",
             "pair_ga": out / SCENARIO / f"{ids['ga_0']}_vs_{ids['retrained']}.html"}
    drawn = {}
    for shot, path in pages.items():
        open_page(tab, path, shot)
        drawn[shot] = tab.locator("div.fig").count() and assert_every_figure_drawn(tab)
        # The hostile label is on the pages as text: no element it names was created.
        assert tab.locator("img, iframe, object, embed").count() == 0
        assert tab.locator("a[href^='http'], a[href^='//']").count() == 0
        if shot == "pair_hostile":
            assert "evil.example" in tab.locator("h1").inner_text()
    assert drawn["screen"] >= 3 and drawn["pair_hostile"] >= 10 and drawn["pair_ga"] >= 8
    assert [url for url in requests if not url.startswith("file://")] == []
    assert not errors, errors


def column_values(tab, column: str) -> list[str | None]:
    """The sort keys (data-v) of one numeric column, in the rows' current order."""
    return tab.evaluate("""column => {
        const table = document.getElementById('experiments');
        const index = Array.from(table.tHead.rows[0].cells).findIndex(c => c.textContent.trim().startsWith(column));
        return Array.from(table.tBodies[0].rows).map(r => r.cells[index].getAttribute('data-v') || null);
    }""", column)


def row_ids(tab, visible_only: bool = False) -> list[str]:
    selector = "#experiments tbody tr" + (":not(.hidden)" if visible_only else "")
    return tab.locator(selector).evaluate_all("rows => rows.map(r => r.getAttribute('data-id'))")


def test_sorting_and_filtering_the_table(site, browser_tab):
    out, ids, home = site
    tab, requests, _ = browser_tab
    open_page(tab, out / SCENARIO / "index.html")
    from mucomp.store import ExperimentStore

    rt = {e.id: e.metrics.get("RT") for e in ExperimentStore(home / "experiments").list()}
    order = row_ids(tab)
    header = tab.locator("#experiments thead th", has_text="RT")
    for descending in (False, True):
        # The stored values' order, missing RT (the references) last, ties as they were.
        expected = sorted(order, key=lambda i: (rt[i] is None, -(rt[i] or 0) if descending else (rt[i] or 0)))
        header.locator("button").click()
        assert header.get_attribute("aria-sort") == ("descending" if descending else "ascending")
        order = row_ids(tab)
        assert order == expected and order != sorted(order, key=lambda i: rt[i] or 0, reverse=not descending)
        values = column_values(tab, "RT")
        assert values[-2:] == [None, None] and all(v is not None for v in values[:-2])
    tab.locator("#experiments thead th", has_text="Method").locator("button").click()
    methods = tab.locator("#experiments tbody tr td:nth-child(5)").all_inner_texts()
    assert methods == sorted(methods, key=str.lower)
    tab.fill("#table-filter", "random labels")
    assert row_ids(tab, visible_only=True) == [ids["rl"]]
    assert tab.locator("#table-count").inner_text().startswith("1 of")
    tab.fill("#table-filter", "")
    assert len(row_ids(tab, visible_only=True)) == len(ids)
    if TAKE_SHOTS:
        tab.screenshot(path=str(SHOTS / "screen_after_sort.png"), full_page=True)
    assert [url for url in requests if not url.startswith("file://")] == []
