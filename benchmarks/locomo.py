"""Retrieval quality on LoCoMo: does recall find the turns that hold a question's evidence?

Usage:
    python benchmarks/locomo.py PATH [--k 5,10,25] [--systems dense,bm25,engramdb,...]
                                     [--conversations N] [--out DIR] [--cache DIR] [--work DIR]
    python benchmarks/locomo.py ../shared/data/locomo/locomo-dev.json
    python benchmarks/locomo.py ../shared/data/locomo/locomo-dev.json --folds   # + selection

PATH is a LoCoMo-format JSON file (a list of conversations with ``conversation``
and ``qa``). The data is not shipped with engramdb (LoCoMo is CC BY-NC 4.0): point
the script at a copy.

Each conversation is one agent; each turn one episodic memory, rendered
``{speaker} said, "{text}"`` (plus `` [shares {caption}]`` when the turn shared an
image), with its session (``session_N``), speaker and ``dia_id`` as metadata and its
session's date plus one second per turn before it as ``created_at`` (so that a
session's turns are ordered by time, which the lexical context follows). For every
question and k in (5, 10, 25), recall@k is the fraction of the question's evidence
turns (ids matched with ``D\\d+:\\d+``) found in the top k (questions without
evidence count as 1.0), averaged over questions, overall and per category; at turn
level, and at session level (the share of the evidence's sessions among the k
sessions returned).

Systems, all in one run on the same rendered turns:

- ``dense``: exact cosine over turns with the bundled all-MiniLM-L6-v2 (numpy).
- ``bm25``: BM25 over turns (bm25s, English stop words, no stemming).
- ``bm25-context``: the contextual BM25 baseline: the same bm25s over each turn with
  the texts of the two previous turns of its session appended.
- ``engramdb``: ``engine.recall(question, agent=conv, k=k)`` with default settings
  (``mode="hybrid"``), one call per k, and ``group_by="session"`` one call per k, as a
  user would make them. Recall records access and the score blends relevance with
  recency, importance and use: measured as users get it. Questions run in file order,
  so access counts build up as they would.
- ``engramdb-no-access``: the same hybrid recall with ``record_access=False``.
- ``engramdb-dense``, ``engramdb-lexical``: ``mode="dense"`` and ``mode="lexical"``,
  with ``record_access=False``.
- ``engramdb-sim-only``: a diagnostic, not a tuning: ``mode="dense"`` with the scoring
  weights for recency, importance and access set to 0; it should match ``dense``.

The quality systems (all but ``engramdb``) pass ``record_access=False``: access
counts change scores between calls, so only then is a ranking a function of the
question alone, and the turn ranking for every k is the prefix of one recall at the
largest k (checked on the first questions of each conversation; the record keeps the
count). Session rankings are not prefixes of each other: a larger k widens the
candidate pool, which moves the min-max normalisation, so ``group_by="session"`` is
called once per k. For the baselines the sessions are the top-k distinct sessions of
the ranked turns.

``--folds`` adds leave-one-conversation-out selection of the hybrid weights and an
ablation through the engine (``locomo_folds.py``).

Writes ``benchmarks/results/locomo-*.json`` (the run record), ``locomo-*.md``, a
per-question file ``locomo-questions-*.json`` for studying misses, and a PNG.
"""

from __future__ import annotations

import argparse
import functools
import json
import shutil
import sys
import time
from collections.abc import Sequence
from datetime import timedelta
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

SYSTEMS = (
    "dense",
    "bm25",
    "bm25-context",
    "engramdb",
    "engramdb-no-access",
    "engramdb-dense",
    "engramdb-lexical",
    "engramdb-sim-only",
)
ENGINE_MODES = {
    "engramdb": "hybrid",
    "engramdb-no-access": "hybrid",
    "engramdb-dense": "dense",
    "engramdb-lexical": "lexical",
    "engramdb-sim-only": "dense",
}
CONTEXT_TURNS = 2
"""Previous turns of the session appended to a turn for ``bm25-context`` (as the engine)."""
PREFIX_CHECKS = 10
"""Questions per conversation on which a smaller k is checked to be the prefix of k max."""


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
    return recall_session_list(distinct_sessions(ranked), evidence, k)


