"""API keys: a TOML file of hashed keys, each limited to some agents and scopes.

The file never holds a key, only its SHA-256::

    [[keys]]
    name = "alice-app"
    sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
    agents = ["alice", "team-*"]     # names or shell-style globs
    scopes = ["read", "write"]       # read, write, admin (admin implies the other two)

``engramdb keys add`` appends a table and prints the new key once. A request
sends it as ``Authorization: Bearer <key>``; the server hashes it and compares
the digest with every known one in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

from engramdb.errors import ValidationError
from engramdb.server.errors import AuthError, ForbiddenError

__all__ = [
    "LOCAL",
    "SCOPES",
    "ApiKey",
    "KeyRing",
    "add_key",
    "hash_key",
    "load_keys",
]

SCOPES = ("read", "write", "admin")
_KEY_NAME = re.compile(r"[A-Za-z0-9_.@:-]{1,64}")
_AGENT_PATTERN = re.compile(r"[A-Za-z0-9_.:@*?\[\]!-]{1,128}")
_HEX64 = re.compile(r"[0-9a-f]{64}")


def hash_key(key: str) -> str:
    """The hex SHA-256 of a key, as the keys file stores it."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class ApiKey:
    """One key's name and rights (never the key itself).

    Attributes:
        name: A label for logs and metrics.
        sha256: Hex SHA-256 of the key.
        agents: Agent names or globs (``team-*``) the key may use.
        scopes: Some of ``read``, ``write``, ``admin``.
    """

    name: str
    sha256: str
    agents: tuple[str, ...]
    scopes: frozenset[str]

    def may_see(self, agent: str) -> bool:
        """Whether this key may use ``agent`` at all."""
        return any(fnmatchcase(agent, pattern) for pattern in self.agents)

    def allows(self, scope: str) -> bool:
        """Whether this key holds ``scope`` (admin holds every scope)."""
        return scope in self.scopes or "admin" in self.scopes

    def check(self, agent: str, scope: str) -> None:
        """Raise :class:`ForbiddenError` unless the key may use ``agent`` with ``scope``.

        The message is the same whether or not the agent exists.
        """
        if not self.may_see(agent):
            raise ForbiddenError(
                f"key {self.name!r} may not use agent {agent!r}; ask for a key that lists it"
            )
        if not self.allows(scope):
            raise ForbiddenError(
                f"key {self.name!r} lacks the {scope!r} scope this needs (it has "
                f"{', '.join(sorted(self.scopes)) or 'none'}); ask for a key with {scope!r}"
            )

    @property
    def sees_everything(self) -> bool:
        """Admin over every agent (``agents`` holds ``"*"``): an operator's key."""
        return "*" in self.agents and self.allows("admin")

    def visible(self, agents: Iterable[str]) -> list[str]:
        """The agents of ``agents`` this key may see, in order."""
        return [a for a in agents if self.may_see(a)]


LOCAL = ApiKey(name="local", sha256="", agents=("*",), scopes=frozenset(SCOPES))
"""The principal of a server started without keys: loopback clients, every right."""


class KeyRing:
    """The keys a server accepts."""

    def __init__(self, keys: Sequence[ApiKey]) -> None:
        self.keys = tuple(keys)

    def __len__(self) -> int:
        return len(self.keys)

    def authenticate(self, authorization: str | None) -> ApiKey:
        """The key behind an ``Authorization: Bearer <key>`` header value.

        Raises:
            AuthError: no header, not a bearer token, or an unknown key.
        """
        if not authorization:
            raise AuthError("no API key; send 'Authorization: Bearer <key>'")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthError("the Authorization header is not 'Bearer <key>'; send the key so")
        digest = hash_key(token.strip()).encode()
        found: ApiKey | None = None
        for key in self.keys:  # no early exit: the time does not depend on which key matched
            if hmac.compare_digest(digest, key.sha256.encode()):
                found = key
        if found is None:
            raise AuthError("unknown API key; check the key, or create one with engramdb keys add")
        return found


def _parse(path: Path, i: int, table: object) -> ApiKey:
    where = f"{path} [[keys]] #{i + 1}"
    if not isinstance(table, dict):
        raise ValidationError(f"{where} is not a table; write [[keys]] with name, sha256, ...")
    unknown = set(table) - {"name", "sha256", "agents", "scopes"}
    if unknown:
        raise ValidationError(f"{where} has unknown field(s) {sorted(unknown)}")
    name = table.get("name")
    if not isinstance(name, str) or not _KEY_NAME.fullmatch(name):
        raise ValidationError(f"{where}: name {name!r} must be 1 to 64 of letters, digits, -_.@:")
    digest = table.get("sha256")
    if not isinstance(digest, str) or not _HEX64.fullmatch(digest):
        raise ValidationError(
            f"{where}: sha256 {digest!r} is not 64 lowercase hex digits; store the SHA-256 "
            "of the key, never the key"
        )
    agents = table.get("agents")
    if (
        not isinstance(agents, list)
        or not agents
        or not all(isinstance(a, str) and _AGENT_PATTERN.fullmatch(a) for a in agents)
    ):
        raise ValidationError(
            f"{where}: agents {agents!r} must be a non-empty list of agent names or globs"
        )
    scopes = table.get("scopes")
    if not isinstance(scopes, list) or not scopes or not set(scopes) <= set(SCOPES):
        raise ValidationError(f"{where}: scopes {scopes!r} must be a non-empty list of {SCOPES}")
    return ApiKey(name=name, sha256=digest, agents=tuple(agents), scopes=frozenset(scopes))


def load_keys(path: str | Path) -> KeyRing:
    """Read a keys file.

    Raises:
        ValidationError: the file is missing, not TOML, or a table is malformed.
    """
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValidationError(
            f"keys file {str(path)!r} does not exist; create it with engramdb keys add"
        ) from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ValidationError(f"keys file {str(path)!r} cannot be read as TOML ({exc})") from exc
    tables = data.get("keys", [])
    if not isinstance(tables, list):
        raise ValidationError(f"keys file {str(path)!r}: 'keys' must be an array of tables")
    keys = [_parse(path, i, t) for i, t in enumerate(tables)]
    names = [k.name for k in keys]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValidationError(f"keys file {str(path)!r} names {dupes} more than once")
    return KeyRing(keys)


def _toml_list(values: Sequence[str]) -> str:
    return "[" + ", ".join(f'"{v}"' for v in values) + "]"


def add_key(path: str | Path, *, name: str, agents: Sequence[str], scopes: Sequence[str]) -> str:
    """Append a new key to ``path`` (created if missing, mode 0600) and return the key.

    The key is shown only here; the file keeps its SHA-256.

    Raises:
        ValidationError: a bad name, agent pattern or scope, or a name already used.
    """
    path = Path(path)
    key = "egm_" + secrets.token_urlsafe(32)
    entry = {"name": name, "sha256": hash_key(key), "agents": list(agents), "scopes": list(scopes)}
    fresh = _parse(path, 0, entry)  # the same rules as loading
    existing = load_keys(path).keys if path.exists() else ()
    if any(k.name == fresh.name for k in existing):
        raise ValidationError(f"keys file {str(path)!r} already has a key named {name!r}")
    block = (
        f'\n[[keys]]\nname = "{fresh.name}"\nsha256 = "{fresh.sha256}"\n'
        f"agents = {_toml_list(fresh.agents)}\nscopes = {_toml_list(sorted(fresh.scopes))}\n"
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a", encoding="utf-8") as fh:
        fh.write(block)
    return key
