import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def quick_start_lines() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [line for line in block.splitlines() if line.strip()]


def test_quick_start_has_exactly_two_command_lines():
    lines = quick_start_lines()
    assert len(lines) == 2
    assert lines[0].endswith("streamlit run Home.py")
    assert "pytest" in lines[1] and ".[test]" in lines[1]


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    test_line = quick_start_lines()[1]
    command = test_line.split(". .venv/bin/activate && ", 1)[1]
    assert command in ci


def custom_method_section() -> str:
    text = (ROOT / "README.md").read_text()
    return text.split("## Add your own method", 1)[1].split("\n## ", 1)[0]


def test_the_custom_method_commands_run_the_methods_their_files_register(tmp_path, monkeypatch):
    """Each `MUCOMP_PLUGINS=FILE mucomp run ... --method NAME` line of "Add your own method" names a
    method that FILE registers (the snippet saved as `my_method.py`, as the README says), through
    the CLI's own argument path; the snippet's method then runs one epoch."""
    import shlex

    from mucomp.cli import build_parser
    from mucomp.cli.runs import _config_from_args
    from mucomp.data import Scenario
    from mucomp.methods import refresh_plugins, run_unlearning
    from mucomp.models import seeded_model

    section = custom_method_section()
    (tmp_path / "my_method.py").write_text(re.search(r"```python\n(.*?)```", section, re.S).group(1))
    commands = re.findall(r"^MUCOMP_PLUGINS=(\S+) mucomp (run .*)$", section, re.M)
    ran = []
    try:
        for plugin, args in commands:
            path = tmp_path / plugin if (tmp_path / plugin).exists() else ROOT / plugin
            monkeypatch.setenv("MUCOMP_PLUGINS", str(path))
            refresh_plugins()
            config, _, _, _ = _config_from_args(build_parser().parse_args(shlex.split(args)))
            ran.append((plugin, config.method))
        assert ran == [("my_method.py", "my_method"), ("examples/my_method.py", "neggrad_until")]
        monkeypatch.setenv("MUCOMP_PLUGINS", str(tmp_path / "my_method.py"))
        scenario = Scenario("digits", 3, 0)
        result = run_unlearning("my_method", seeded_model("digits_cnn", 10, 0), scenario, {"epochs": 1})
        assert result.status == "completed" and result.steps > 0, result.message
    finally:
        monkeypatch.delenv("MUCOMP_PLUGINS", raising=False)
        refresh_plugins()
