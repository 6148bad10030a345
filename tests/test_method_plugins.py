"""The custom-method API: plugin files (MUCOMP_PLUGINS), entry points, the CLI listing."""

import copy
import json
import textwrap
from pathlib import Path

import pytest
import torch

from mucomp.cli import main as cli_main
from mucomp.evaluation import evaluate_scenario
from mucomp.methods import (
    Param,
    available_methods,
    get_method,
    plugin_errors,
    refresh_plugins,
    register,
    run_unlearning,
    unregister,
)
from mucomp.metrics import accuracy_metrics

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "my_method.py"


@pytest.fixture(autouse=True)
def no_plugins_outside_the_test(monkeypatch):
    monkeypatch.delenv("MUCOMP_PLUGINS", raising=False)
    yield
    monkeypatch.delenv("MUCOMP_PLUGINS", raising=False)
    refresh_plugins()


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    return path


def test_the_example_plugin_runs_through_the_runner(monkeypatch, digits_scenario, digits_references):
    monkeypatch.setenv("MUCOMP_PLUGINS", str(EXAMPLE))
    info = available_methods()["neggrad_until"]
    assert info.source == str(EXAMPLE) and not info.builtin
    assert [p.name for p in info.own_params] == ["forget_weight", "clip_grad_norm"]
    model = copy.deepcopy(digits_references[0].model)
    result = run_unlearning("neggrad_until", model, digits_scenario)
    assert result.status == "completed", result.message
    assert len(result.epochs) == result.hyper["epochs"] == 3
    evals = evaluate_scenario(model, digits_scenario, layers=())
    metrics = accuracy_metrics(evals["train"], evals["test"], 3)
    assert metrics["UA"] <= 0.1 and metrics["TRA"] >= 0.9


def test_plugins_follow_the_environment(monkeypatch):
    monkeypatch.setenv("MUCOMP_PLUGINS", str(EXAMPLE))
    assert "neggrad_until" in available_methods()
    monkeypatch.delenv("MUCOMP_PLUGINS")
    assert "neggrad_until" not in available_methods()


def test_a_folder_of_plugins_and_a_broken_one(monkeypatch, tmp_path, digits_scenario, digits_references):
    write(tmp_path / "good.py", """
        import torch.nn.functional as F
        from mucomp.methods import Param, register

        @register("tiny_ft", label="Tiny FT", defaults={"epochs": 1, "lr": 0.01, "batch_size": 64, "scale": 1.0},
                  params=[Param("scale", "float", min=0, max=2)])
        def tiny_ft(ctx):
            for _ in ctx.epochs():
                for x, y in ctx.retain_batches():
                    ctx.step(ctx.hyper["scale"] * F.cross_entropy(ctx.model(x), y))
    """)
    write(tmp_path / "broken.py", """
        from mucomp.methods import register

        @register("half_done")
        def half_done(ctx):
            pass

        def broken(:
    """)
    write(tmp_path / "clash.py", """
        from mucomp.methods import register

        @register("ga")
        def my_ga(ctx):
            pass
    """)
    write(tmp_path / "empty.py", "x = 1\n")
    write(tmp_path / "_private.py", "raise RuntimeError('never imported')\n")
    missing = tmp_path / "missing.py"
    monkeypatch.setenv("MUCOMP_PLUGINS", f"{tmp_path}:{missing}")
    methods = available_methods()
    assert "tiny_ft" in methods and "half_done" not in methods
    assert methods["ga"].builtin
    errors = {Path(e.source).name: e.message for e in plugin_errors()}
    assert set(errors) == {"broken.py", "clash.py", "empty.py", "missing.py"}
    assert errors["broken.py"].startswith("SyntaxError") and "line 8" in errors["broken.py"]
    assert "already taken by builtin" in errors["clash.py"]
    assert "registered no method" in errors["empty.py"]
    assert "does not exist" in errors["missing.py"]
    result = run_unlearning("tiny_ft", copy.deepcopy(digits_references[0].model), digits_scenario, {"scale": "0.5"})
    assert result.status == "completed" and result.hyper["scale"] == 0.5


def test_a_method_that_raises_fails_without_raising(monkeypatch, tmp_path, digits_scenario, digits_references):
    write(tmp_path / "buggy.py", """
        from mucomp.methods import register

        @register("buggy", defaults={"epochs": 1, "lr": 0.1, "batch_size": 8})
        def buggy(ctx):
            for _ in ctx.epochs():
                raise KeyError("oops")
    """)
    monkeypatch.setenv("MUCOMP_PLUGINS", str(tmp_path / "buggy.py"))
    result = run_unlearning("buggy", copy.deepcopy(digits_references[0].model), digits_scenario)
    assert result.status == "failed"
    assert "KeyError" in result.message and "oops" in result.message and "buggy.py" in result.traceback


