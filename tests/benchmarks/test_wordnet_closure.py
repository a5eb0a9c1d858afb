"""The WordNet closure script reads the database format and walks hypernym links."""

from __future__ import annotations

import csv
import re
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

# A few synsets in WordNet 3.0's database format: "dog" has two senses, the
# second under "person"; "lassie" is an instance of dog.n.01.
DATA_NOUN = """\
  1 This software and database is being provided to you, the LICENSEE, by
00000001 05 n 01 animal 0 000 | a living organism
00000002 05 n 02 dog 0 domestic_dog 0 001 @ 00000001 n 0000 | a domesticated canid
00000003 05 n 01 puppy 0 001 @ 00000002 n 0000 | a young dog
00000004 05 n 01 Lassie 0 001 @i 00000002 n 0000 | a fictional dog
00000005 18 n 01 dog 0 001 @ 00000006 n 0000 | a dull unattractive person
00000006 03 n 01 person 0 000 | a human being
"""
INDEX_NOUN = """\
  1 This software and database is being provided to you, the LICENSEE, by
animal n 1 0 1 0 00000001
dog n 2 1 @ 2 0 00000002 00000005
domestic_dog n 1 1 @ 1 0 00000002
lassie n 1 1 @i 1 0 00000004
person n 1 0 1 0 00000006
puppy n 1 1 @ 1 0 00000003
"""


@pytest.fixture
def script(bench: Callable[[str], ModuleType]) -> ModuleType:
    return bench("wordnet_closure")


@pytest.fixture
def wordnet_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "dict"
    directory.mkdir()
    (directory / "data.noun").write_text(DATA_NOUN, encoding="latin-1")
    (directory / "index.noun").write_text(INDEX_NOUN, encoding="latin-1")
    return directory


def read_pairs(path: Path) -> set[tuple[str, str]]:
    with open(path) as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["id1", "id2", "weight"]
    assert {row[2] for row in rows[1:]} == {"1"}
    return {(row[0], row[1]) for row in rows[1:]}


def test_closure_follows_hypernyms_and_instances(
    script: ModuleType, wordnet_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    script.main([str(wordnet_dir), "dog.n.01", "animal.n.01", "--out", str(out)])
    assert read_pairs(out / "dog.n.01_closure.csv") == {
        ("puppy.n.01", "dog.n.01"),
        ("lassie.n.01", "dog.n.01"),
    }
    # The root's ancestors are not in its subtree; the second sense of "dog" is elsewhere.
    assert read_pairs(out / "animal.n.01_closure.csv") == {
        ("dog.n.01", "animal.n.01"),
        ("puppy.n.01", "dog.n.01"),
        ("puppy.n.01", "animal.n.01"),
        ("lassie.n.01", "dog.n.01"),
        ("lassie.n.01", "animal.n.01"),
    }

    script.main([str(wordnet_dir), "dog.n.01", "--no-instances", "--out", str(out)])
    assert read_pairs(out / "dog.n.01_closure.csv") == {("puppy.n.01", "dog.n.01")}


def test_unknown_root_is_refused_by_name(
    script: ModuleType, wordnet_dir: Path, tmp_path: Path
) -> None:
    with pytest.raises(SystemExit, match=re.escape("'cat.n.01' is not in data.noun")):
        script.main([str(wordnet_dir), "cat.n.01", "--out", str(tmp_path)])
