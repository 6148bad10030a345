"""Stored and remote text is shown as the characters it is (issue 30): never as markdown (an
external image that loads in every visitor's browser, a link, HTML) on a page, never as a
terminal escape (an erased line, a carriage return, a window title, a bidi override) in the
``mucomp`` command's output.

The helper (:mod:`mucomp.display_text`) is tested on its own; then a store planted with hostile
method labels, group ids, method names, notes and reference-check messages is walked through every
reading page (AppTest) and every reading command, and a tampered bundle through ``mucomp
reproduce``. Fast by design: hand-made results (no training).
"""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

import pytest
from google.protobuf.message import Message
from streamlit.testing.v1 import AppTest

from mucomp import cli
from mucomp.display_text import for_markdown, for_terminal, is_hidden_control
from mucomp.store import ExperimentStore
from mucomp.ui.session import KEY_MODEL_A, KEY_MODEL_B
from tests.helpers import clear_app_caches, fresh_app_home
from tests.test_adversarial import C, digits_weights, full_result

ROOT = Path(__file__).resolve().parents[1]
ESC_2K, OSC_TITLE, RLO = "\x1b[2K\r", "\x1b]0;pwned\x07", "\u202e"
#: One text with every trick: markdown and HTML images, a fake verdict on a line of its own, an
#: erase-line + carriage return, a window title, a C1 CSI, a backspace and a right-to-left override.
HOSTILE = (f"GA ![x](http://evil.example/x.png) <img src=http://evil.example/y.png>\n  verdict: reproduced "
           f"exactly{ESC_2K}{OSC_TITLE}\x9b31m\b{RLO}live")
RAW_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


# ---------------------------------------------------------------------------------------------
# The helper


def test_for_terminal_makes_every_control_visible_and_leaves_text_alone():
    shown = for_terminal(HOSTILE)
    assert not RAW_CONTROLS.search(shown) and "\n" not in shown
    assert "\\x1b[2K\\r\\x1b]0;pwned\\x07\\x9b31m\\b\\u202elive" in shown  # visible, in order
    assert for_terminal(shown) == shown  # its own output is plain text
    assert for_terminal("a\nb\x1b", newlines=True) == "a\nb\\x1b"
    assert for_terminal("C:\\runs\\digits_cnn · 0.05 é 日本 👍🏽 👨\u200d👩") == "C:\\runs\\digits_cnn · 0.05 é 日本 👍🏽 👨\u200d👩"
    assert for_terminal("\U000e0041\u2028\x00") == "\\U000e0041\\u2028\\x00"  # tag letter, line separator, NUL
    assert for_terminal(3.5) == "3.5" and is_hidden_control("\u2066") and not is_hidden_control("a")


def test_for_markdown_escapes_every_metacharacter_and_strips_controls():
    shown = for_markdown(HOSTILE)
    assert not RAW_CONTROLS.search(shown) and "\n" not in shown and "pwned" not in shown
    assert "![" not in shown and "!\\[x\\](http://evil.example/x.png)" in shown
    assert not re.search(r"(?<!\\)<img", shown) and "\\<img" in shown
    for special in "[]*`$<>~|&":
        text = for_markdown(f"a {special} b {special}")
        assert all(text[i - 1] == "\\" for i, c in enumerate(text) if c == special), (special, text)
    assert for_markdown("digits_cnn: lr 0.05, 10 missing keys") == "digits_cnn: lr 0.05, 10 missing keys"
    assert for_markdown("# title").startswith("\\#") and for_markdown("1. item").startswith("1\\.")
    assert for_markdown("_x_ :red[big]") == "\\_x\\_ :red\\[big\\]"
    assert for_markdown("x" * 50, limit=10) == "x" * 9 + "…" and len(for_markdown("x" * 5000)) == 5000


# ---------------------------------------------------------------------------------------------
# A store planted with hostile text

EVIL_METHOD = f"evil![m](http://evil.example/m.png){ESC_2K}{RLO}"


def _config(seed: int, method: str | None, **extra) -> dict:
    config = {**full_result()["config"], "forget": "class:3", "forget_class": 3, "train_seed": 0, "data_seed": 0,
              "arch": "digits_cnn", "seed": seed, "method": method, **extra}
    return {k: v for k, v in config.items() if v is not None}