def test_an_entry_point_plugin(monkeypatch, tmp_path, digits_scenario, digits_references):
    write(tmp_path / "mucomp_ep_demo.py", """
        import torch.nn.functional as F
        from mucomp.methods import register

        @register("ep_demo", label="Entry-point demo", defaults={"epochs": 1, "lr": 0.01, "batch_size": 64})
        def ep_demo(ctx):
            for _ in ctx.epochs():
                for x, y in ctx.retain_batches():
                    ctx.step(F.cross_entropy(ctx.model(x), y))
    """)
    dist = tmp_path / "mucomp_ep_demo-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: mucomp-ep-demo\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[mucomp.methods]\nep_demo = mucomp_ep_demo\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        refresh_plugins()
        info = available_methods()["ep_demo"]
        assert info.source == "entry point ep_demo (mucomp_ep_demo)"
        result = run_unlearning("ep_demo", copy.deepcopy(digits_references[0].model), digits_scenario)
        assert result.status == "completed" and len(result.epochs) == 1
        refresh_plugins()  # the module is imported once; its method stays and no error appears
        assert "ep_demo" in available_methods() and not plugin_errors()
    finally:
        unregister("ep_demo")


def test_register_checks_its_arguments():
    def fn(ctx):
        pass

    with pytest.raises(ValueError, match="method name 'Bad Name'"):
        register("Bad Name")(fn)
    with pytest.raises(ValueError, match="defaults for unknown data set 'mnist'"):
        register("x1", defaults={"mnist": {"lr": 0.1}})(fn)
    with pytest.raises(ValueError, match="defaults name undeclared parameters \\['beta'\\]"):
        register("x2", defaults={"beta": 1.0})(fn)
    with pytest.raises(ValueError, match="default on \\*: lr must be a number"):
        register("x3", defaults={"lr": 0})(fn)
    with pytest.raises(ValueError, match="give its choices"):
        Param("mode", "choice")
    assert not {"x1", "x2", "x3"} & set(available_methods())


def test_choice_and_bool_params():
    mode = Param("mode", "choice", choices=("soft", "hard"), default="soft")
    flag = Param("flag", "bool", default=False)
    assert mode.validate("hard") == "hard" and flag.validate("true") is True and flag.validate(False) is False
    with pytest.raises(ValueError, match="mode must be one of 'soft', 'hard', got 'medium'"):
        mode.validate("medium")
    with pytest.raises(ValueError, match="flag must be true or false"):
        flag.validate(3)


def test_missing_defaults_must_be_set(monkeypatch):
    @register("needs_lr", defaults={"epochs": 1, "batch_size": 8})
    def needs_lr(ctx):
        pass

    try:
        with pytest.raises(ValueError, match=r"no default for lr on digits; set lr \(a number in \(0, 1e\+06\]\)"):
            get_method("needs_lr").resolve("digits")
        assert get_method("needs_lr").resolve("digits", {"lr": 0.1})["lr"] == 0.1
    finally:
        unregister("needs_lr")
    with pytest.raises(ValueError, match="built-in"):
        unregister("ft")


def test_cli_lists_methods_with_defaults(monkeypatch, capsys, tmp_path):
    assert cli_main(["methods", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    names = [m["name"] for m in payload["methods"]]
    assert names[:12] == ["ft", "ga", "rl", "scrub", "salun", "salun_comparator", "neggrad_plus", "l1_sparse", "ssd",
                          "bad_teacher", "unsir", "retrain"]
    ga = payload["methods"][1]
    assert ga["defaults"]["clip_grad_norm"] == 0.025 and ga["source"] == "builtin"
    assert {p["name"] for p in ga["params"]} == {"epochs", "lr", "batch_size", "clip_grad_norm", "augment"}
    assert payload["plugin_errors"] == []

    write(tmp_path / "bad.py", "raise ImportError('no such thing')\n")
    monkeypatch.setenv("MUCOMP_PLUGINS", f"{EXAMPLE}:{tmp_path / 'bad.py'}")
    assert cli_main(["methods", "--dataset", "cifar10"]) == 0
    captured = capsys.readouterr()
    assert "neggrad_until" in captured.out and "forget_weight" in captured.out
    assert "  lr                   0.001" in captured.out  # SalUn: the comparator's class-wise CIFAR-10 lr
    assert "bad.py: ImportError: no such thing" in captured.err


def test_training_mask_keeps_weights_despite_weight_decay():
    from mucomp.training import Stepper, sgd

    layer = torch.nn.Linear(4, 3)
    before = {k: v.clone() for k, v in layer.state_dict().items()}
    mask = {"weight": torch.zeros(3, 4, dtype=torch.bool), "bias": torch.tensor([True, False, False])}
    stepper = Stepper(layer, sgd(layer, 0.5), grad_mask=mask)
    for _ in range(3):
        stepper.step(layer(torch.ones(2, 4)).pow(2).sum())
    assert torch.equal(layer.weight, before["weight"])
    assert torch.equal(layer.bias[1:], before["bias"][1:]) and not torch.equal(layer.bias[0], before["bias"][0])


def test_the_readme_example_is_a_working_plugin(monkeypatch, tmp_path, digits_scenario, digits_references):
    import re

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme.split("## Add your own method", 1)[1].split("\n## ", 1)[0]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.setenv("MUCOMP_PLUGINS", str(write(tmp_path / "readme_method.py", code)))
    assert not plugin_errors()
    result = run_unlearning("my_method", copy.deepcopy(digits_references[0].model), digits_scenario, {"epochs": 1})
    assert result.status == "completed" and result.steps > 0
