"""A local reader's look at the tables' version directories."""

from __future__ import annotations

from pathlib import Path

import pytest

from engramdb.store import watch
from engramdb.store.watch import VersionsWatch


def test_a_commit_or_a_new_table_is_a_change(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(watch, "RACY_SECONDS", 0.0)  # trust every file time at once
    (tmp_path / "memories.lance" / "_versions").mkdir(parents=True)
    w = VersionsWatch([tmp_path / "memories.lance", tmp_path / "access.lance"])
    first = w.look()
    assert first[1] is None  # no access table yet
    assert not w.unchanged(first)  # never followed: a change
    w.followed(first)
    assert w.unchanged(w.look())
    (tmp_path / "memories.lance" / "_versions" / "2.manifest").write_bytes(b"m")
    assert not w.unchanged(w.look())  # a commit
    w.followed(w.look())
    assert w.unchanged(w.look())
    (tmp_path / "access.lance" / "_versions").mkdir(parents=True)
    assert not w.unchanged(w.look())  # the access log appeared


def test_a_recent_change_is_never_trusted(tmp_path: Path) -> None:
    (tmp_path / "t.lance" / "_versions").mkdir(parents=True)
    w = VersionsWatch([tmp_path / "t.lance"])
    stamp = w.look()
    w.followed(stamp)
    # Just made: within RACY_SECONDS a commit in the same clock tick would not show.
    assert watch.RACY_SECONDS > 0
    assert not w.unchanged(stamp)


@pytest.mark.parametrize("racy", [0.0, 5.0])
def test_a_stamp_other_than_the_followed_one_is_a_change(tmp_path: Path, monkeypatch, racy) -> None:
    monkeypatch.setattr(watch, "RACY_SECONDS", racy)
    w = VersionsWatch([tmp_path / "gone.lance"])
    w.followed(((1, 2, 3),))
    assert not w.unchanged(w.look())  # the directory is missing now