def recall_session_list(sessions: Sequence[int], evidence: Sequence[str], k: int) -> float:
    """Session-level evidence recall@k of a ranked list of session numbers."""
    wanted = list(dict.fromkeys(session_of(e) for e in evidence))
    return evidence_recall(sessions[:k], wanted)


Row = dict[str, dict[int, list[Any]]]
"""One question's rankings: ``{"turn": {k: dia_ids}, "session": {k: session numbers}}``."""


def rows_from_ranking(ranked: Sequence[Sequence[str]], ks: Sequence[int]) -> list[Row]:
    """Rows of a baseline that ranks every turn: top-k turns, top-k distinct sessions."""
    return [
        {
            "turn": {k: list(r[:k]) for k in ks},
            "session": {k: distinct_sessions(r)[:k] for k in ks},
        }
        for r in ranked
    ]


# -- baselines ---------------------------------------------------------------------------


def rank_dense(conv: Conversation, cache: EmbeddingCache) -> list[list[str]]:
    docs = cache.embed([memory_text(t) for t in conv.turns])
    qs = cache.embed([q.question for q in conv.questions])
    ids = [t.dia_id for t in conv.turns]
    order = np.argsort(-(qs @ docs.T), axis=1, kind="stable")
    return [[ids[i] for i in row] for row in order]


def with_context(conv: Conversation, turns: int = CONTEXT_TURNS) -> list[str]:
    """Each turn's text followed by the texts of the ``turns`` previous turns of its session."""
    out = []
    for s in conv.sessions:
        texts = [memory_text(t) for t in s.turns]
        out += [" ".join([x, *texts[max(0, i - turns) : i]]) for i, x in enumerate(texts)]
    return out


def rank_bm25(conv: Conversation, *, context: bool = False) -> list[list[str]]:
    import bm25s

    corpus = with_context(conv) if context else [memory_text(t) for t in conv.turns]
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


# -- engramdb ----------------------------------------------------------------------------


@functools.cache
def shared_embedder() -> Any:
    """engramdb's bundled embedder behind one cache for the whole run: every store opened
    with it (one per conversation, reopened per configuration) embeds each text once."""
    from engramdb.embeddings import SentenceTransformerEmbedder
    from engramdb.embeddings.base import CachedEmbedder

    return CachedEmbedder(SentenceTransformerEmbedder(), capacity=1_000_000)


def ingest_engramdb(convs: Sequence[Conversation], root: Path) -> dict[str, Any]:
    """One store per conversation (its one agent) under ``root``; returns timings."""
    from engramdb import MemoryEngine

    t0 = time.perf_counter()
    n = 0
    for conv in convs:
        items = [
            {
                "text": memory_text(t),
                "session": f"session_{t.session}",
                "metadata": {"dia_id": t.dia_id, "speaker": t.speaker},
                # One second apart: the turns of a session keep their order by time, the
                # order the lexical context follows (memories dated alike fall back to
                # their ids, which need not follow the order they were added in).
                "created_at": s.date + timedelta(seconds=i),
            }
            for s in conv.sessions
            for i, t in enumerate(s.turns)
        ]
        with MemoryEngine.open(root / conv.sample_id, embedder=shared_embedder()) as engine:
            engine.add_many(items, agent=conv.sample_id)
        n += len(items)
    seconds = time.perf_counter() - t0
    return {"memories": n, "seconds": seconds, "per_second": n / seconds}


def open_store(root: Path, conv: Conversation, settings: Any, *, writable: bool = False) -> Any:
    """A conversation's store; read-only unless the system records access."""
    from engramdb import MemoryEngine

    return MemoryEngine.open(
        root / conv.sample_id,
        embedder=shared_embedder(),
        settings=settings,
        read_only=not writable,
    )


