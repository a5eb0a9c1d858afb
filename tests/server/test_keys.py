"""Keys: the file, the CLI, and isolation between agents through every route."""

from __future__ import annotations

import hashlib
import tomllib
from pathlib import Path

import httpx
import pytest
import typer
from typer.testing import CliRunner

from engramdb.errors import ValidationError
from engramdb.server import load_keys
from engramdb.server.cli import register
from engramdb.server.errors import AuthError
from engramdb.server.keys import hash_key

from .conftest import Keys, Live


def test_file_holds_hashes_never_keys(keys_file: tuple[Path, Keys]) -> None:
    path, made = keys_file
    text = path.read_text()
    assert made.alice not in text and hash_key(made.alice) in text
    assert hash_key(made.alice) == hashlib.sha256(made.alice.encode()).hexdigest()
    ring = load_keys(path)
    assert ring.authenticate(f"Bearer {made.team}").name == "team"
    assert ring.authenticate(f"Bearer {made.team}").may_see("team-red")
    assert not ring.authenticate(f"Bearer {made.team}").may_see("teamred")
    with pytest.raises(AuthError):
        ring.authenticate("Bearer nope")
    with pytest.raises(AuthError):
        ring.authenticate(made.alice)  # not a bearer header
    assert path.stat().st_mode & 0o777 == 0o600


