"""Issue 30: one canonical forget-set text (what is drawn is what is stored), forget and retain
sets too small to evaluate refused before any training, and clear messages for numbers, files and
byte-order marks."""

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mucomp.data import Scenario, load_dataset
from mucomp.forget_sets import (
    MIN_SET_IMAGES,
    ForgetSet,
    min_random_percent,
    parse_forget,
    parse_index_text,
    random_share_text,
)
from mucomp.schema import FORGET_PATTERN
from mucomp.specs import DATASETS

DIGITS = DATASETS["digits"]
ROOT = Path(__file__).resolve().parents[1]
N_TRAIN = 1347  # digits' training split
#: A share whose unrounded draw is 11.5 images (12, rounded half to even), and the share a stored
#: text keeps of it (6 decimals), which draws 11.
EXACT_SHARE = 11.5 / N_TRAIN * 100
STORED_SHARE = "0.853749"


# --- 1. one canonical text ------------------------------------------------------------------------
def test_texts_that_share_a_key_draw_the_same_images():
    exact, stored = f"random:{EXACT_SHARE!r}%", f"random:{STORED_SHARE}%"
    assert len(repr(EXACT_SHARE).split(".")[1]) > 6  # more decimals than a stored text keeps
    a, b = Scenario("digits", forget=exact), Scenario("digits", forget=stored)
    assert a.forget_set.text == b.forget_set.text == stored and a.key == b.key
    assert a.forget_indices.size == b.forget_indices.size == 11  # drawn from the rounded share
    assert np.array_equal(a.forget_indices, b.forget_indices)
    from mucomp.references import cache_path

    assert cache_path(a, "retrained") == cache_path(b, "retrained")


@pytest.mark.parametrize("share", [EXACT_SHARE, 12.3456789, 0.7795100222717149, 33.3333333333, 10.0, 2.5])
def test_the_stored_text_reproduces_the_set(share):
    first = Scenario("digits", forget=f"random:{share!r}%")
    text = first.forget_set.text
    assert re.fullmatch(FORGET_PATTERN, text), text  # what the schema stores
    again = Scenario("digits", forget=text)
    assert again.key == first.key and np.array_equal(again.forget_indices, first.forget_indices)


def test_every_way_to_a_share_is_the_same_canonical_form():
    assert random_share_text(EXACT_SHARE) == f"random:{STORED_SHARE}%"
    assert ForgetSet("random", percent=EXACT_SHARE) == parse_forget(f"random:{STORED_SHARE}%", DIGITS)
    assert parse_forget("random:10.000%", DIGITS).text == "random:10%"
    assert parse_forget("random:.5%", DIGITS).text == "random:0.5%"
    tiny = parse_forget("random:0.00001%", DATASETS["cifar10"])  # no exponent in the text
    assert tiny.text == "random:0.00001%" and re.fullmatch(FORGET_PATTERN, tiny.text)
    assert parse_forget("random:12.3456789%", DIGITS).key == "r12_345679p"
    for text in ("random:0.0000001%", "random:99.9999999%", "random:1e1%", "random:nan%", "random:inf%"):
        with pytest.raises(ValueError, match="neither a share"):
            parse_forget(text, DIGITS)


# --- 2. sets too small to evaluate ----------------------------------------------------------------
@pytest.mark.parametrize("text, side", [
    ("random:3", "to forget"), ("random:0.25%", "to forget"), ("random:0.1855975243504083%", "to forget"),
    (f"random:{N_TRAIN - 3}", "to retain"), ("random:99.9%", "to retain"),
])
def test_sets_too_small_to_evaluate_are_refused_when_named(text, side):
    with pytest.raises(ValueError, match=f"at least {MIN_SET_IMAGES} images {side}") as info:
        Scenario("digits", forget=text)  # nothing loaded, nothing trained
    assert "choose between 4 and 1343 images" in str(info.value)


def test_index_sets_too_small_are_refused(tmp_path):
    path = tmp_path / "three.txt"
    path.write_text("10\n20\n30\n")
    with pytest.raises(ValueError, match="at least 4 images to forget.*list more indices"):
        Scenario("digits", forget=f"indices:{path}")
    path.write_text("\n".join(str(i) for i in range(N_TRAIN - 2)))
    with pytest.raises(ValueError, match="at least 4 images to retain.*list fewer indices"):
        Scenario("digits", forget=f"indices:{path}")
    path.write_text("10\n20\n30\n40\n")
    assert Scenario("digits", forget=f"indices:{path}").forget_indices.tolist() == [10, 20, 30, 40]


