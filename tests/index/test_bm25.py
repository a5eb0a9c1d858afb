"""The compiled BM25 loop: its top k, its scratch between calls, and threads."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from engramdb.index import bm25
from engramdb.index.lexical import LexicalIndex

ROOT = Path(__file__).resolve().parents[2]

numba = pytest.importorskip("numba", reason="the compiled loop needs numba (the fast extra)")


@pytest.fixture(autouse=True)
def compiled_at_any_size(monkeypatch: pytest.MonkeyPatch) -> None:
    """The index's searches here take the compiled loop, small as the indexes are."""
    monkeypatch.setattr(bm25, "MIN_POSTINGS", 0)


def _terms(size: int) -> bm25.Terms:
    return bm25.Terms(np.zeros(size, np.uint16), np.ones(size), 1.0, 0.0, 2.2)


def _posting(labels: list[int], counts: list[int], idf: float = 1.0) -> bm25.Posting:
    n = len(labels)
    zeros = np.zeros(n, np.uint16)
    return (np.array(labels, np.int32), zeros, np.array(counts, np.uint16), zeros, False, idf)


@pytest.mark.parametrize("k", [0, 1, 3, 7, 50])
def test_top_k_is_the_sort_by_sum_then_label(k: int) -> None:
    rng = np.random.default_rng(k)
    size = 60
    postings = [
        _posting(
            sorted(rng.choice(size, 30, replace=False).tolist()), rng.integers(1, 3, 30).tolist()
        )
        for _ in range(3)
    ]
    found, values, matched = bm25.search(_terms(size), postings, size, k, None)
    sums: dict[int, float] = {}
    for labels, _, own, _, _, _ in postings:
        for label, count in zip(labels.tolist(), own.tolist(), strict=True):
            tf = float(np.float32(count))
            part = float(np.float32(np.float32(tf) * np.float32(2.2))) / (1.0 + tf)
            sums[label] = sums.get(label, 0.0) + part
    want = sorted(sums.items(), key=lambda item: (-item[1], item[0]))[:k]
    assert matched == len(sums)
    assert found.tolist() == [label for label, _ in want]
    assert values.tolist() == pytest.approx([v for _, v in want], rel=1e-12)
    # Many equal sums here (counts of 1 and 2): ties were broken by label.
    assert len(set(values.tolist())) < len(values) or k <= 1


def test_scratch_is_clean_after_each_call_of_any_size() -> None:
    big = _posting(list(range(0, 1000, 3)), [1] * 334)
    small = _posting([1, 2], [2, 1])
    first = bm25.search(_terms(1000), [big], 1000, 5, None)
    bm25.search(_terms(3), [small], 3, 5, None)
    again = bm25.search(_terms(1000), [big], 1000, 5, None)
    assert first[0].tolist() == again[0].tolist() == [0, 3, 6, 9, 12]
    assert first[1].tolist() == again[1].tolist()
    # sums gives 0 to labels no posting names, and to labels past every index.
    got = bm25.sums(_terms(3), [small], 3, np.array([2, 0, 10**6, 1]))
    assert got[[1, 2]].tolist() == [0.0, 0.0]
    assert got[0] > 0 and got[3] > got[0]
    assert bm25.search(_terms(3), [small], 3, 5, None)[0].tolist() == [1, 2]


def test_allowed_beyond_its_length_excludes() -> None:
    p = _posting([0, 5, 9], [1, 1, 1])
    allowed = np.ones(6, np.bool_)  # label 9 is past it
    assert bm25.search(_terms(10), [p], 10, 5, allowed)[0].tolist() == [0, 5]


def test_threads_searching_at_once_get_what_one_thread_gets() -> None:
    rng = np.random.default_rng(7)
    words = [f"w{i}" for i in range(40)]
    indexes = []
    for n in (300, 2000):
        ix = LexicalIndex()
        ix.upsert((x, " ".join(rng.choice(words, 8)), "") for x in range(n))
        indexes.append(ix)
    queries = [" ".join(rng.choice(words, 3)) for _ in range(30)]
    want = [[ix.search(q, 10)[1].tolist() for q in queries] for ix in indexes]
    got: dict[int, list[list[int]]] = {}

    def run(i: int) -> None:
        ix = indexes[i % 2]
        got[i] = [ix.search(q, 10)[1].tolist() for q in queries for _ in range(5)][::5]

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [got[i] for i in range(4)] == [want[0], want[1], want[0], want[1]]


