"""Every attack found against the store, imports, uploads and the server config (issue 13), each
ending in a clear message with nothing stored, nothing lost and nothing else broken; and fuzz
tests of the two readers of untrusted bytes (stored results, uploaded weights).

Fast by design: synthetic results of the digits shape (no training), small stores in tmp_path.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import save as save_safetensors

from mucomp import cli, schema
from mucomp.data import DATASETS, Scenario
from mucomp.models import seeded_model
from mucomp.store import (
    ExperimentExistsError,
    ExperimentStore,
    StoreError,
    UnreadableExperimentError,
)
from mucomp.ui.text import md
from mucomp.uploads import UploadError, check_upload, read_state_dict

ROOT = Path(__file__).resolve().parents[1]
DIGITS = DATASETS["digits"]
C = DIGITS.num_classes


# ---------------------------------------------------------------------------------------------
# Synthetic results of the digits shape


def full_result(**extra) -> dict:
    """A complete, valid version-2 result (small per-image blocks)."""
    row = [1.0 / C] * C
    result = {
        "kind": "unlearned", "method_label": "Gradient ascent (GA)", "owner": "session-a",
        "config": {"dataset": "digits", "forget_class": 3, "seed": 0, "method": "ga", "base": "original",
                   "epochs": 2, "lr": 0.05, "batch_size": 32, "params": {"clip_grad_norm": 0.025}},
        "metrics": {"UA": 0.5, "RA": 0.99, "TUA": 0.4, "TRA": 0.98, "RT": 0.1, "PS": 0.3, "PS_exact": 0.25,
                    "MIA_efficacy": 0.2, "MIA_svc_accuracy": 0.5, "avg_gap": 0.3,
                    "cost": {"samples_forwarded": 10, "samples_backpropagated": 10, "optimizer_steps": 2},
                    "accs": [0.9] * C, "t_accs": [0.9] * C, "label_dist": [row] * C, "conf_dist": [row] * C,
                    "t_label_dist": [row] * C, "t_conf_dist": [row] * C},
        "attack": {"indices": [3, 13], "entropy": [0.1, 0.2], "confidence": [5.0, 4.0], "probs": [row, row],
                   "worst_case": {"metric": "entropy", "direction": "above_unlearn", "strategy": "worst_case",
                                  "threshold": 0.1, "fpr": 0.1, "fnr": 0.2, "attack_score": 0.5,
                                  "success_rate": 0.8, "privacy_score": 0.5}},
        "embedding": {"indices": [0, 1], "x": [0.0, 1.0], "y": [1.0, 0.0], "pred": [0, 1], "probs_t2": [row, row]},
        "cka": {"layers": ["fc"], "original": {"train_forget": {"fc": 0.9}}},
        "epochs": [{"epoch": 1, "forget_accuracy": 0.5, "loss": -0.1, "seconds": 0.05}],
        "timings": {"unlearning": 0.1},
    }
    result.update(extra)
    return result


def digits_weights(seed: int = 0) -> dict[str, torch.Tensor]:
    return seeded_model("digits_cnn", C, seed).state_dict()


@pytest.fixture()
def store(tmp_path) -> ExperimentStore:
    return ExperimentStore(tmp_path / "experiments")


def plant(store: ExperimentStore, experiment_id: str, content: bytes | str) -> None:
    """Write a result.json the way an attacker (or a damaged disk) would: bypassing the store."""
    folder = store.root / experiment_id
    folder.mkdir()
    (folder / "result.json").write_bytes(content.encode() if isinstance(content, str) else content)


def mutated(change) -> str:
    """A stored-looking result (ids filled in) with ``change(result)`` applied, as JSON text."""
    result = full_result(id="placeholder", schema_version=2, created_at="2025-01-01T00:00:00+00:00")
    change(result)
    return json.dumps(result)


BAD_RESULTS = {
    "created-int": (lambda r: r.update(created_at=17), "created_at"),
    "created-null": (lambda r: r.update(created_at=None), "created_at"),
    "metrics-empty": (lambda r: r.update(metrics={}), "metrics.UA"),
    "metrics-text": (lambda r: r.update(metrics="lots"), "metrics"),
    "metric-as-text": (lambda r: r["metrics"].update(UA="0.5"), "metrics.UA"),
    "lr-list": (lambda r: r["config"].update(lr=[0.1, 0.2]), "config.lr"),
    "epochs-garbage": (lambda r: r.update(epochs=[{"epoch": "one"}, 7]), "epochs"),
    "ps-list": (lambda r: r["metrics"].update(PS=[1, 2]), "metrics.PS"),
    "accs-short": (lambda r: r["metrics"].update(accs=[0.5]), "metrics.accs"),
    "attack-ragged": (lambda r: r["attack"].update(entropy=[0.1]), "attack"),
}


def with_id(text: str, experiment_id: str) -> str:
    return text.replace('"placeholder"', json.dumps(experiment_id))


# ---------------------------------------------------------------------------------------------
# One bad result.json never breaks a listing, a page or the CLI; it can be deleted


def test_unreadable_results_are_listed_with_the_reason_and_can_be_deleted(store, monkeypatch, capsys):
    good = store.save(full_result(), digits_weights())
    for name, (change, _) in BAD_RESULTS.items():
        plant(store, name, with_id(mutated(change), name))
    huge = mutated(lambda r: None).replace('"RT": 0.1', '"RT": ' + "9" * 5000)
    plant(store, "huge-int", with_id(huge, "huge-int"))
    plant(store, "nan-literal", with_id(mutated(lambda r: None).replace('"RT": 0.1', '"RT": NaN'), "nan-literal"))
    plant(store, "deep", "[" * 50_000 + "]" * 50_000)
    plant(store, "not-utf8", b"\xff\xfe\x00garbage")
    (store.root / "empty-folder").mkdir()

    assert [e["id"] for e in store.entries()] == [good.id]
    problems = store.problems
    assert set(problems) == {*BAD_RESULTS, "huge-int", "nan-literal", "deep", "not-utf8", "empty-folder"}
    for name, (_, field) in BAD_RESULTS.items():
        assert field in problems[name], (name, problems[name])
    assert "thousands of digits" in problems["huge-int"] and "NaN" in problems["nan-literal"]
    assert "deep" in problems["deep"]
    with pytest.raises(UnreadableExperimentError, match="mucomp delete lr-list"):
        store.load("lr-list")
    assert [e.id for e in store.list()] == [good.id]  # whole results too

    monkeypatch.setenv("MUCOMP_HOME", str(store.root.parent))
    assert cli.main(["list"]) == 0
    out = capsys.readouterr()
    assert good.id in out.out and "unreadable (15" in out.out and "ps-list" in out.out
    assert cli.main(["list", "--json"]) == 0
    assert [r["id"] for r in json.loads(capsys.readouterr().out)] == [good.id]
    assert cli.main(["show", "created-int"]) == 1
    assert "can't be read" in capsys.readouterr().err
    assert cli.main(["delete", *problems]) == 0  # the CLI deletes what it can't read
    assert store.ids() == [good.id] and store.entries()[0]["id"] == good.id and not store.problems


def test_a_session_deletes_an_unreadable_experiment_only_when_the_file_names_it(store):
    plant(store, "mine-bad", with_id(mutated(lambda r: r.update(created_at=None, owner="session-a")), "mine-bad"))
    plant(store, "other-bad", with_id(mutated(lambda r: r.update(created_at=None, owner="session-b")), "other-bad"))
    with pytest.raises(StoreError, match="mucomp delete other-bad"):
        store.delete("other-bad", owner="session-a")
    store.delete("mine-bad", owner="session-a")
    assert store.ids() == ["other-bad"]


@pytest.mark.parametrize(("change", "field"), [v for v in BAD_RESULTS.values() if "attack" not in v[1]])
def test_saving_an_invalid_result_is_refused_and_stores_nothing(store, change, field):
    result = full_result(created_at="2025-01-01T00:00:00+00:00")
    change(result)
    with pytest.raises(StoreError, match=field.split(".")[0]):
        store.save(result, digits_weights())
    assert store.ids() == [] and not [p for p in store.root.iterdir() if p.name.startswith(".tmp")]


def test_version_1_results_are_read_with_the_exact_score_moved_to_ps_exact(store):
    v1 = full_result(id="old-one", schema_version=1, created_at="2024-06-01T10:00:00+00:00")
    del v1["metrics"]["PS_exact"]
    v1["metrics"]["PS"] = 0.125
    plant(store, "old-one", json.dumps(v1))
    result = store.load("old-one").result
    assert result["schema_version"] == schema.SCHEMA_VERSION
    assert result["metrics"]["PS_exact"] == 0.125 and result["metrics"]["PS"] is None  # unknown: shown blank
    assert "worst_case" not in result["attack"] and result["attack"]["worst_case_exact"]["privacy_score"] == 0.5
    assert store.entries()[0]["metrics"]["PS"] is None


def test_unknown_keys_are_kept_but_known_ones_are_typed(store):
    saved = store.save(full_result(group="g1", config={**full_result()["config"], "my_param": [1, "x"]},
                                   metrics={**full_result()["metrics"], "my_metric": 0.5}), digits_weights())
    loaded = store.load(saved.id).result
    assert loaded["config"]["my_param"] == [1, "x"] and loaded["metrics"]["my_metric"] == 0.5
    assert loaded["group"] == schema.group_id(loaded["config"])  # derived from the config, never the label given
    with pytest.raises(StoreError, match="forget_class"):
        store.save(full_result(config={**full_result()["config"], "forget_class": 12}))


def test_the_index_is_repaired_from_the_folders(store):
    first = store.save(full_result(), digits_weights())
    second = store.save(full_result(method_label="Second"), digits_weights(1))
    index, both = store.root / ".index.sqlite3", {first.id, second.id}
    assert index.is_file() and {e["id"] for e in store.entries()} == both
    index.unlink()  # missing: rebuilt
    assert {e["id"] for e in store.entries()} == both
    index.write_bytes(b"this is not a database" * 100)  # damaged: rebuilt
    assert {e["id"] for e in store.entries()} == both
    path = store.root / second.id / "result.json"  # edited in place (stale row): re-read
    path.write_text(path.read_text().replace('"Second"', '"Edited"'))
    assert store.entry(second.id)["method_label"] == "Edited"
    plant(store, "written-by-hand", with_id(mutated(lambda r: None), "written-by-hand"))  # an older mucomp
    assert "written-by-hand" in {e["id"] for e in store.entries()}
    os.rename(store.root / first.id, store.root.parent / "moved-away")  # gone: dropped
    assert first.id not in {e["id"] for e in store.entries()}


def test_list_and_show_start_without_torch(store):
    saved = store.save(full_result(), digits_weights())
    code = ("import sys; from mucomp.cli import main; codes = [main(['list']), main(['show', sys.argv[1]])]; "
            "assert codes == [0, 0], codes; assert 'torch' not in sys.modules and 'pydantic' not in sys.modules")
    env = {**os.environ, "MUCOMP_HOME": str(store.root.parent)}
    done = subprocess.run([sys.executable, "-c", code, saved.id], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert saved.id in done.stdout


# ---------------------------------------------------------------------------------------------
# Imports can't plant references, duplicates, odd ids or weights that fail later


def archive_of(entries: dict[str, bytes | str], ids: list[str]) -> io.BytesIO:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("manifest.json", json.dumps({"format": "mucomp-experiments", "ids": ids}))
        for name, data in entries.items():
            archive.writestr(name, data)
    buffer.seek(0)
    return buffer


def stored_result(experiment_id: str, **extra) -> str:
    return json.dumps(full_result(id=experiment_id, schema_version=2, created_at="2025-01-01T00:00:00+00:00", **extra))


def weights_bytes(tensors: dict[str, torch.Tensor]) -> bytes:
    return save_safetensors({k: v.contiguous() for k, v in tensors.items()})


def reference_export(tmp_path, kind: str = "original") -> tuple[Path, str]:
    """A reference stored the way the runner stores it, exported: ``(archive path, id)``."""
    from mucomp.runner import reference_experiment_id

    source = ExperimentStore(tmp_path / f"source-{kind}")
    checkpoint = f"4d7f8638ba97/{kind}-s0"
    ref_id = reference_experiment_id(Scenario("digits", 3, 0), kind, checkpoint)
    config = {"dataset": "digits", "forget_class": 3, "seed": 0, "method": kind, "base": None, "checkpoint": checkpoint}
    source.save(full_result(id=ref_id, kind=kind, owner=None, config=config), digits_weights(7))
    path = tmp_path / f"{kind}.zip"
    source.export([ref_id], path)
    return path, ref_id


def test_an_archive_cannot_plant_a_reference(tmp_path, store):
    archive, ref_id = reference_export(tmp_path)
    with pytest.raises(StoreError, match="reference model.*--allow-references"):
        store.import_(archive)
    assert store.ids() == []


def test_allow_references_takes_only_a_reference_that_matches_its_weights_and_never_replaces_one(tmp_path, store):
    archive, ref_id = reference_export(tmp_path)
    with zipfile.ZipFile(archive) as z:
        result, weights = z.read(f"{ref_id}/result.json"), z.read(f"{ref_id}/model.safetensors")
    tampered = digits_weights(8)  # other weights under the recorded hash
    with pytest.raises(StoreError, match="hash mismatch"):
        store.import_(archive_of({f"{ref_id}/result.json": result, f"{ref_id}/model.safetensors": weights_bytes(tampered)},
                                 [ref_id]), allow_references=True)
    wrong_id = ref_id[:-6] + "000000"
    with pytest.raises(StoreError, match="not the id"):
        store.import_(archive_of({f"{wrong_id}/result.json": result.replace(ref_id.encode(), wrong_id.encode()),
                                  f"{wrong_id}/model.safetensors": weights}, [wrong_id]), allow_references=True)
    assert store.ids() == []
    assert store.import_(archive, allow_references=True) == [ref_id]
    # A second Original of the same scenario (another checkpoint) would shadow it: refused.
    from mucomp.runner import reference_experiment_id

    other = ExperimentStore(tmp_path / "other")
    checkpoint = "ffffffffffff/original-s0"
    other_id = reference_experiment_id(Scenario("digits", 3, 0), "original", checkpoint)
    other.save(full_result(id=other_id, kind="original", owner=None,
                           config={"dataset": "digits", "forget_class": 3, "seed": 0, "checkpoint": checkpoint}),
               digits_weights(9))
    other.export([other_id], tmp_path / "other.zip")
    with pytest.raises(ExperimentExistsError):
        store.import_(tmp_path / "other.zip", allow_references=True)
    assert store.import_(tmp_path / "other.zip", on_conflict="skip", allow_references=True) == []
    assert store.ids() == [ref_id]


def test_duplicate_entries_and_inexact_ids_are_refused(store):
    good = stored_result("abc")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive, pytest.warns(UserWarning):
        archive.writestr("manifest.json", json.dumps({"format": "mucomp-experiments", "ids": ["abc"]}))
        archive.writestr("abc/result.json", good)
        archive.writestr("abc/model.safetensors", weights_bytes(digits_weights()))
        archive.writestr("abc/result.json", stored_result("abc", method_label="the last one wins"))
    buffer.seek(0)
    with pytest.raises(StoreError, match="more than once"):
        store.import_(buffer)
    newline = archive_of({"abc\n/result.json": good, "abc\n/model.safetensors": weights_bytes(digits_weights())},
                         ["abc\n"])
    with pytest.raises(StoreError, match="unexpected entry"):
        store.import_(newline)
    assert store.ids() == []


@pytest.mark.parametrize(("weights", "message"), [
    ({"conv.weight": torch.zeros(2, 2)}, "do not fit the digits architecture"),
    ({**digits_weights(), "fc.weight": torch.zeros(3, 128)}, r"1 shape differs: fc\.weight\)"),
    ({**digits_weights(), "fc.bias": torch.full((C,), float("nan"))}, "NaN or infinite weights at fc.bias"),
    ({**digits_weights(), "fc.bias": torch.zeros(C, dtype=torch.int64)}, "unexpected value types at fc.bias"),
    (None, "no model.safetensors"),
])
def test_imported_weights_must_fit_the_scenario_architecture(store, weights, message):
    entries = {"abc/result.json": stored_result("abc")}
    if weights is not None:
        entries["abc/model.safetensors"] = weights_bytes(weights)
    with pytest.raises(StoreError, match=message):
        store.import_(archive_of(entries, ["abc"]))
    assert store.ids() == []


# ---------------------------------------------------------------------------------------------
# Uploads


def torch_bytes(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def test_a_zip_bomb_is_measured_and_refused_before_torch_reads_it(monkeypatch):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("archive/data.pkl", b"\x80\x02}q\x00.")
        archive.writestr("archive/data/0", b"\0" * (8 * 1024**2))  # 8 MB of zeros: a few kB packed
    bomb = buffer.getvalue()
    assert len(bomb) < 64 * 1024
    monkeypatch.setattr("mucomp.uploads.read_weights", lambda *a: pytest.fail("torch.load saw the bomb"))
    with pytest.raises(UploadError, match="unpacks to more than 1 MB"):
        read_state_dict("bomb.pth", bomb, max_bytes=1024**2)


@pytest.mark.parametrize("dtype", [torch.int64, torch.bool, torch.uint8, torch.complex64])
def test_non_floating_weights_are_refused_naming_the_keys(dtype):
    state = digits_weights()
    state["fc.weight"] = state["fc.weight"].to(dtype)
    with pytest.raises(UploadError, match=r"fc\.weight.*refused"):
        check_upload("model.pth", torch_bytes(state), DIGITS)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_other_float_precisions_are_converted_and_said_so(dtype):
    state = {k: v.to(dtype) for k, v in digits_weights().items()}
    checked = check_upload("model.pth", torch_bytes(state), DIGITS)
    assert str(dtype).removeprefix("torch.") in checked.notes[0] and "float32" in checked.notes[0]
    assert all(p.dtype == torch.float32 for p in checked.model.parameters())


def test_refusals_are_in_our_words_never_torch_advice():
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo owned",))

    for payload in ({"x": Evil()}, {"x": os.system}, {"x": zipfile.ZipFile}):
        with pytest.raises(UploadError) as info:
            read_state_dict("evil.pth", torch_bytes(payload))
        message = str(info.value)
        assert "weights_only" not in message and "\n" not in message and "Python objects" in message, message
    assert "system" in message or "ZipFile" in message


# ---------------------------------------------------------------------------------------------
# Server


def test_xsrf_and_cors_are_on_by_default_and_only_the_docker_space_turns_xsrf_off():
    config = (ROOT / ".streamlit" / "config.toml").read_text()
    for option in ("enableXsrfProtection", "enableCORS"):  # absent means Streamlit's default: on
        assert not re.search(rf"^\s*{option}\s*=\s*false", config, re.M), option
    docker = (ROOT / "Dockerfile").read_text()
    assert "STREAMLIT_SERVER_ENABLE_XSRF_PROTECTION=false" in docker
    assert "--timeout=30s" in docker and "timeout=25" in docker


def test_user_text_is_shown_literally_in_markdown():
    for attack in ("![x](https://evil.example/pixel.png)", "[click](javascript:alert(1))", ":red[big] :material/home:",
                   "**bold** `code` $x^2$ <img src=x>", "line\nbreak # heading"):
        shown = md(attack)
        assert "\n" not in shown
        for special in "[]*`$<":
            assert all(shown[i - 1] == "\\" for i, c in enumerate(shown) if c == special), (attack, shown)
    assert md("digits_cnn: 10 missing keys") == "digits_cnn: 10 missing keys"  # ordinary text stays readable
    assert md("# title").startswith("\\#") and md("1. item").startswith("1\\.")


def test_an_imported_label_is_escaped_in_the_sidebar_and_bad_results_do_not_break_screen(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from mucomp.ui import session

    home = tmp_path / "home"
    store = ExperimentStore(home / "experiments")
    label = "![tracker](https://evil.example/pixel.png)"
    imported = full_result(method_label=label)
    imported["config"]["method"] = "their_method"  # a plugin's: its stored label is what the pages show
    chosen = store.save(imported, digits_weights()).id
    plant(store, "broken-one", with_id(mutated(lambda r: r["metrics"].update(PS=[1])), "broken-one"))
    monkeypatch.setenv("MUCOMP_HOME", str(home))

    class NoQueue:  # the page needs no worker processes here
        def jobs(self):
            return []

    monkeypatch.setattr(session, "get_queue", lambda: NoQueue())
    at = AppTest.from_file(str(ROOT / "Home.py"), default_timeout=60)
    at.run()
    at.session_state["mucomp_scenario"] = Scenario("digits", 3, 0)
    at.session_state["mucomp_model_b"] = chosen
    at.switch_page("pages/2_Screen.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("broken-one" in w.value.replace("\\", "") and "mucomp delete" in w.value for w in at.warning)
    captions = [c.value for c in at.sidebar.caption]
    assert any("pixel" in c for c in captions) and not any("![" in c for c in captions), captions


# ---------------------------------------------------------------------------------------------
# Fuzz: nothing but the project's own errors escapes the readers of untrusted bytes

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
VALID = full_result(id="fuzzed", schema_version=2, created_at="2025-01-01T00:00:00+00:00")
PATHS = [("created_at",), ("kind",), ("id",), ("config",), ("config", "lr"), ("config", "dataset"),
         ("config", "forget_class"), ("config", "params"), ("metrics",), ("metrics", "UA"), ("metrics", "PS"),
         ("metrics", "accs"), ("metrics", "cost"), ("attack",), ("attack", "entropy"), ("epochs",),
         ("embedding", "x"), ("cka",), ("timings",), ("schema_version",)]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shape=json_values, path=st.sampled_from(PATHS), whole=st.booleans())
def test_fuzz_the_result_reader_raises_only_its_own_error(shape, path, whole):
    if whole:
        candidate = shape
    else:
        candidate = copy.deepcopy(VALID)
        target = candidate
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = shape
    try:
        text = json.dumps(candidate)
    except ValueError:
        return
    with contextlib.suppress(schema.ResultSchemaError):
        schema.parse_result_bytes(text.encode())


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=512), prefix=st.sampled_from([b"", b"PK\x03\x04", b"\x80\x02", b"\x08\x00\x00\x00\x00\x00\x00\x00{"]),
       name=st.sampled_from(["m.pth", "m.pt", "m.safetensors"]))
def test_fuzz_the_upload_reader_raises_only_its_own_error(data, prefix, name):
    with contextlib.suppress(UploadError):
        read_state_dict(name, prefix + data)