def test_the_drawn_set_is_checked_against_the_loaded_split():
    labels = np.zeros(10, dtype=np.int64)
    with pytest.raises(ValueError, match="forgets 3 of the 10"):
        ForgetSet("random", count=3).indices_in(labels, 0)
    with pytest.raises(ValueError, match="at least 4 images to retain"):
        ForgetSet("random", percent=70.0).indices_in(labels, 0)
    assert ForgetSet("random", percent=60.0).indices_in(labels, 0).size == 6


def test_references_are_not_trained_for_a_set_too_small(monkeypatch):
    """A scenario whose set only the loaded split shows too small (here: forced past the check of
    its definition) is refused by prepare_scenario before any reference is loaded or trained."""
    from mucomp.experiment import state
    from mucomp.store import ExperimentStore

    scenario = Scenario("digits", forget="random:10%", data_seed=7)
    object.__setattr__(scenario, "forget", ForgetSet("random", count=2))

    def no_training(*args, **kwargs):
        raise AssertionError("a reference was loaded or trained for a set too small to evaluate")

    monkeypatch.setattr(state, "load_reference", no_training)
    with pytest.raises(ValueError, match="at least 4 images to forget"):
        state.prepare_scenario(scenario, ExperimentStore())


def test_the_cli_refuses_a_tiny_set_before_any_training(tmp_path, capsys, monkeypatch):
    from mucomp.cli import main

    monkeypatch.setenv("MUCOMP_HOME", str(tmp_path / "home"))
    assert main(["run", "--forget", "random:2", "--method", "ft", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "at least 4 images to forget" in err and "random:4 or random:0.26%" in err
    assert not (tmp_path / "home" / "references").exists()


@pytest.mark.parametrize("command", [["run", "--method", "ft", "--quiet"], ["references"]])
def test_an_index_past_the_split_is_a_usage_error_before_any_training(tmp_path, capsys, monkeypatch, command):
    from mucomp.cli import main

    monkeypatch.setenv("MUCOMP_HOME", str(tmp_path / "home"))
    listed = tmp_path / "forget.txt"
    listed.write_text("\n".join(map(str, [5, 6, 7, 8, N_TRAIN])))
    with pytest.raises(ValueError, match=f"lists index {N_TRAIN}, but the training split has {N_TRAIN} images"):
        Scenario("digits", forget=f"indices:{listed}")  # refused by the definition, not first when drawn
    assert main([command[0], "--forget", f"indices:{listed}", *command[1:]]) == 2  # as every forget-set error
    err = capsys.readouterr().err
    assert f"lists index {N_TRAIN}, but the training split has {N_TRAIN} images (0-{N_TRAIN - 1}); fix the file" in err
    assert not (tmp_path / "home" / "references").exists()


def test_homes_minimum_share_follows_the_rule():
    assert DATASETS["digits"].train_images == len(load_dataset("digits").train) == N_TRAIN
    low = min_random_percent(DIGITS)
    assert low == 0.26
    assert Scenario("digits", forget=random_share_text(low)).forget_indices.size == MIN_SET_IMAGES
    with pytest.raises(ValueError, match="at least 4 images"):
        Scenario("digits", forget=random_share_text(low - 0.01))
    for spec in DATASETS.values():
        share = min_random_percent(spec)
        assert round(share / 100 * spec.train_images) >= MIN_SET_IMAGES
        assert round((share - 0.01) / 100 * spec.train_images) < MIN_SET_IMAGES or share == 0.01


def test_home_offers_no_share_below_the_minimum():
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "Home.py"), default_timeout=120)
    at.query_params.update({"dataset": "digits", "forget": "random:10%", "seed": "0"})
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    share = next(w for w in at.number_input if w.key == "home_forget_percent")
    assert share.min == min_random_percent(DIGITS) and share.value == 10.0
    share.set_value(0.26).run()
    assert not at.exception and "0.26% of the training images" in "".join(c.value for c in at.caption)


