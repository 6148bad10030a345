"""`mucomp report`: the static site of stored results (mucomp.report).

On a small store of digits-shaped results (tests/report_store.py; nothing is trained): the command
writes every experiment and every default pair, loads plotly's JavaScript from one local file,
references nothing on the network, escapes a hostile method label in the HTML and in the figures,
writes the static-Space README, and the Screen page's download function returns the site as a
valid zip. tests/test_report_browser.py opens a report in a real browser.
"""

from __future__ import annotations

import contextlib
import html
import io
import json
import re
import zipfile
from html.parser import HTMLParser
from pathlib import Path

import pytest

from mucomp.cli import main
from mucomp.report import Pair, ReportSelectionError, parse_pairs, plan_report, report_zip
from mucomp.report.figures import plot_text, safe_json
from tests.report_store import HOSTILE, make_store

SCENARIO = "digits-c3-s0"
#: Attributes through which a page could make the browser load something.
LOADING_ATTRIBUTES = {"src", "href", "srcset", "action", "formaction", "data", "poster", "background", "xlink:href",
                      "content"}
REMOTE = re.compile(r"^\s*(?:[a-z][a-z0-9+.-]*:)?//", re.I)


def run(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(list(args))
    return code, out.getvalue()


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    path = tmp_path_factory.mktemp("report-home")
    ids = make_store(path)
    patch = pytest.MonkeyPatch()
    patch.setenv("MUCOMP_HOME", str(path))
    yield path, ids
    patch.undo()


@pytest.fixture(scope="module")
def site(home, tmp_path_factory):
    _, ids = home
    out = tmp_path_factory.mktemp("report-out") / "site"
    code, printed = run("report", "-o", str(out), "--embeddings", "1", "--json")
    assert code == 0
    return out, ids, json.loads(printed)


class Tags(HTMLParser):
    """Every start tag with its attributes, and the text inside <script> elements."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.script_text: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag):
        self._in_script = False

    def handle_data(self, data):
        if self._in_script and data.strip():
            self.script_text.append(data)


def parsed(path: Path) -> Tags:
    tags = Tags()
    tags.feed(path.read_text(encoding="utf-8"))
    return tags


def record(path: Path) -> dict:
    """A figure record file (``MUCOMP.fig("<hash>", {...});``) as its figure dict."""
    found = re.fullmatch(r'MUCOMP\.fig\("([0-9a-f]+)",(.*)\);\n', path.read_text(), re.S)
    assert found and found.group(1) == path.stem
    return json.loads(found.group(2))


def default_pairs(ids: dict[str, str]) -> set[str]:
    runs = [ids[k] for k in ids if k not in ("original", "retrained")]
    pairs = [Pair(ids["original"], ids["retrained"])]
    pairs += [Pair(run, ids[ref]) for run in runs for ref in ("original", "retrained")]
    return {p.page for p in pairs}


# ---------------------------------------------------------------------------------------------
# The site


def test_the_command_writes_every_experiment_and_every_default_pair(site):
    out, ids, printed = site
    assert printed["scenarios"] == [SCENARIO] and printed["experiments"] == len(ids)
    assert printed["pairs"] == len(default_pairs(ids))
    for name in ("index.html", "definitions.html", "README.md", "assets/plotly.min.js", "assets/report.js",
                 "assets/report.css", "assets/templates.js", f"{SCENARIO}/index.html"):
        assert (out / name).is_file(), name
    screen = parsed(out / SCENARIO / "index.html")
    rows = [attrs["data-id"] for tag, attrs in screen.tags if tag == "tr" and "data-id" in attrs]
    assert sorted(rows) == sorted(ids.values())
    pages = {p.name for p in (out / SCENARIO).glob("*_vs_*.html")}
    assert pages == default_pairs(ids)
    linked = {attrs["href"] for tag, attrs in screen.tags if tag == "a" and "_vs_" in (attrs.get("href") or "")}
    assert linked == pages  # every pair page is reachable from the Screen page
    index = (out / "index.html").read_text()
    assert f'href="{SCENARIO}/index.html"' in index


def test_every_figure_placeholder_has_its_record_and_plotly_is_one_local_file(site):
    out, ids, _ = site
    from plotly.offline import get_plotlyjs

    assert (out / "assets" / "plotly.min.js").read_text() == get_plotlyjs()
    for page in [out / "index.html", *(out / SCENARIO).glob("*.html")]:
        tags = parsed(page)
        figures = [attrs["data-fig"] for tag, attrs in tags.tags if tag == "div" and "data-fig" in attrs]
        sources = [attrs["src"] for tag, attrs in tags.tags if tag == "script"]
        assert not tags.script_text, f"{page.name} has inline script"
        assert sum(src.endswith("assets/plotly.min.js") for src in sources) == 1
        for key in figures:
            assert f"../figs/{key}.js" in sources, (page.name, key)
            record = (out / "figs" / f"{key}.js").read_text()
            assert record.startswith(f'MUCOMP.fig("{key}",')
        assert page.stat().st_size < 200_000  # figures live in figs/, plotly.js in assets/: nothing inlined
    pair = parsed(out / SCENARIO / f"{ids['ga_0']}_vs_{ids['original']}.html")
    assert sum(tag == "div" and "data-fig" in attrs for tag, attrs in pair.tags) >= 8  # contrast + attack figures
    # The first pair of the report carries the twin embedding (two more figures); the others say
    # how to get it.
    first = (out / SCENARIO / f"{ids['original']}_vs_{ids['retrained']}.html").read_text()
    other = (out / SCENARIO / f"{ids['rl']}_vs_{ids['original']}.html").read_text()
    assert first.count('class="fig"') == other.count('class="fig"') + 2
    assert "draws the twin embedding for its first pair only" in other


def test_a_hostile_experiment_name_is_shown_as_text_everywhere(site):
    out, ids, _ = site
    pages = [out / "index.html", out / "definitions.html", *(out / SCENARIO).glob("*.html")]
    escaped = html.escape(HOSTILE, quote=True)
    assert escaped in (out / SCENARIO / "index.html").read_text()
    for page in pages:
        content = page.read_text()
        assert HOSTILE not in content and "evil.example/x.png\"" not in content
        tags = parsed(page)
        assert not [t for t, _ in tags.tags if t in ("img", "iframe", "object", "embed", "base", "form")], page.name
        assert all(not REMOTE.match(attrs.get("href") or "") for tag, attrs in tags.tags if tag == "a")
    # In the figures (plotly renders <a href> and <b> in titles, legends and hovers), the label is
    # entity-escaped text, and no raw "<" can close a script or start a tag.
    texts = json.dumps([record(p) for p in (out / "figs").glob("*.js")])
    assert plot_text(HOSTILE) in texts and HOSTILE not in texts
    for path in (out / "figs").glob("*.js"):
        assert "<" not in path.read_text()


def test_no_resource_is_referenced_on_the_network(site):
    out, _, _ = site
    for page in [out / "index.html", out / "definitions.html", *(out / SCENARIO).glob("*.html")]:
        tags = parsed(page)
        for tag, attrs in tags.tags:
            for name, value in attrs.items():
                if name in LOADING_ATTRIBUTES and tag != "meta":
                    assert not REMOTE.match(value or ""), (page.name, tag, name, value)
        policy = [a["content"] for t, a in tags.tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"]
        assert policy and "connect-src 'none'" in policy[0] and "default-src 'self'" in policy[0]
    for name in ("report.js", "templates.js", "report.css"):
        assert not re.search(r"https?://", (out / "assets" / name).read_text()), name
    inert = safe_json(plot_text(HOSTILE))[1:-1]  # the hostile label, as the records hold it (text)
    for path in (out / "figs").glob("*.js"):
        assert not re.search(r"https?://", path.read_text().replace(inert, "")), path.name


def test_the_site_readme_makes_it_a_static_space(site):
    out, _, _ = site
    text = (out / "README.md").read_text()
    front = text.split("---\n")[1]
    fields = dict(line.split(": ", 1) for line in front.strip().splitlines())
    assert fields["sdk"] == "static" and fields["app_file"] == "index.html"


def test_named_pairs_and_experiments(home, tmp_path):
    _, ids = home
    out = tmp_path / "named"
    code, printed = run("report", "-o", str(out), "--experiments", ids["ga_0"], "--pairs", f"{ids['ga_0']}:{ids['rl']}",
                        "--embeddings", "0", "--json")
    assert code == 0 and json.loads(printed)["pairs"] == 1
    assert [p.name for p in (out / SCENARIO).glob("*_vs_*.html")] == [f"{ids['ga_0']}_vs_{ids['rl']}.html"]
    rows = [a["data-id"] for t, a in parsed(out / SCENARIO / "index.html").tags if t == "tr" and "data-id" in a]
    assert sorted(rows) == sorted([ids["original"], ids["retrained"], ids["ga_0"], ids["rl"]])
    # Written again into the same folder: the earlier report is replaced, not merged.
    assert run("report", "-o", str(out), "--pairs", f"{ids['rl']}:{ids['original']}", "--embeddings", "0",
               "--quiet")[0] == 0
    assert [p.name for p in (out / SCENARIO).glob("*_vs_*.html")] == [f"{ids['rl']}_vs_{ids['original']}.html"]


def test_bad_selections_and_folders_are_refused_with_what_to_do(home, tmp_path, capsys):
    _, ids = home
    assert main(["report", "-o", str(tmp_path / "a"), "--scenario", "cifar10-c3-s0"]) == 2
    assert "digits-c3-s0" in capsys.readouterr().err  # the message lists the scenarios there are
    assert main(["report", "-o", str(tmp_path / "b"), "--experiments", "nosuchid"]) == 2
    assert "mucomp list" in capsys.readouterr().err
    assert main(["report", "-o", str(tmp_path / "c"), "--pairs", ids["ga_0"]]) == 2
    assert "A:B" in capsys.readouterr().err
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    assert main(["report", "-o", str(foreign)]) == 2
    assert "not an earlier mucomp report" in capsys.readouterr().err
    assert (foreign / "notes.txt").read_text() == "keep me" and len(list(foreign.iterdir())) == 1


def test_plan_pairs_each_experiment_with_the_references_it_recorded():
    config = {"dataset": "digits", "forget": "class:3", "forget_class": 3, "train_seed": 0, "data_seed": 0,
              "arch": "digits_cnn"}
    listing = [
        {"id": "orig-old", "kind": "original", "config": config},
        {"id": "orig-new", "kind": "original", "config": config},
        {"id": "retr-new", "kind": "retrained", "config": config},
        {"id": "run-a", "kind": "unlearned", "config": config,
         "references": {"original": {"id": "orig-old"}, "retrained": {"id": "retr-new"}}},
        {"id": "run-b", "kind": "unlearned", "config": {**config, "train_seed": 1}},
    ]
    plan = plan_report(listing)
    assert [s.key for s in plan.scenarios] == ["digits-c3-s0", "digits-c3-s1"]
    first = plan.scenarios[0]
    assert first.references == {"original": "orig-new", "retrained": "retr-new"}
    assert first.pairs == [Pair("orig-new", "retr-new"), Pair("run-a", "orig-old"), Pair("run-a", "retr-new")]
    assert {r["id"] for r in first.family} == {"orig-old", "orig-new", "retr-new", "run-a", "run-b"}
    assert plan.scenarios[1].pairs == []  # no references in that scenario: nothing to pair with
    assert parse_pairs("run-a:orig-old, run-b:run-a") == [("run-a", "orig-old"), ("run-b", "run-a")]
    with pytest.raises(ReportSelectionError, match="two scenarios"):
        plan_report(listing, pairs=[("run-a", "run-b")])


def test_the_screen_download_is_the_report_as_a_valid_zip(tmp_path):
    home = tmp_path / "small-home"
    ids = make_store(home, runs=())  # the references alone: one pair, the smallest site
    data = report_zip(SCENARIO, home)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.testzip() is None
        names = set(archive.namelist())
        front = archive.read("README.md").decode()
    assert {"index.html", "README.md", "assets/plotly.min.js", f"{SCENARIO}/index.html"} <= names
    assert f"{SCENARIO}/{ids['original']}_vs_{ids['retrained']}.html" in names
    assert "sdk: static" in front


def test_plan_pairs_imported_comparator_experiments_with_the_comparators_own_references():
    config = {"dataset": "cifar10", "forget": "class:3", "forget_class": 3, "train_seed": 0, "data_seed": 0,
              "arch": "resnet18_cifar"}
    listing = [
        {"id": "cmp3-0003", "kind": "comparator", "config": {**config, "comparator_type": "Original"}},
        {"id": "cmp3-a003", "kind": "comparator", "config": {**config, "comparator_type": "Retrained"}},
        {"id": "cmp3-b003", "kind": "comparator", "config": {**config, "comparator_type": "Unlearned"}},
        {"id": "original-c", "kind": "original", "config": config},
        {"id": "retrained-c", "kind": "retrained", "config": config},
        {"id": "mine", "kind": "unlearned", "config": config},
    ]
    (scenario,) = plan_report(listing).scenarios
    assert scenario.pairs == [Pair("original-c", "retrained-c"), Pair("cmp3-0003", "cmp3-a003"),
                              Pair("cmp3-b003", "cmp3-0003"), Pair("cmp3-b003", "cmp3-a003"),
                              Pair("mine", "original-c"), Pair("mine", "retrained-c")]
    (narrowed,) = plan_report(listing, experiments=["cmp3-b003"]).scenarios  # the references stay listed
    assert [r["id"] for r in narrowed.rows] == ["cmp3-0003", "cmp3-a003", "cmp3-b003", "original-c", "retrained-c"]