def test_bad_keys_files_say_what_is_wrong(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[[keys]]\nname = "x"\nsha256 = "abc"\nagents = ["a"]\nscopes = ["read"]\n')
    with pytest.raises(ValidationError, match="sha256 'abc'"):
        load_keys(bad)
    bad.write_text(
        f'[[keys]]\nname = "x"\nsha256 = "{"a" * 64}"\nagents = ["a"]\nscopes = ["god"]\n'
    )
    with pytest.raises(ValidationError, match="scopes"):
        load_keys(bad)
    with pytest.raises(ValidationError, match="does not exist"):
        load_keys(tmp_path / "missing.toml")


def test_cli_keys_add_prints_the_key_once(tmp_path: Path) -> None:
    app = typer.Typer()
    register(app)
    path = tmp_path / "k.toml"
    runner = CliRunner()
    args = ["keys", "add", "--file", str(path), "--name", "app", "--agents", "a,team-*"]
    result = runner.invoke(app, [*args, "--scopes", "read,write"])
    assert result.exit_code == 0, result.output
    key = result.stdout.strip().splitlines()[0]
    table = tomllib.loads(path.read_text())["keys"][0]
    assert table == {
        "name": "app",
        "sha256": hash_key(key),
        "agents": ["a", "team-*"],
        "scopes": ["read", "write"],
    }
    again = runner.invoke(app, args)
    assert again.exit_code == 2 and "already has a key named 'app'" in again.output
    wrong = runner.invoke(
        app,
        ["keys", "add", "--file", str(path), "--name", "b", "--agents", "a", "--scopes", "root"],
    )
    assert wrong.exit_code == 2


def test_no_key_or_wrong_key_is_401(keyed: tuple[Live, Keys]) -> None:
    live, _ = keyed
    with live.client() as c:
        assert c.get("/v1/health").status_code == 200
        r = c.get("/v1/agents")
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
        assert r.headers["WWW-Authenticate"] == "Bearer"
    with live.client("wrong") as c:
        assert c.get("/v1/agents/alice/memories").status_code == 401
        assert c.get("/metrics").status_code == 401


def _routes(memory_id: str) -> list[tuple[str, str, dict[str, object] | None]]:
    base = "/v1/agents/bob"
    return [
        ("POST", f"{base}/memories", {"text": "x"}),
        ("POST", f"{base}/memories/batch", {"items": [{"text": "x"}]}),
        ("GET", f"{base}/memories", None),
        ("GET", f"{base}/memories/{memory_id}", None),
        ("PATCH", f"{base}/memories/{memory_id}", {"text": "y"}),
        ("DELETE", f"{base}/memories/{memory_id}", None),
        ("POST", f"{base}/recall", {"query": "secret"}),
        ("GET", f"{base}/brief", None),
        ("POST", f"{base}/consolidate", {}),
        ("GET", f"{base}/snapshot", None),
        ("POST", f"{base}/checkpoints", {"name": "c"}),
        ("GET", f"{base}/checkpoints", None),
        ("POST", f"{base}/rollback", {"name": "c"}),
        ("GET", f"{base}/events", None),
        ("DELETE", base, None),
    ]


def test_alice_never_reaches_bob(keyed: tuple[Live, Keys]) -> None:
    live, k = keyed
    with live.client(k.bob) as bob:
        secret = bob.post("/v1/agents/bob/memories", json={"text": "bob's secret plan"}).json()
    before = live.engine.list(agent="bob")
    with live.client(k.alice) as alice, live.client(k.alice_admin) as admin:
        for client in (alice, admin):
            for method, path, body in _routes(secret["id"]):
                r = client.request(method, path, json=body)
                assert r.status_code == 403, (method, path, r.text)
                assert "bob's secret" not in r.text
            # a made-up agent is refused the same way: existence is not revealed
            ghost = client.get("/v1/agents/nobody/memories")
            real = client.get("/v1/agents/bob/memories")
            assert ghost.status_code == real.status_code == 403
            assert (
                ghost.json()["error"]["message"].replace("nobody", "bob")
                == real.json()["error"]["message"]
            )
        alice.post("/v1/agents/alice/memories", json={"text": "alice note"})
        assert alice.get("/v1/agents").json() == {"agents": ["alice"]}
        metrics = alice.get("/metrics").text
        assert 'engramdb_memories{agent="alice"} 1' in metrics and "bob" not in metrics
        # alice sees her own requests only: bob's writes leave no trace in her scrape
        assert 'key="alice"' in metrics and 'key="alice-admin"' not in metrics
        series = [line for line in metrics.splitlines() if line.startswith("engramdb_http_req")]
        assert series and all('key="alice"' in line for line in series)
        # copying into bob through alice's snapshot route is refused too
        snap = admin.get("/v1/agents/alice/snapshot").content
        r = admin.post("/v1/agents/alice/snapshot", params={"as_agent": "bob"}, content=snap)
        assert r.status_code == 403
    assert live.engine.list(agent="bob") == before
    with live.client(k.ops) as ops:  # an operator's key sees every key and agent
        metrics = ops.get("/metrics").text
        assert 'key="bob"' in metrics and 'engramdb_memories{agent="bob"} 1' in metrics


def test_scopes(keyed: tuple[Live, Keys]) -> None:
    live, k = keyed
    with live.client(k.reader) as reader, live.client(k.alice) as alice:
        r = reader.post("/v1/agents/alice/memories", json={"text": "x"})
        assert r.status_code == 403 and "'write' scope" in r.json()["error"]["message"]
        alice.post("/v1/agents/alice/memories", json={"text": "x"})
        assert reader.get("/v1/agents/alice/memories").json()["total"] == 1
        assert alice.post("/v1/agents/alice/consolidate", json={}).status_code == 403
        assert alice.delete("/v1/agents/alice").status_code == 403
        assert alice.post("/v1/agents/alice/checkpoints", json={"name": "c"}).status_code == 201
        assert alice.post("/v1/agents/alice/rollback", json={"name": "c"}).status_code == 403
    with live.client(k.alice_admin) as admin:
        assert admin.post("/v1/agents/alice/consolidate", json={}).status_code == 200
        assert admin.post("/v1/agents/alice/rollback", json={"name": "c"}).status_code == 200
    with live.client(k.team) as team:
        assert team.post("/v1/agents/team-red/memories", json={"text": "x"}).status_code == 201
        assert team.get("/v1/agents/alice/memories").status_code == 403


def test_keyless_server_refuses_non_loopback_clients(live: Live) -> None:
    # The ASGI client address is not loopback here: exercise the check in-process.
    from fastapi.testclient import TestClient

    from engramdb.server import create_app

    app = create_app(live.engine)
    with TestClient(app, client=("10.1.2.3", 5000)) as c:
        r = c.get("/v1/agents")
        assert r.status_code == 403 and "loopback" in r.json()["error"]["message"]
    with httpx.Client(base_url=live.url) as c:
        assert c.get("/v1/agents").status_code == 200