def engine_rows(
    engine: Any,
    conv: Conversation,
    ks: Sequence[int],
    *,
    mode: str,
    record: bool = False,
    check: int = 0,
) -> tuple[list[Row], int]:
    """Each question's turn and session rankings from one engine; and prefix mismatches.

    Without ``record``, one turn recall at the largest k serves every k, and the first
    ``check`` questions are also asked at each smaller k to test that this holds.
    Sessions: one ``group_by="session"`` recall per k.
    """
    agent, kmax = conv.sample_id, max(ks)

    def turns(question: str, k: int) -> list[str]:
        hits = engine.recall(question, agent=agent, k=k, mode=mode, record_access=record)
        return [h.memory.metadata["dia_id"] for h in hits]

    def sessions(question: str, k: int) -> list[int]:
        hits = engine.recall(
            question, agent=agent, k=k, mode=mode, group_by="session", record_access=record
        )
        return [int(str(h.group).removeprefix("session_")) for h in hits]

    rows: list[Row] = []
    mismatches = 0
    for i, q in enumerate(conv.questions):
        if record:  # as a user: one call per k, each counted
            by_k = {k: turns(q.question, k) for k in ks}
        else:
            top = turns(q.question, kmax)
            by_k = {k: top[:k] for k in ks}
            if i < check:
                mismatches += sum(turns(q.question, k) != by_k[k] for k in ks if k < kmax)
        rows.append({"turn": by_k, "session": {k: sessions(q.question, k) for k in ks}})
    return rows, mismatches


def run_engramdb(
    convs: Sequence[Conversation], root: Path, ks: Sequence[int], variant: str
) -> tuple[dict[str, list[Row]], int]:
    """Per conversation, per question rows of one engramdb system; and prefix mismatches."""
    from engramdb.config import ScoringWeights, Settings

    settings = Settings()
    if variant == "engramdb-sim-only":
        settings = Settings(weights=ScoringWeights(recency=0.0, importance=0.0, access=0.0))
    record = variant == "engramdb"
    out: dict[str, list[Row]] = {}
    mismatches = 0
    for conv in convs:
        with open_store(root, conv, settings, writable=record) as engine:
            rows, bad = engine_rows(
                engine, conv, ks, mode=ENGINE_MODES[variant], record=record, check=PREFIX_CHECKS
            )
        out[conv.sample_id] = rows
        mismatches += bad
    return out, mismatches


# -- the run -----------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("path", type=Path, help="LoCoMo-format JSON file")
    p.add_argument("--k", default="5,10,25", help="comma-separated k values")
    p.add_argument("--systems", default=",".join(SYSTEMS), help="comma-separated systems")
    p.add_argument("--conversations", type=int, help="only the first N conversations")
    p.add_argument(
        "--folds",
        action="store_true",
        help="also leave-one-conversation-out selection and the ablation (locomo_folds.py)",
    )
    p.add_argument(
        "--grid",
        default="full",
        help="selection grid for --folds: 'full' or 'tiny' (smoke tests)",
    )
    add_common_args(p, cache=True, seed=False)
    p.add_argument("--no-plots", action="store_true")
    args = p.parse_args(argv)
    args.ks = sorted({int(x) for x in args.k.split(",") if x.strip()})
    args.system_list = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = sorted(set(args.system_list) - set(SYSTEMS))
    if unknown:
        p.error(f"unknown systems {unknown}; choose from {', '.join(SYSTEMS)}")
    if args.folds and 10 not in args.ks:
        p.error("--folds selects on R@10: include 10 in --k")
    return args