# --- 3. messages for numbers, files and byte-order marks -----------------------------------------
@pytest.mark.parametrize("text", ["class:²", "class:٣", "classes:3,٣", "class:３"])
def test_a_class_in_other_digits_says_so(text):
    with pytest.raises(ValueError, match="is not a whole number written with the digits 0-9"):
        parse_forget(text, DIGITS)


@pytest.mark.parametrize("text", ["random:٣", "random:1٠%", "random:²"])
def test_a_random_set_in_other_digits_says_so(text):
    with pytest.raises(ValueError, match="not a number written with the digits 0-9"):
        parse_forget(text, DIGITS)


@pytest.mark.parametrize(("text", "says"), [("random:0", "a count must be at least 1"), ("random:000", "at least 1"),
                                           ("random:99999999999999", "larger than any data set")])
def test_a_random_count_out_of_range_says_which_way(text, says):
    with pytest.raises(ValueError, match=says) as caught:
        parse_forget(text, DIGITS)
    assert "digits 0-9" not in str(caught.value)


def test_index_files_accept_only_digits_0_9_and_a_byte_order_mark(tmp_path):
    with pytest.raises(ValueError, match=r"line 2: '١٢' is not a training index \(a non-negative whole number "
                                         "written with the digits 0-9"):
        parse_index_text("5\n١٢\n")
    with pytest.raises(ValueError, match="line 1: '²'"):
        parse_index_text("²\n")
    path = tmp_path / "bom.txt"
    path.write_bytes(b"\xef\xbb\xbf12\n13\n14\n15\n")
    assert parse_forget(f"indices:{path}", DIGITS).indices == (12, 13, 14, 15)
    assert parse_index_text("\ufeff7\n") == (7,)
    assert parse_forget(f"\ufeffindices:{path}", DIGITS).kind == "indices"


@pytest.mark.parametrize("text", ["indices:", "indices:  ", "\ufeffindices:"])
def test_an_empty_index_path_is_called_empty_not_a_folder(text):
    with pytest.raises(ValueError, match=r"indices: names no file \(the path is empty\); indices:FILE needs") as caught:
        parse_forget(text, DIGITS)
    assert "folder" not in str(caught.value)


@pytest.mark.parametrize("text, word", [("1_0", "1_0"), ("١", "١"), ("²", "²"), ("0-1_0", "1_0"), ("٠-3", "٠"),
                                        ("３", "３")])
def test_seeds_accept_only_the_digits_0_9(text, word):
    from mucomp.seeds import parse_seeds, seed_from_text

    with pytest.raises(ValueError, match=f"'{word}' is not a whole number written with the digits 0-9"):
        parse_seeds(text)
    with pytest.raises(ValueError, match="is not a whole number written with the digits 0-9"):
        seed_from_text(text)
    assert parse_seeds("10") == [10] and parse_seeds(" 007 ") == [7] and seed_from_text("4294967295") == 2**32 - 1
    with pytest.raises(ValueError, match=r"seed must be in \[0, 2\*\*32\)"):
        seed_from_text("9" * 5000)  # never handed to int() (which refuses 4,300 digits with another message)


def test_index_files_that_are_not_regular_files(tmp_path, monkeypatch):
    folder = tmp_path / "a folder"
    folder.mkdir()
    with pytest.raises(ValueError, match="is a folder, not a file"):
        parse_forget(f"indices:{folder}", DIGITS)
    if Path("/dev/zero").exists():
        with pytest.raises(ValueError, match="is not a regular file"):
            parse_forget("indices:/dev/zero", DIGITS)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match="is not a regular file"):  # not opened: it would block
        parse_forget(f"indices:{fifo}", DIGITS)
    with pytest.raises(ValueError, match="does not exist"):
        parse_forget(f"indices:{tmp_path / 'missing.txt'}", DIGITS)
    import mucomp.forget_sets as forget_sets

    big = tmp_path / "big.txt"
    big.write_text("1\n" * 50)
    monkeypatch.setattr(forget_sets, "MAX_INDEX_FILE_BYTES", 20)
    with pytest.raises(ValueError, match="is larger than"):
        parse_forget(f"indices:{big}", DIGITS)


def test_the_cli_says_what_is_wrong_with_a_class():
    done = subprocess.run([sys.executable, "-m", "mucomp.cli", "list", "--forget-class", "²"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "is not a whole number written with the digits 0-9" in done.stderr
    assert "invalid literal" not in done.stderr