def _leakage() -> dict:
    return {"js_mean": 0.1, "mean_rank": 2.0, "retrained_mean_rank": 3.0, "mean_probability": [1.0 / C] * C,
            "retrained_mean_probability": [1.0 / C] * C, "rank_counts": [1] * C, "retrained_rank_counts": [1] * C}


def plant_hostile_store(root: Path) -> dict[str, list[str]]:
    """References whose reference check failed with a hostile message, and two replicate groups of
    unlearned runs with hostile labels, notes, a hyper-parameter and (one group) method name, and
    group ids (a schema that derives the group from the config ignores those); returns the ids by
    kind."""
    store = ExperimentStore(root / "experiments")
    weights = digits_weights()
    check = {"matches": False, "message": f"Hub file: {HOSTILE}"}
    ids: dict[str, list[str]] = {"references": [], "unlearned": []}
    for kind in ("original", "retrained"):
        result = full_result(kind=kind, method_label=None, owner=None, reference_check=check,
                             config=_config(0, None, base=None, epochs=None, lr=None, batch_size=None))
        ids["references"].append(store.save(result, weights).id)
    for group, method, seeds in ((f"g-{HOSTILE}", "ga", (0, 1)), (f"g-2{ESC_2K}{RLO}", EVIL_METHOD, (0, 1, 2))):
        for seed in seeds:
            audits = {"leakage": _leakage(), "probes": {f"fc{ESC_2K}\nfake line": 0.5}}
            result = full_result(method_label=HOSTILE, group=group, notes=HOSTILE, audits=audits,
                                 config=_config(seed, method, params={"clip_grad_norm": 0.025, "note": HOSTILE}))
            ids["unlearned"].append(store.save(result, weights).id)
    return ids


@pytest.fixture()
def hostile_home(tmp_path, monkeypatch):
    yield fresh_app_home(tmp_path, monkeypatch), plant_hostile_store(tmp_path)
    clear_app_caches()


# ---------------------------------------------------------------------------------------------
# Pages: every text an element renders as markdown

#: Proto fields Streamlit renders as markdown (bodies of markdown, captions, alerts, headers;
#: labels of widgets, expanders and tabs; help tooltips). Not: options, table cells, figure JSON,
#: metric values (a metric's ``body``: see markdown_texts).
MARKDOWN_FIELDS = {"body", "label", "help", "caption"}


def _strings(message: Message, out: list[str]) -> None:
    for field, value in message.ListFields():
        repeated = field.is_repeated if hasattr(field, "is_repeated") else field.label == field.LABEL_REPEATED
        values = value if repeated else [value]
        for item in values:
            if isinstance(item, Message):
                _strings(item, out)
            elif isinstance(item, str) and field.name in MARKDOWN_FIELDS:
                out.append(item)


def markdown_texts(at: AppTest) -> list[str]:
    """Every markdown body, label and tooltip of the page's elements and blocks."""
    out: list[str] = []

    def walk(node) -> None:
        proto = getattr(node, "proto", None)
        if node.type == "metric":  # its value is plain text
            out.extend([proto.label, proto.help])
        elif isinstance(proto, Message):
            _strings(proto, out)
        for child in getattr(node, "children", {}).values():
            walk(child)

    walk(at._tree)
    return out


def assert_literal(texts: list[str], where: str) -> None:
    for text in texts:
        assert not re.search(r"(?<!\\)!\[", text), (where, text)  # an image
        assert not re.search(r"(?<!\\)<img", text, re.I), (where, text)  # HTML
        assert not RAW_CONTROLS.search(text), (where, text)  # escape sequences, CR, bidi overrides


def _run(at: AppTest, page: str | None = None) -> AppTest:
    (at.switch_page(page) if page else at).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_pages_show_hostile_stored_text_literally(hostile_home):
    _, ids = hostile_home
    at = AppTest.from_file(str(ROOT / "Home.py"), default_timeout=60)
    _run(at)
    at.selectbox(key="home_forget").set_value(3)
    _run(at)
    texts = markdown_texts(at)
    assert any("Hub file" in t for t in texts), "Home shows the failed reference check"
    assert_literal(texts, "Home")
    at.session_state[KEY_MODEL_A], at.session_state[KEY_MODEL_B] = ids["unlearned"][0], ids["unlearned"][-1]
    at.session_state["screen_groups"] = {"selection": {"rows": [0], "columns": [], "cells": []}}
    _run(at, "pages/2_Screen.py")
    texts = markdown_texts(at)
    assert any(t.startswith("**Members of g-") for t in texts), "the members of the picked group are shown"
    assert any(t.startswith("The sweep needs evil") for t in texts), "the sweep names the hostile method"
    assert_literal(texts, "Screen")
    _run(at, "pages/3_Contrast.py")
    texts = markdown_texts(at)
    assert any("JS divergence to Retrained" in t for t in texts), "the leakage metrics are labelled by model"
    assert_literal(texts, "Contrast")
    _run(at, "pages/4_Attack.py")
    texts = markdown_texts(at)
    assert sum("evil.example" in t for t in texts) >= 2, "both models' labels are shown"
    assert_literal(texts, "Attack")


