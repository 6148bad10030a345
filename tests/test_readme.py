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
