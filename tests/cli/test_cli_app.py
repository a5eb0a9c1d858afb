"""The command line as a new user meets it: quick to start, the store's own embedder,
errors in flags and commands with stable exit codes, filters, help and output that fit."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner, Result

from engramdb import MemoryEngine
from engramdb.cli import errors as cli_errors_module
from engramdb.cli.app import app
from engramdb.cli.common import KINDS
from engramdb.cli.errors import EXIT_CODES, cli_message, exit_code
from engramdb.errors import EngramError, SnapshotIntegrityError, SnapshotKeyError

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "geoopt", "sentence_transformers", "transformers", "engramdb.hyperbolic.ball")
runner = CliRunner()

PROBE = """
import json, runpy, sys
sys.argv = ["engramdb", *json.loads(sys.argv[1])]
code = 0
try:
    runpy.run_module("engramdb", run_name="__main__")
except SystemExit as exc:
    code = exc.code or 0
heavy = [m for m in %r if m in sys.modules]
print(json.dumps({"code": code, "heavy": heavy}))
"""


def run_module(*args: str, home: Path) -> dict[str, object]:
    """``python -m engramdb ARGS`` in a fresh process: its exit code and heavy imports."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ENGRAMDB_HOME": str(home)}
    out = subprocess.run(
        [sys.executable, "-c", PROBE % (HEAVY,), json.dumps(list(args))],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=120,
    )
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    result["stdout"] = out.stdout
    return result


def cli(*args: str, code: int = 0) -> Result:
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, result.output
    return result


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """A store built with hashing-64 (not the CLI's default embedder for a new store)."""
    path = tmp_path / "store"
    t0 = datetime(2024, 5, 1, tzinfo=UTC)
    with MemoryEngine.open(path, embedder="hashing-64") as eng:
        eng.add("Alice moved to Lisbon", agent="bot", session="s1", created_at=t0)
        eng.add("Alice likes jazz", agent="bot", session="s2", metadata={"topic": "music"},
                created_at=t0 + timedelta(days=10))  # fmt: skip
        eng.add("Answer in French", agent="bot", kind="procedural", created_at=t0)
    return path


@pytest.mark.slow
def test_help_and_stats_import_no_model_and_no_hyperbolic_maths(
    store: Path, tmp_path: Path
) -> None:
    helped = run_module("--help", home=tmp_path)
    assert helped["code"] == 0 and "recall" in str(helped["stdout"])
    assert helped["heavy"] == []
    stats = run_module("stats", "--store", str(store), home=tmp_path)
    assert stats["code"] == 0 and "bot" in str(stats["stdout"])
    assert stats["heavy"] == []


def test_version() -> None:
    from engramdb import __version__

    assert cli("--version").stdout.strip() == f"engramdb {__version__}"


def test_commands_use_the_stores_own_embedder(store: Path) -> None:
    out = cli("recall", "Where does Alice live?", "-a", "bot", "-s", str(store), "--json")
    assert json.loads(out.stdout)[0]["text"] == "Alice moved to Lisbon"
    stats = json.loads(cli("stats", "-s", str(store), "--json").stdout)
    assert stats["embedder"] == "hashing-64" and stats["agents"]["bot"]["active"] == 3
    assert "checkpoint 'v1'" in cli("checkpoint", "v1", "-a", "bot", "-s", str(store)).stdout


def test_commands_that_embed_nothing_never_load_the_model(store: Path) -> None:
    meta_file = store / "engramdb.json"
    meta = json.loads(meta_file.read_text())
    meta["embedder"]["name"] = "a-model-that-is-gone"  # say, a local path since moved
    meta_file.write_text(json.dumps(meta))
    stats = json.loads(cli("stats", "-s", str(store), "--json").stdout)
    assert stats["embedder"] == "a-model-that-is-gone" and stats["agents"]["bot"]["total"] == 3
    cli("checkpoint", "v1", "-a", "bot", "-s", str(store))
    result = cli("recall", "x", "-a", "bot", "-s", str(store), code=7)
    assert "a-model-that-is-gone" in result.stderr and "-e DIR" in result.stderr


