"""The server commands, in-process through a throwaway Typer app."""

from __future__ import annotations

from pathlib import Path

import typer
from typer.testing import CliRunner

from engramdb import MemoryEngine
from engramdb.server.cli import register


def _app() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


def test_serve_refuses_a_public_address_without_keys(tmp_path: Path) -> None:
    # Refused before anything binds; 192.0.2.10 is a documentation address (RFC 5737).
    result = CliRunner().invoke(
        _app(),
        ["serve", "--store", str(tmp_path / "s"), "--host", "192.0.2.10", "--embedder", "hashing"],
    )
    assert result.exit_code == 2
    assert "without keys" in result.output and "--keys" in result.output
    assert not (tmp_path / "s").exists()  # refused before the store was touched


def test_serve_and_mcp_on_a_store_another_writer_holds_exit_4(tmp_path: Path) -> None:
    store = tmp_path / "s"
    with MemoryEngine.open(store, embedder="hashing"):
        for args in (
            ["serve", "--store", str(store), "--embedder", "hashing", "--port", "1"],
            ["mcp", "--store", str(store), "--agent", "a", "--embedder", "hashing"],
        ):
            result = CliRunner().invoke(_app(), args)
            assert result.exit_code == 4, result.output
            assert "open for writing in another process" in result.stderr
            assert result.stdout == ""  # stdio stays clean: the message is on stderr


def test_serve_with_a_broken_keys_file_exits_2(tmp_path: Path) -> None:
    keys = tmp_path / "keys.toml"
    keys.write_text("[[keys]]\nname = 1\n")
    result = CliRunner().invoke(
        _app(), ["serve", "--store", str(tmp_path / "s"), "--keys", str(keys)]
    )
    assert result.exit_code == 2 and "keys.toml" in result.stderr


def test_mcp_refuses_a_bad_agent_name_before_opening(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        _app(), ["mcp", "--store", str(tmp_path / "s"), "--agent", "../x", "-e", "hashing"]
    )
    assert result.exit_code == 2 and "agent name '../x'" in result.stderr
    assert not (tmp_path / "s").exists()


def test_server_config_refuses_nonsense() -> None:
    import pytest

    from engramdb.errors import ValidationError
    from engramdb.server import ServerConfig

    with pytest.raises(ValidationError, match="heartbeat 0"):
        ServerConfig(heartbeat=0)
    with pytest.raises(ValidationError, match="rate -1"):
        ServerConfig(rate=-1)
