"""Retrieval quality on LoCoMo: does recall find the turns that hold a question's evidence?

Usage:
    python benchmarks/locomo.py PATH [--k 5,10,25] [--systems dense,bm25,engramdb,...]
                                     [--conversations N] [--out DIR] [--cache DIR] [--work DIR]
    python benchmarks/locomo.py ../shared/data/locomo/locomo-dev.json

PATH is a LoCoMo-format JSON file (a list of conversations with ``conversation``
and ``qa``). The data is not shipped with engramdb (LoCoMo is CC BY-NC 4.0): point
the script at a copy.

Each conversation is one agent; each turn one episodic memory, rendered
``{speaker} said, "{text}"`` (plus `` [shares {caption}]`` when the turn shared an
image), with its session (``session_N``), speaker and ``dia_id`` as metadata and its
session's date as ``created_at``. For every question and k in (5, 10, 25), recall@k
is the fraction of the question's evidence turns (ids matched with ``D\\d+:\\d+``)
found in the top k (questions without evidence count as 1.0), averaged over
questions, overall and per category; at turn level, and at session level (the
evidence's sessions among the top-k distinct sessions of the ranked turns).

Systems, all in one run on the same rendered turns:

- ``dense``: exact cosine over turns with the bundled all-MiniLM-L6-v2 (numpy).
- ``bm25``: BM25 over turns (bm25s, English stop words, no stemming).
- ``engramdb``: ``engine.recall(question, agent=conv, k=k)`` with default settings,
  one call per k as a user would make it. Recall records access and the score
  blends similarity with recency, importance and use: measured as users get it.
  Questions run in file order, so access counts build up as they would.
- ``engramdb-no-access``: the same with ``record_access=False`` (a fresh store).
- ``engramdb-sim-only``: a diagnostic, not a tuning: scoring weights for recency,
  importance and access set to 0; it should match ``dense``, which checks that
  any gap comes from the score blend and not from the index or the embeddings.

Session-level rankings for engramdb come from one extra recall per question with
k = the conversation's turn count and ``record_access=False``.

Writes ``benchmarks/results/locomo-*.json`` (the run record), ``locomo-*.md``, a
per-question file ``locomo-questions-*.json`` for studying misses, and a PNG.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    EmbeddingCache,
    add_common_args,
    markdown_table,
    scratch_dir,
    set_offline_env,
    write_record,
)
from locomo_data import (
    CATEGORIES,
    Conversation,
    Turn,
    evidence_recall,
    read_locomo,
    session_of,
)

SYSTEMS = ("dense", "bm25", "engramdb", "engramdb-no-access", "engramdb-sim-only")


def memory_text(turn: Turn) -> str:
    """A turn as this benchmark stores it: ``{speaker} said, "{text}" [shares {caption}]``."""
    return turn.render()


# -- metrics -----------------------------------------------------------------------------


def recall_turns(ranked: Sequence[str], evidence: Sequence[str], k: int) -> float:
    """Turn-level evidence recall@k: the share of evidence turns in the top ``k``."""
    return evidence_recall(ranked[:k], evidence)


def distinct_sessions(ranked: Sequence[str]) -> list[int]:
    return list(dict.fromkeys(session_of(d) for d in ranked))


def recall_sessions(ranked: Sequence[str], evidence: Sequence[str], k: int) -> float:
    """Session-level evidence recall@k: evidence sessions among the top ``k`` distinct ones."""
    wanted = list(dict.fromkeys(session_of(e) for e in evidence))
    return evidence_recall(distinct_sessions(ranked)[:k], wanted)


# -- systems -----------------------------------------------------------------------------


def rank_dense(conv: Conversation, cache: EmbeddingCache) -> list[list[str]]:
    docs = cache.embed([memory_text(t) for t in conv.turns])
    qs = cache.embed([q.question for q in conv.questions])
    ids = [t.dia_id for t in conv.turns]
    order = np.argsort(-(qs @ docs.T), axis=1, kind="stable")
    return [[ids[i] for i in row] for row in order]


def rank_bm25(conv: Conversation) -> list[list[str]]:
    import bm25s

    corpus = [memory_text(t) for t in conv.turns]
    retriever = bm25s.BM25()
    tokens = bm25s.tokenize(corpus, stopwords="en", show_progress=False)
    retriever.index(tokens, show_progress=False)
    ids = [t.dia_id for t in conv.turns]
    queries = bm25s.tokenize(
        [q.question for q in conv.questions], stopwords="en", return_ids=False, show_progress=False
    )
    out = []
    for tokens in queries:
        scores = retriever.get_scores(tokens) if tokens else np.zeros(len(ids))
        out.append([ids[i] for i in np.argsort(-scores, kind="stable")])
    return out


def ingest_engramdb(convs: Sequence[Conversation], path: Path) -> dict[str, float]:
    from engramdb import MemoryEngine

    t0 = time.perf_counter()
    n = 0
    with MemoryEngine.open(path) as engine:
        for conv in convs:
            items = [
                {
                    "text": memory_text(t),
                    "session": f"session_{t.session}",
                    "metadata": {"dia_id": t.dia_id, "speaker": t.speaker},
                    "created_at": s.date,
                }
                for s in conv.sessions
                for t in s.turns
            ]
            engine.add_many(items, agent=conv.sample_id)
            n += len(items)
    seconds = time.perf_counter() - t0
    return {"memories": n, "seconds": seconds, "per_second": n / seconds}


def run_engramdb(
    convs: Sequence[Conversation], path: Path, ks: Sequence[int], variant: str
) -> dict[str, list[dict[str, Any]]]:
    """Per conversation, per question: {k: ranked dia_ids} and the full ranking."""
    from engramdb import MemoryEngine
    from engramdb.config import ScoringWeights, Settings

    settings = Settings()
    if variant == "engramdb-sim-only":
        settings = Settings(weights=ScoringWeights(recency=0.0, importance=0.0, access=0.0))
    record = variant == "engramdb"
    out: dict[str, list[dict[str, Any]]] = {}
    with MemoryEngine.open(path, settings=settings) as engine:
        for conv in convs:
            rows = []
            for q in conv.questions:
                by_k = {}
                for k in ks:
                    hits = engine.recall(
                        q.question, agent=conv.sample_id, k=k, record_access=record
                    )
                    by_k[k] = [h.memory.metadata["dia_id"] for h in hits]
                full = engine.recall(
                    q.question, agent=conv.sample_id, k=len(conv.turns), record_access=False
                )
                rows.append({"by_k": by_k, "full": [h.memory.metadata["dia_id"] for h in full]})
            out[conv.sample_id] = rows
    return out


# -- the run -----------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("path", type=Path, help="LoCoMo-format JSON file")
    p.add_argument("--k", default="5,10,25", help="comma-separated k values")
    p.add_argument("--systems", default=",".join(SYSTEMS), help="comma-separated systems")
    p.add_argument("--conversations", type=int, help="only the first N conversations")
    add_common_args(p, cache=True, seed=False)
    p.add_argument("--no-plots", action="store_true")
    args = p.parse_args(argv)
    args.ks = sorted({int(x) for x in args.k.split(",") if x.strip()})
    args.system_list = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = sorted(set(args.system_list) - set(SYSTEMS))
    if unknown:
        p.error(f"unknown systems {unknown}; choose from {', '.join(SYSTEMS)}")
    return args


def evaluate(
    convs: Sequence[Conversation], args: argparse.Namespace
) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
    """(figures per system, per-question rows, timings)."""
    cache = EmbeddingCache(args.cache)  # the bundled model loads only on a miss
    ranked: dict[str, dict[str, list[dict[str, Any]]]] = {}
    timings: dict[str, Any] = {}
    for name in args.system_list:
        t0 = time.perf_counter()
        if name == "dense":
            ranked[name] = {c.sample_id: [{"full": r} for r in rank_dense(c, cache)] for c in convs}
        elif name == "bm25":
            ranked[name] = {c.sample_id: [{"full": r} for r in rank_bm25(c)] for c in convs}
        timings[name] = time.perf_counter() - t0
    engram = [s for s in args.system_list if s.startswith("engramdb")]
    if engram:
        with scratch_dir(args.work, "engramdb-locomo-") as tmp:
            pristine = Path(tmp) / "pristine"
            timings["engramdb_ingest"] = ingest_engramdb(convs, pristine)
            for name in engram:
                store = Path(tmp) / name
                shutil.copytree(pristine, store)  # each variant starts from the same state
                t0 = time.perf_counter()
                ranked[name] = run_engramdb(convs, store, args.ks, name)
                timings[name] = time.perf_counter() - t0
    return score(convs, ranked, args.ks), per_question(convs, ranked, args.ks), timings


def _ranking(row: dict[str, Any], k: int) -> list[str]:
    by_k = row.get("by_k")
    return by_k[k] if by_k else row["full"][:k]


def score(
    convs: Sequence[Conversation], ranked: dict[str, Any], ks: Sequence[int]
) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    for name, per_conv in ranked.items():
        turn: dict[int, list[float]] = {k: [] for k in ks}
        sess: dict[int, list[float]] = {k: [] for k in ks}
        cats: list[int] = []
        late: list[float] = []
        for conv in convs:
            n_sessions = max(t.session for t in conv.turns)
            for q, row in zip(conv.questions, per_conv[conv.sample_id], strict=True):
                cats.append(q.category)
                for k in ks:
                    turn[k].append(recall_turns(_ranking(row, k), q.evidence, k))
                    sess[k].append(recall_sessions(row["full"], q.evidence, k))
                top = _ranking(row, 10) if 10 in ks else row["full"][:10]
                late.append(float(np.mean([session_of(d) / n_sessions for d in top])))
        cat_arr = np.asarray(cats)
        fig: dict[str, Any] = {"turn": {}, "session": {}, "questions": len(cats)}
        for level, vals in (("turn", turn), ("session", sess)):
            for k in ks:
                arr = np.asarray(vals[k])
                fig[level][f"R@{k}"] = float(arr.mean())
                fig[level][f"R@{k}_by_category"] = {
                    CATEGORIES.get(int(c), str(c)): float(arr[cat_arr == c].mean())
                    for c in sorted(set(cats))
                }
        # Where in the conversation the top 10 come from (1.0 = the last session): a
        # recency-weighted score pulls this up compared with plain similarity.
        fig["top10_mean_relative_session"] = float(np.mean(late))
        figures[name] = fig
    return figures


def per_question(
    convs: Sequence[Conversation], ranked: dict[str, Any], ks: Sequence[int]
) -> list[dict[str, Any]]:
    rows = []
    kmax = max(ks)
    for conv in convs:
        for i, q in enumerate(conv.questions):
            row: dict[str, Any] = {
                "conversation": conv.sample_id,
                "index": i,
                "category": q.category,
                "question": q.question,
                "evidence": list(q.evidence),
            }
            for name, per_conv in ranked.items():
                r = per_conv[conv.sample_id][i]
                row[name] = {
                    "top": _ranking(r, kmax),
                    "turn": {f"R@{k}": recall_turns(_ranking(r, k), q.evidence, k) for k in ks},
                    "session": {f"R@{k}": recall_sessions(r["full"], q.evidence, k) for k in ks},
                }
            rows.append(row)
    return rows


def table(figures: dict[str, Any], ks: Sequence[int]) -> str:
    heads = ["system"] + [f"turn R@{k}" for k in ks] + [f"session R@{k}" for k in ks]
    rows = [
        [name] + [f["turn"][f"R@{k}"] for k in ks] + [f["session"][f"R@{k}"] for k in ks]
        for name, f in figures.items()
    ]
    out = markdown_table(heads, rows)
    k = 10 if 10 in ks else ks[0]
    cats = sorted({c for f in figures.values() for c in f["turn"][f"R@{k}_by_category"]})
    cat_rows = [
        [name, *(f["turn"][f"R@{k}_by_category"].get(c) for c in cats)]
        for name, f in figures.items()
    ]
    out += f"\nTurn-level R@{k} by category:\n\n" + markdown_table(["system", *cats], cat_rows)
    bias = [[name, f["top10_mean_relative_session"]] for name, f in figures.items()]
    out += "\nMean relative session of the top 10 (0 = first session, 1 = last):\n\n"
    out += markdown_table(["system", "position"], bias)
    return out


def plot(figures: dict[str, Any], ks: Sequence[int], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    width = 0.8 / max(len(figures), 1)
    for ax, level in zip(axes, ("turn", "session"), strict=True):
        for j, (name, f) in enumerate(figures.items()):
            xs = np.arange(len(ks)) + j * width
            ax.bar(xs, [f[level][f"R@{k}"] for k in ks], width, label=name)
        ax.set_xticks(np.arange(len(ks)) + 0.4 - width / 2, [f"R@{k}" for k in ks])
        ax.set_title(f"LoCoMo evidence recall, {level} level")
        ax.set_ylim(0, 1)
        ax.grid(True, axis="y", alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def main(argv: list[str] | None = None) -> Path:
    args = parse_args(argv)
    set_offline_env()
    t0 = time.perf_counter()
    convs = read_locomo(args.path, limit=args.conversations)
    figures, questions, timings = evaluate(convs, args)
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    qpath = args.out / f"locomo-questions-{stamp}.json"
    qpath.write_text(json.dumps(questions, indent=1))
    extra: dict[str, Any] = {"per_question_file": str(qpath), "timings_s": timings}
    if not args.no_plots:
        png = args.out / f"locomo-{stamp}.png"
        plot(figures, args.ks, png)
        extra["plot"] = str(png)
    params = {
        "path": str(args.path),
        "conversations": len(convs),
        "turns": sum(len(c.turns) for c in convs),
        "questions": sum(len(c.questions) for c in convs),
        "ks": args.ks,
        "systems": args.system_list,
        "model": "all-MiniLM-L6-v2 (bundled)",
        "render": '{speaker} said, "{text}" [shares {blip_caption}]',
        "seconds": round(time.perf_counter() - t0, 1),
    }
    path = write_record(
        "locomo",
        params=params,
        threads={"torch_threads": 2},
        figures={"systems": figures, **extra},
        table=table(figures, args.ks),
        out_dir=args.out,
    )
    print(path)
    return path


if __name__ == "__main__":
    main(sys.argv[1:])
