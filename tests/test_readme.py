"""The README's code runs as written: every ``python`` block, in order, in a fresh home,
and its command-line block, command by command, through the CLI."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)


def python_blocks() -> list[str]:
    return BLOCK.findall(README.read_text())


def test_the_readme_has_python_examples() -> None:
    assert len(python_blocks()) >= 4


@pytest.mark.model
@pytest.mark.slow
def test_readme_python_blocks_run_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for number, block in enumerate(python_blocks(), start=1):
        code = compile(block, f"README.md python block {number}", "exec")
        exec(code, {"__name__": f"readme_block_{number}"})
    assert (tmp_path / "memory").is_dir()
    assert (tmp_path / "assistant.engram").is_file()


CLI_BLOCK = re.compile(r"```bash\n(.*?)```", re.DOTALL)


def cli_blocks() -> list[list[list[str]]]:
    """The README's bash blocks that are all ``engramdb`` commands, as argument lists."""
    blocks = []
    for block in CLI_BLOCK.findall(README.read_text()):
        lines = [ln for ln in block.splitlines() if ln.strip() and not ln.startswith("#")]
        if lines and all(ln.startswith("engramdb ") for ln in lines):
            blocks.append([shlex.split(ln, comments=True)[1:] for ln in lines])
    return blocks


SERVERS = frozenset({"serve", "mcp"})
"""Commands that run until stopped: the server block is checked by ``--help``, not run."""


def server_blocks() -> list[list[list[str]]]:
    return [b for b in cli_blocks() if any(args[0] in SERVERS for args in b)]


def command_blocks() -> list[list[list[str]]]:
    return [b for b in cli_blocks() if not any(args[0] in SERVERS for args in b)]


def test_the_readme_has_a_cli_example() -> None:
    assert len(command_blocks()) == 1
    commands = {args[0] for args in command_blocks()[0]}
    assert {"add", "recall", "stats", "consolidate", "export", "checkpoint"} <= commands


def test_the_readme_server_commands_exist() -> None:
    from typer.testing import CliRunner

    from engramdb.cli.app import app

    runner = CliRunner()
    (block,) = server_blocks()
    for args in block:
        command = args[: 2 if args[0] == "keys" else 1]
        result = runner.invoke(app, [*command, "--help"])
        assert result.exit_code == 0, f"engramdb {shlex.join(command)} --help: {result.output}"
        for flag in (a for a in args if a.startswith("--")):
            assert flag in result.output, f"engramdb {shlex.join(command)} has no {flag}"


@pytest.mark.model
@pytest.mark.slow
def test_readme_cli_block_runs_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from engramdb.cli.app import app

    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    for args in command_blocks()[0]:
        result = runner.invoke(app, args)
        assert result.exit_code == 0, f"engramdb {shlex.join(args)}: {result.output}"
    assert (tmp_path / "home" / "default" / "engramdb.json").is_file()
    assert (tmp_path / "assistant.engram").is_file()
