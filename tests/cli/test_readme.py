"""The README cannot drift: its blocks marked ``sh test`` and ``python test``
run, in order, in an empty directory with the virtualenv's ``bin`` first on
PATH and ``RUNTRACK_DATABASE_URL`` pointing at a SQLite file there; its
command and configuration tables name every command and every setting."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from runtrack.cli import app
from runtrack.config import Settings

README = Path(__file__).resolve().parents[2] / "README.md"
BLOCK = re.compile(r"^```(sh|python) test\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def marked_blocks() -> list[tuple[str, str, int]]:
    """(language, code, line number) of each block marked for testing."""
    text = README.read_text()
    return [
        (m.group(1), m.group(2), text.count("\n", 0, m.start()) + 1) for m in BLOCK.finditer(text)
    ]


def run_block(
    language: str, code: str, where: Path, number: int
) -> subprocess.CompletedProcess[str]:
    env = dict(
        os.environ,
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        RUNTRACK_DATABASE_URL=f"sqlite:///{where}/runtrack.db",
        COLUMNS="120",
        # dlt keeps each pipeline's state (with its destination's path) under
        # its data directory: one per test run, not the user's ~/.dlt.
        DLT_DATA_DIR=str(where / ".dlt"),
    )
    if language == "sh":
        command = ["bash", "-euo", "pipefail", "-c", code]
    else:
        script = where / f"readme_block_{number}.py"
        script.write_text(code)
        command = [sys.executable, str(script)]
    return subprocess.run(command, cwd=where, env=env, capture_output=True, text=True, timeout=180)


def test_the_readme_has_marked_blocks_of_both_kinds() -> None:
    languages = [language for language, _, _ in marked_blocks()]
    assert languages.count("sh") >= 2 and languages.count("python") >= 5


def test_the_readme_blocks_run(tmp_path: Path) -> None:
    for number, (language, code, line) in enumerate(marked_blocks(), 1):
        done = run_block(language, code, tmp_path, number)
        assert done.returncode == 0, (
            f"README.md block at line {line} ({language}) exited {done.returncode}\n"
            f"--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
        )


def test_the_command_table_names_every_command() -> None:
    text = README.read_text()
    table = text[text.index("## The command line") : text.index("## HTTP API")]
    commands = {command.name for command in app.registered_commands}
    assert commands, "the CLI registers its commands"
    for name in commands:
        assert re.search(rf"\| `{name}\b", table) or f"/ `{name} " in table, name


def test_the_configuration_table_names_every_setting() -> None:
    text = README.read_text()
    table = text[text.index("## Configuration") : text.index("## Many workers")]
    for name in Settings.__dataclass_fields__:
        assert f"`RUNTRACK_{name.upper()}`" in table, name