def test_the_compiled_loop_and_numpy_give_the_same_floats(monkeypatch: pytest.MonkeyPatch) -> None:
    """Random upserts and removals (stale postings, compactions, words in most
    documents): both paths return the same labels and the same float32 bytes."""
    rng = np.random.default_rng(11)
    words = [f"w{i}" for i in range(120)]
    ix = LexicalIndex()

    def both(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, Any]:
        compiled = fn(*args, **kwargs)
        with monkeypatch.context() as m:
            m.setattr(bm25, "available", lambda: False)
            return compiled, fn(*args, **kwargs)

    for step in range(1500):
        label = int(rng.integers(600))
        if rng.random() < 0.2:
            ix.remove([label])
        else:
            vocab = words[: int(rng.choice([8, 120]))]  # a few words in most documents
            own = " ".join(rng.choice(vocab, int(rng.integers(1, 10))))
            ctx = " ".join(rng.choice(words, int(rng.integers(0, 15))))
            ix.upsert([(label, own, ctx)])
        if step % 25:
            continue
        query = " ".join(rng.choice(words[:40], int(rng.integers(1, 5))))
        weights = ((1.0, 0.5), (1.0, 0.0), (0.7, 0.3))[step % 3]
        k = int(rng.choice([1, 10, 100]))
        allowed = None if step % 2 else rng.random(int(rng.integers(100, 700))) < 0.5
        a, b = both(ix.search, query, k, allowed, weights=weights)
        assert a[1].tolist() == b[1].tolist()
        assert a[0].tobytes() == b[0].tobytes()
        asked = rng.permutation(800)[:200]
        c, d = both(ix.scores, query, asked, weights=weights)
        assert c.tobytes() == d.tobytes()
    assert ix._stale > 0


def test_an_interrupted_search_leaves_no_sum_behind(monkeypatch: pytest.MonkeyPatch) -> None:
    p = _posting([0, 1, 2], [1, 2, 3])
    want = bm25.search(_terms(3), [p], 3, 3, None)
    real = bm25._accumulate

    def interrupted(*args: Any) -> int:
        real(*args)  # the sums are in the scratch, then the call is interrupted
        raise KeyboardInterrupt

    monkeypatch.setattr(bm25, "_accumulate", interrupted)
    with pytest.raises(KeyboardInterrupt):
        bm25.search(_terms(3), [p], 3, 3, None)
    monkeypatch.undo()
    got = bm25.search(_terms(3), [p], 3, 3, None)
    assert got[0].tolist() == want[0].tolist() == [2, 1, 0]
    assert got[1].tolist() == want[1].tolist()


def test_only_an_index_past_the_threshold_loads_the_kernels(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[int] = []
    real = bm25.available

    def spy() -> bool:
        calls.append(1)
        return real()

    monkeypatch.setattr(bm25, "available", spy)
    ix = LexicalIndex()
    ix.upsert([(x, f"word{x % 7} common", "") for x in range(200)])
    monkeypatch.setattr(bm25, "MIN_POSTINGS", ix._live_postings + 1)
    small = ix.search("word3 common", 5)
    assert calls == []
    monkeypatch.setattr(bm25, "MIN_POSTINGS", ix._live_postings)
    large = ix.search("word3 common", 5)
    assert calls  # asked (and, numba being installed, used)
    assert small[1].tolist() == large[1].tolist()
    assert small[0].tobytes() == large[0].tobytes()


def test_a_failed_growth_leaves_the_scratch_consistent(monkeypatch: pytest.MonkeyPatch) -> None:
    """The kernels check no bounds: the three arrays must never differ in length."""
    scratch = bm25._Scratch()
    scratch.fit(10)
    real, made = np.zeros, []

    def second_fails(*args: Any, **kwargs: Any) -> np.ndarray:
        made.append(1)
        if len(made) == 2:
            raise MemoryError
        return real(*args, **kwargs)

    monkeypatch.setattr(np, "zeros", second_fails)
    with pytest.raises(MemoryError):
        scratch.fit(1000)
    monkeypatch.undo()
    assert len(scratch.acc) == len(scratch.seen) == len(scratch.touched) == 10
    scratch.fit(1000)
    assert len(scratch.acc) == len(scratch.seen) == len(scratch.touched) == 1000


@pytest.mark.parametrize("compiled", [True, False])
def test_scores_of_labels_no_document_can_have_are_zero(
    compiled: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not compiled:
        monkeypatch.setattr(bm25, "available", lambda: False)
    ix = LexicalIndex()
    ix.upsert([(0, "apple pie", ""), (3, "apple", ""), (4, "pear", "")])
    got = ix.scores("apple", np.array([-1, 3, 10**6, 0, -5]))
    assert got[[0, 2, 4]].tolist() == [0.0, 0.0, 0.0]
    assert got[1] > 0 and got[3] > 0
    assert ix.scores("apple", np.array([-1, -2])).tolist() == [0.0, 0.0]


def test_a_numba_that_fails_to_import_falls_back_to_numpy(tmp_path: Path) -> None:
    fake = tmp_path / "numba"
    fake.mkdir()
    (fake / "__init__.py").write_text('raise ImportError("this numba needs another numpy")\n')
    code = (
        "import warnings\n"
        "from engramdb.index import bm25\n"
        "from engramdb.index.lexical import LexicalIndex\n"
        "bm25.MIN_POSTINGS = 0\n"
        "ix = LexicalIndex()\n"
        "ix.upsert([(1, 'a cat', ''), (2, 'a dog', '')])\n"
        "with warnings.catch_warnings(record=True) as seen:\n"
        "    warnings.simplefilter('always')\n"
        "    first = ix.search('cat', 5)[1].tolist()\n"
        "second = ix.search('cat', 5)[1].tolist()\n"
        "print(first, second, bm25.available(), [str(w.message) for w in seen])\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("[1] [1] False")
    assert "this numba needs another numpy" in out.stdout