def evaluate(
    convs: Sequence[Conversation], args: argparse.Namespace, stores: Path | None
) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
    """(figures per system, per-question rows, timings and checks)."""
    cache = EmbeddingCache(args.cache)  # the bundled model loads only on a miss
    ranked: dict[str, dict[str, list[Row]]] = {}
    timings: dict[str, Any] = {}
    checks: dict[str, int] = {}
    for name in args.system_list:
        t0 = time.perf_counter()
        if name == "dense":
            ranked[name] = {
                c.sample_id: rows_from_ranking(rank_dense(c, cache), args.ks) for c in convs
            }
        elif name in ("bm25", "bm25-context"):
            ctx = name == "bm25-context"
            ranked[name] = {
                c.sample_id: rows_from_ranking(rank_bm25(c, context=ctx), args.ks) for c in convs
            }
        elif stores is not None:
            if name == "engramdb":  # it writes access counts: a copy of its own
                root = stores.parent / "engramdb-as-users"
                shutil.copytree(stores, root)
            else:
                root = stores
            ranked[name], mismatches = run_engramdb(convs, root, args.ks, name)
            if name != "engramdb":  # as users call it, every k is its own recall
                checks[name] = mismatches
        timings[name] = time.perf_counter() - t0
    figures = score(convs, ranked, args.ks)
    return figures, per_question(convs, ranked, args.ks), {"timings_s": timings, "prefix": checks}


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
                    turn[k].append(recall_turns(row["turn"][k], q.evidence, k))
                    sess[k].append(recall_session_list(row["session"][k], q.evidence, k))
                top = row["turn"][10] if 10 in ks else row["turn"][max(ks)][:10]
                late.append(float(np.mean([session_of(d) / n_sessions for d in top])))
        fig = summarise(turn, sess, cats, ks)
        # Where in the conversation the top 10 come from (1.0 = the last session): a
        # recency-weighted score pulls this up compared with plain similarity.
        fig["top10_mean_relative_session"] = float(np.mean(late))
        figures[name] = fig
    return figures


def summarise(
    turn: dict[int, list[float]], sess: dict[int, list[float]], cats: list[int], ks: Sequence[int]
) -> dict[str, Any]:
    """Mean recall@k per level, overall and by category, from per-question values."""
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
    return fig


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
                    "top": r["turn"][kmax],
                    "sessions": r["session"][kmax],
                    "turn": {f"R@{k}": recall_turns(r["turn"][k], q.evidence, k) for k in ks},
                    "session": {
                        f"R@{k}": recall_session_list(r["session"][k], q.evidence, k) for k in ks
                    },
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
    cats = sorted({c for f in figures.values() for c in f["turn"][f"R@{ks[0]}_by_category"]})
    for level in ("turn", "session"):
        for k in ks:
            cat_rows = [
                [name, *(f[level][f"R@{k}_by_category"].get(c) for c in cats)]
                for name, f in figures.items()
            ]
            out += f"\n{level.capitalize()}-level R@{k} by category:\n\n"
            out += markdown_table(["system", *cats], cat_rows)
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
    extra: dict[str, Any] = {}
    md_extra = ""
    engine_needed = args.folds or any(s.startswith("engramdb") for s in args.system_list)
    with scratch_dir(args.work, "engramdb-locomo-") as tmp:
        stores = Path(tmp) / "stores" if engine_needed else None
        if stores is not None:
            extra["engramdb_ingest"] = ingest_engramdb(convs, stores)
        figures, questions, checks = evaluate(convs, args, stores)
        if args.folds and stores is not None:
            # locomo_folds imports this module by name: let it find this one, not a copy.
            sys.modules.setdefault("locomo", sys.modules[__name__])
            import locomo_folds

            folds = locomo_folds.run(convs, stores, args.ks, grid=args.grid)
            extra["folds"] = folds
            md_extra = locomo_folds.tables(folds, args.ks)
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    qpath = args.out / f"locomo-questions-{stamp}.json"
    qpath.write_text(json.dumps(questions, indent=1))
    extra |= {"per_question_file": str(qpath), **checks}
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
        "folds": args.folds,
        "grid": args.grid if args.folds else None,
        "prefix_checks_per_conversation": PREFIX_CHECKS,
        "model": "all-MiniLM-L6-v2 (bundled)",
        "render": '{speaker} said, "{text}" [shares {blip_caption}]',
        "seconds": round(time.perf_counter() - t0, 1),
    }
    path = write_record(
        "locomo",
        params=params,
        threads={"torch_threads": 2},
        figures={"systems": figures, **extra},
        table=table(figures, args.ks) + md_extra,
        out_dir=args.out,
    )
    print(path)
    return path


if __name__ == "__main__":
    main(sys.argv[1:])