def test_another_embedder_is_refused_in_cli_terms(store: Path) -> None:
    result = cli("recall", "x", "-a", "bot", "-s", str(store), "-e", "hashing", code=5)
    assert "-e hashing-64" in result.stderr
    assert "embedder=" not in result.stderr


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (["recall", "x", "-a", "nobody"], 3, "agent 'nobody' has no memories"),
        (["export", "out.egm", "-a", "nobody"], 3, "engramdb stats lists the agents"),
        (["checkpoints", "-a", "nobody"], 3, "engramdb stats lists the agents"),
        (["rollback", "v9", "-a", "bot"], 3, "engramdb checkpoints --agent AGENT"),
        (["recall", "x", "-a", "bot", "--where", "[1]"], 2, "must be a JSON object"),
        (["recall", "x", "-a", "bot", "--since", "last tuesday"], 2, "nor an age"),
        (["recall", "x", "-a", "bad/name"], 3, "has no memories"),
    ],
)
def test_errors_exit_with_their_code_and_speak_cli(
    store: Path, args: list[str], code: int, says: str
) -> None:
    result = cli(*args, "-s", str(store), code=code)
    assert says in result.stderr
    assert not re.search(r"\b[a-z_]+=|engine\.", result.stderr), result.stderr


def test_a_missing_store_is_not_created(tmp_path: Path) -> None:
    for command in (["stats"], ["recall", "x", "-a", "a"], ["checkpoint", "v1", "-a", "a"]):
        result = cli(*command, "-s", str(tmp_path / "none"), code=3)
        assert "no store at" in result.stderr
    assert not (tmp_path / "none").exists()


def test_every_engine_message_with_python_advice_is_translated() -> None:
    samples = {
        "open it with embedder='hashing-256', or export a snapshot and import it with "
        "reembed=True into a store": "give -e hashing-256",
        "import it into a store opened with embedder='minilm', or pass reembed=True "
        "(CLI: --reembed) to embed": "built with -e minilm, or pass --reembed to embed",
        "import with mode='replace' to swap, mode='merge' to add, or agent='<new name>' to "
        "import a copy (CLI: --mode, --agent)": "--mode replace to swap, --mode merge to add, "
        "or --agent NEW_NAME to import a copy",
        "list them with engine.checkpoints(agent=...) (CLI: engramdb checkpoints --agent "
        "AGENT)": "list them with engramdb checkpoints --agent AGENT",
        "has no memories in /s; see engine.agents()": "engramdb stats lists them",
        "encrypted; pass key= (CLI: --passphrase or --key-file)": "pass --key-file or",
    }
    for message, expected in samples.items():
        said = cli_message(message)
        assert expected in said, said
        assert not re.search(r"\b[a-z_]+=|engine\.|\(CLI:", said), said


def test_exit_codes_are_one_per_error_class_and_documented() -> None:
    assert len(set(EXIT_CODES.values())) == len(EXIT_CODES)
    assert exit_code(SnapshotIntegrityError("x")) == exit_code(SnapshotKeyError("x")) == 6
    assert exit_code(EngramError("x")) == 1
    readme = (ROOT / "README.md").read_text()
    doc = cli_errors_module.__doc__ or ""
    for cls, code in EXIT_CODES.items():
        assert f"| {code} |" in readme and cls.__name__ in readme, cls
        assert cls.__name__ in doc


def test_recall_takes_the_apis_filters(store: Path) -> None:
    def texts(*args: str) -> list[str]:
        out = cli("recall", "Alice", "-a", "bot", "-s", str(store), "--json", *args).stdout
        return sorted(h["text"] for h in json.loads(out))

    assert texts("--kind", "procedural") == ["Answer in French"]
    assert texts("--kind", "procedural", "--kind", "episodic", "-k", "9") == [
        "Alice likes jazz", "Alice moved to Lisbon", "Answer in French"
    ]  # fmt: skip
    assert texts("--session", "s2") == ["Alice likes jazz"]
    assert texts("--where", '{"topic": "music"}') == ["Alice likes jazz"]
    assert texts("--since", "2024-05-05") == ["Alice likes jazz"]
    assert texts("--until", "2024-05-05T00:00:00+00:00", "--kind", "episodic") == [
        "Alice moved to Lisbon"
    ]
    assert texts("--since", "1d") == []
    assert len(texts("-k", "1")) == 1


