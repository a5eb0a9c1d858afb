"""Transitive closures of WordNet noun subtrees, as input for ``benchmarks/hierarchy.py``.

Usage::

    python benchmarks/wordnet_closure.py WORDNET_DIR ROOT [ROOT ...] [--out DIR]
        [--no-instances]

``WORDNET_DIR`` holds the WordNet 3.0 database files ``data.noun`` and
``index.noun`` (for example ``/usr/share/wordnet`` from Debian's
``wordnet-base`` package, or ``nltk_data/corpora/wordnet``). Each ``ROOT`` is a
synset name such as ``bird.n.01``; the script writes ``DIR/<root>_closure.csv``
with the columns ``id1,id2,weight``: one row ``(hyponym, ancestor, 1)`` for every
synset under the root and each of its ancestors up to and including the root,
the format of the mammal closure of Nickel & Kiela (2017). Synsets are named the
NLTK way (first lemma, part of speech, sense number of that lemma). Hypernym
links and instance-hypernym links are followed (``--no-instances`` drops the
latter), as in that closure.

Other subtrees than the development set's are how the trainer's defaults are
checked for the general case, for example::

    python benchmarks/wordnet_closure.py /usr/share/wordnet bird.n.01 fish.n.01 \
        vehicle.n.01 --out /tmp/closures
    python benchmarks/hierarchy.py /tmp/closures/bird.n.01_closure.csv --skip-recall
"""

from __future__ import annotations

import argparse
import csv
import functools
import sys
from collections import defaultdict
from pathlib import Path


def read_nouns(
    directory: Path, *, instances: bool = True
) -> tuple[dict[str, str], dict[str, list[str]]]:
    """Synset names by offset, and each synset's hypernym offsets."""
    sense: dict[tuple[str, str], int] = {}
    with open(directory / "index.noun", encoding="latin-1") as fh:
        for line in fh:
            if line.startswith(" "):
                continue
            fields = line.split()
            lemma, n_pointers = fields[0], int(fields[3])
            n_senses = int(fields[2])
            offsets = fields[6 + n_pointers : 6 + n_pointers + n_senses]
            for number, offset in enumerate(offsets, 1):
                sense[(lemma, offset)] = number
    names: dict[str, str] = {}
    parents: dict[str, list[str]] = defaultdict(list)
    wanted = {"@", "@i"} if instances else {"@"}
    with open(directory / "data.noun", encoding="latin-1") as fh:
        for line in fh:
            if line.startswith(" "):
                continue
            fields = line.split()
            offset, n_words = fields[0], int(fields[3], 16)
            lemma = fields[4].lower()
            names[offset] = f"{lemma}.n.{sense.get((lemma, offset), 1):02d}"
            at = 4 + 2 * n_words
            for i in range(int(fields[at])):
                symbol, target, pos = fields[at + 1 + 4 * i : at + 4 + 4 * i]
                if symbol in wanted and pos == "n":
                    parents[offset].append(target)
    return names, parents


def closure(
    root: str, names: dict[str, str], parents: dict[str, list[str]]
) -> list[tuple[str, str]]:
    """``(hyponym, ancestor)`` name pairs of the subtree under the synset named ``root``."""
    by_name = {name: offset for offset, name in names.items()}
    if root not in by_name:
        raise SystemExit(f"synset {root!r} is not in data.noun; use a name like bird.n.01")
    top = by_name[root]

    @functools.cache
    def up(offset: str) -> frozenset[str]:
        # Recursion is safe: WordNet's noun chains are under 20 links long.
        found: set[str] = set()
        for parent in parents[offset]:
            found.add(parent)
            found |= up(parent)
        return frozenset(found)

    pairs = []
    for offset in names:
        above = up(offset)
        if top in above:
            pairs.extend(
                (names[offset], names[a]) for a in sorted(above) if a == top or top in up(a)
            )
    return pairs


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("wordnet_dir", type=Path)
    parser.add_argument("roots", nargs="+")
    parser.add_argument("--out", type=Path, default=Path("."))
    parser.add_argument("--no-instances", action="store_true")
    args = parser.parse_args(argv)
    names, parents = read_nouns(args.wordnet_dir, instances=not args.no_instances)
    args.out.mkdir(parents=True, exist_ok=True)
    for root in args.roots:
        pairs = closure(root, names, parents)
        path = args.out / f"{root}_closure.csv"
        with open(path, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["id1", "id2", "weight"])
            writer.writerows((u, v, 1) for u, v in pairs)
        nodes = {x for pair in pairs for x in pair}
        print(f"{path}: {len(nodes)} nodes, {len(pairs)} edges", file=sys.stderr)


if __name__ == "__main__":
    main()