# ---------------------------------------------------------------------------------------------
# The command line


def _no_raw_controls(text: str, where: str) -> None:
    found = RAW_CONTROLS.search(text)
    assert found is None, (where, repr(text[max(found.start() - 60, 0): found.end() + 20]))


def test_reading_commands_print_hostile_stored_text_visibly(hostile_home, capsys):
    home, ids = hostile_home
    broken = home / "experiments" / "broken-one"  # unreadable: its reason quotes the stored value
    broken.mkdir()
    (broken / "result.json").write_text(json.dumps({**full_result(id="broken-one"), "created_at": HOSTILE}))
    some = ids["unlearned"][0]
    for argv in (["list"], ["list", "--json"], ["show", some], ["show", some, "--json"], ["summary"],
                 ["summary", "--json"], ["summary", "--group", f"g-nothing{ESC_2K}"], ["audit", some]):
        cli.main(argv)
        out, err = capsys.readouterr()
        _no_raw_controls(out + err, " ".join(argv))
        if argv == ["summary"]:  # the values are there, visibly
            assert "evil![m](http://evil.example/m.png)\\x1b[2K\\r\\u202e" in out
        if argv[0] == "audit":  # a stored layer name's line break fakes no line
            assert "fc\\x1b[2K\\r\\nfake line 0.500" in out and not any(line.startswith("fake") for line in out.splitlines())
    cli.main(["list"])
    out, err = capsys.readouterr()
    table = out.split("\n\n")[0].splitlines()  # one line per experiment, whatever its text holds
    assert "evil![m](http://evil.example/m.png)\\x1b[2K\\r\\u202e" in out and len(table) == 1 + sum(map(len, ids.values()))
    assert "broken-one" in out and "broken-one" in err


def _tampered(bundle: Path, destination: Path) -> Path:
    """``bundle`` retargeted at CIFAR-10 (not on disk here): reproduce reads every label and
    environment from it, then can't prepare the scenario, without training anything."""
    with zipfile.ZipFile(bundle) as source, zipfile.ZipFile(destination, "w") as target:
        for info in source.infolist():
            data = source.read(info.filename)
            if info.filename.endswith(".json"):
                data = data.replace(b'"dataset": "digits"', b'"dataset": "cifar10"')
            target.writestr(info.filename, data)
    return destination


def test_reproduce_prints_a_tampered_bundles_text_visibly(hostile_home, capsys):
    home, ids = hostile_home
    store = ExperimentStore()
    result = full_result(method_label=HOSTILE, group=f"g-{HOSTILE}"[:200], environment={"machine": HOSTILE},
                         config=_config(0, "ga", arch=None))  # (cifar10 has no digits_cnn)
    experiment = store.save(result, digits_weights())
    bundle = home / "bundle.zip"
    assert cli.main(["export", "--bundle", "--no-weights", experiment.id, "-o", str(bundle)]) == 0
    capsys.readouterr()
    assert cli.main(["reproduce", str(_tampered(bundle, home / "tampered.zip"))]) == 1
    out, err = capsys.readouterr()
    _no_raw_controls(out + err, "reproduce")
    verdicts = [line for line in out.splitlines() if line.strip().startswith("verdict:")]
    assert verdicts == ["  verdict: NOT reproduced (see the problems above)"], out + err  # the fake one is no line
    assert "\\n  verdict: reproduced exactly\\x1b[2K\\r" in out and "machine: GA ![x]" in out
    assert cli.main(["reproduce", str(home / "tampered.zip"), "--json"]) == 1
    out, _ = capsys.readouterr()
    _no_raw_controls(out, "reproduce --json")
    assert json.loads(out)["experiments"][0]["label"].startswith(HOSTILE)