def _commands() -> dict[str, typer.core.TyperCommand]:
    group = typer.main.get_command(app)
    assert isinstance(group, typer.core.TyperGroup)
    return dict(group.commands)  # type: ignore[arg-type]


def test_one_letter_means_one_thing_and_flags_look_like_flags() -> None:
    meaning: dict[str, set[str]] = {}
    for name, command in _commands().items():
        for param in command.params:
            for opt in (*param.opts, *param.secondary_opts):
                if re.fullmatch(r"-\w", opt):
                    longs = [o for o in param.opts if o.startswith("--")]
                    meaning.setdefault(opt, set()).add(longs[0] if longs else "")
        help_text = cli(name, "--help").stdout
        assert "<bool>" not in help_text, name
    assert {k: v for k, v in meaning.items() if len(v) > 1} == {}
    assert meaning["-k"] == {""}  # how many, and nothing else (--kind has no letter)


def test_help_lists_the_choices() -> None:
    assert all(kind in cli("add", "--help").stdout for kind in KINDS)
    assert "fail|replace|merge" in cli("import", "--help").stdout
    assert "float32|float16|int8" in cli("export", "--help").stdout


def test_the_clis_choices_match_the_engines() -> None:
    from engramdb.cli.snapshot import MODES, VECTORS
    from engramdb.records import MemoryKind
    from engramdb.snapshots import io
    from engramdb.snapshots.codecs import VECTOR_CODECS

    assert KINDS == tuple(k.value for k in MemoryKind)
    assert MODES == io.MODES and set(VECTORS) == set(VECTOR_CODECS)


def test_json_wherever_a_table_is_printed(store: Path) -> None:
    for args in (["stats"], ["recall", "Alice", "-a", "bot"], ["checkpoints", "-a", "bot"]):
        json.loads(cli(*args, "-s", str(store), "--json").stdout)
    added = json.loads(cli("add", "Bob is here", "-a", "bot", "-s", str(store), "--json").stdout)
    assert added["text"] == "Bob is here" and added["agent"] == "bot"


def test_tables_in_a_pipe_are_plain_lines(store: Path) -> None:
    lines = cli("recall", "Alice", "-a", "bot", "-s", str(store)).stdout.splitlines()
    assert lines[0].split() == ["score", "kind", "memory", "id"]
    assert not any(ch in "".join(lines) for ch in "│┃━─")
    assert len(lines) == 4


def test_tables_on_an_80_column_terminal_keep_every_column(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from rich.console import Console

    from engramdb.cli import consolidate, output

    screen = Console(width=80, force_terminal=True, record=True, color_system=None)
    monkeypatch.setattr(output, "console", screen)
    row = {
        "agent": "support-bot-7",
        "status": "skipped",
        "active_before": 12345, "active_after": 6543,
        "groups_merged": 123, "duplicates_archived": 567,
        "gists": 32, "clustered": 432,
        "forgotten": 123, "deleted": 12, "expired": 99,
        "bytes_before": 98765432, "bytes_after": 12345678, "seconds": 1234.5,
    }  # fmt: skip
    consolidate._print_summary([row], dry_run=True)
    text = screen.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    for column in consolidate.SUMMARY:
        assert column.name in text
    for cell in ("support-bot-7", "12345->6543", "123 (567)", "32 (432)", "94.2->11.8", "1234.5 s"):
        assert cell in text


def test_snapshot_info_keeps_the_hash_whole_and_names_the_key(store: Path, tmp_path: Path) -> None:
    key = tmp_path / "k.key"
    key.write_bytes(os.urandom(32))
    snap = tmp_path / "bot.egm"
    cli("export", str(snap), "-a", "bot", "-s", str(store), "--key-file", str(key))
    info = cli("snapshot-info", str(snap)).stdout
    sha = json.loads(cli("snapshot-info", str(snap), "--json").stdout)["sha256"]
    assert re.search(rf"^sha256\s+{sha}$", info, re.M)
    assert "aes-256-gcm, key file" in info and "none" not in info
