"""The snapshot and checkpoint commands mirror the Python API, with keys from files or prompts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from engramdb import MemoryEngine
from engramdb.cli.app import app

runner = CliRunner()


def run(*args: str, input: str | None = None, code: int = 0) -> str:
    """The command's output (stdout and stderr, prompts included)."""
    result = runner.invoke(app, list(args), input=input)
    assert result.exit_code == code, result.output
    return result.output


def run_json(*args: str, input: str | None = None) -> Any:
    """The command's stdout, parsed (prompts go to stderr)."""
    result = runner.invoke(app, [*args, "--json"], input=input)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture
def store(tmp_path: Path) -> Path:
    path = tmp_path / "store"
    with MemoryEngine.open(path, embedder="hashing") as eng:
        eng.add_many([f"alice note {i} about tea" for i in range(7)], agent="bot")
        eng.add("zed note", agent="zed")
    return path


def opts(store: Path) -> list[str]:
    return ["--store", str(store), "--embedder", "hashing"]


def test_export_import_round_trip(store: Path, tmp_path: Path) -> None:
    snap = tmp_path / "bot.egm"
    out = json.loads(
        run("export", str(snap), "-a", "bot", "--vectors", "int8", "--json", *opts(store))
    )
    assert (out["memories"], out["vectors"], out["encrypted"]) == (7, "int8", False)
    target = tmp_path / "target"
    report = run_json("import", str(snap), *opts(target))
    assert (report["agent"], report["added"], report["mode"]) == ("bot", 7, "fail")
    msg = run("import", str(snap), *opts(target), code=2)
    assert "already has 7 memories" in msg
    assert "0 added, 7 updated" in run("import", str(snap), "--mode", "replace", *opts(target))
    assert "(a copy of 'bot')" in run("import", str(snap), "-a", "bot2", *opts(target))
    with MemoryEngine.open(target, embedder="hashing") as eng:
        assert eng.agents() == ["bot", "bot2"]
    assert "exists; pass --force" in run("export", str(snap), "-a", "bot", *opts(store), code=2)
    run("export", str(snap), "-a", "bot", "--force", *opts(store))


@pytest.mark.slow  # scrypt, twice
def test_passphrase_prompts(store: Path, tmp_path: Path) -> None:
    snap = tmp_path / "sealed.egm"
    out = run("export", str(snap), "-a", "bot", "--passphrase", *opts(store), input="pw\npw\n")
    assert "encrypted" in out and "pw" not in out.replace("Passphrase", "")
    info = run("snapshot-info", str(snap))
    assert "sealed" in info and "bot" not in info
    info = run_json("snapshot-info", str(snap), "--passphrase", input="pw\n")
    assert info["agent"] == "bot" and info["counts"]["total"] == 7 and not info["sealed"]
    target = tmp_path / "target"
    assert "7 added" in run("import", str(snap), *opts(target), input="pw\n")  # asked unprompted
    msg = run("import", str(snap), "--mode", "merge", *opts(target), input="nope\n", code=6)
    assert "wrong key" in msg


def test_key_files(store: Path, tmp_path: Path) -> None:
    raw, hexed, bad = tmp_path / "raw.key", tmp_path / "hex.key", tmp_path / "bad.key"
    raw.write_bytes(bytes(range(32)))
    hexed.write_text(bytes(range(32)).hex() + "\n")
    bad.write_text("too short")
    snap = tmp_path / "sealed.egm"
    run("export", str(snap), "-a", "bot", "--key-file", str(raw), *opts(store))
    assert "--key-file" in run("import", str(snap), *opts(tmp_path / "t1"), code=6)
    assert "7 added" in run("import", str(snap), "--key-file", str(hexed), *opts(tmp_path / "t2"))
    msg = run("import", str(snap), "--key-file", str(bad), *opts(tmp_path / "t3"), code=2)
    assert "32 raw bytes or 64 hex" in msg
    msg = run("export", str(snap), "-a", "bot", "--key-file", str(raw), "--passphrase", "-f",
              *opts(store), code=2)  # fmt: skip
    assert "not both" in msg


def test_snapshot_info_and_damage(store: Path, tmp_path: Path) -> None:
    snap = tmp_path / "bot.egm"
    run("export", str(snap), "-a", "bot", *opts(store))
    text = run("snapshot-info", str(snap), "--verify")
    for needle in ("bot", "hashing-256", "float32", "every hash", "part vectors"):
        assert needle in text
    data = bytearray(snap.read_bytes())
    data[-100] ^= 0xFF
    snap.write_bytes(bytes(data))
    assert "corrupted" in run("snapshot-info", str(snap), "--verify", code=6)
    assert "corrupted" in run("import", str(snap), *opts(tmp_path / "t"), code=6)


def test_other_embedder_is_refused(store: Path, tmp_path: Path) -> None:
    snap = tmp_path / "bot.egm"
    run("export", str(snap), "-a", "bot", *opts(store))
    other = ["--store", str(tmp_path / "small"), "--embedder", "hashing-32"]
    assert "--reembed" in run("import", str(snap), *other, code=5)
    assert "7 added" in run("import", str(snap), "--reembed", *other)


def test_checkpoint_commands(store: Path) -> None:
    assert "7 memories" in run("checkpoint", "v1", "-a", "bot", *opts(store))
    with MemoryEngine.open(store, embedder="hashing") as eng:
        eng.add("after the checkpoint", agent="bot")
    listed = run_json("checkpoints", "-a", "bot", *opts(store))
    assert [(c["name"], c["memories"]) for c in listed] == [("v1", 7)]
    assert "1 fewer" in run("rollback", "v1", "-a", "bot", *opts(store))
    run("checkpoint-delete", "v1", "-a", "bot", *opts(store))
    assert "no checkpoint 'v1'" in run("rollback", "v1", "-a", "bot", *opts(store), code=3)
