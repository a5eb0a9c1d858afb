"""Compression benchmark: how much smaller consolidation makes memory, and how much recall it keeps.

Usage:
    python benchmarks/compression.py PATH [--conversations N] [--copy-fraction 0.5]
        [--seed 0] [--budget 10] [--pool 60] [--policy FILE] [--scale 100k]
        [--threads 1] [--embedder minilm] [--cache DIR] [--out DIR] [--work DIR]
    python benchmarks/compression.py ../shared/data/locomo/locomo-dev.json

PATH is a LoCoMo-format JSON file, read at run time (LoCoMo is CC BY-NC 4.0 and is
not shipped). Each conversation becomes one agent whose memory holds:

- every turn as an episodic memory, ``{speaker} said, "{text}"`` (plus
  `` [shares: {caption}]`` for a shared image), with its session, speaker and
  ``dia_id`` as metadata and its session's date as ``created_at``;
- every ``observation`` fact as a semantic memory pointing at its evidence turns;
- a second, lightly reworded copy of a seeded fraction of the turns (synonyms,
  contractions, a filler word, punctuation, casing): a duplicate-heavy log.

The store is consolidated once with the default policy (or ``--policy``). Reported,
before and after: active memories; bytes of the agent's rows, of a snapshot
(``engine.export_snapshot``, all rows and active rows only) and of the store on
disk (compacted); the time to consolidate; and LoCoMo turn-level recall at an
equal reading budget: recall walks the ranked hits and reads each memory at the
cost of the distinct turns it stands for (itself, or through ``source_ids`` its
sources; an observation stands for its evidence turns), skipping one that does
not fit, until ``--budget`` turns are read; recall is the fraction of a
question's evidence turns read, averaged over questions (none: 1.0). A second
pass checks idempotence. Also: how many reworded copies were merged with their
own turn and how many merges joined different turns (the near-duplicate
threshold's error on real text), and example gists.

A scale run then consolidates ``--scale`` synthetic memories (one agent, seeded
clustered vectors, a fifth of them near-copies; hashing embedder, vectors given).

Embeddings come from the bundled all-MiniLM-L6-v2, cached per text under
``benchmarks/cache/``; FAISS and BLAS run on ``--threads`` threads. Writes
``benchmarks/results/compression-*.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    EmbeddingCache,
    add_common_args,
    markdown_table,
    parse_size,
    scratch_dir,
    set_threads,
    synthetic_vectors,
    write_record,
)
from locomo_data import CATEGORIES, evidence_recall
from locomo_log import Conversation, load_locomo

# -- measuring -------------------------------------------------------------------------------


def turn_map(memories: Sequence[Any]) -> Callable[[str], frozenset[str]]:
    """The turns each memory stands for: its own (``metadata['turns']``), and its sources'."""
    by_id = {m.id: m for m in memories}
    memo: dict[str, frozenset[str]] = {}

    def turns(mid: str) -> frozenset[str]:
        if mid not in memo:
            m = by_id.get(mid)
            own = set(m.metadata.get("turns", [])) if m is not None else set()
            if m is not None and m.source_ids:
                own = set()  # a consolidated memory stands for exactly its sources' turns
                for src in m.source_ids:
                    own |= turns(src)
            memo[mid] = frozenset(own)
        return memo[mid]

    return turns


def budget_recall(
    ranked: Sequence[str],
    evidence: Sequence[str],
    turns: Callable[[str], frozenset[str]],
    budget: int,
) -> tuple[float, int]:
    """Recall of ``evidence`` reading ranked memories until ``budget`` turns are read.

    Each memory costs as many turns as it stands for; one that does not fit in what
    is left of the budget is skipped. Returns (recall, memories read).
    """
    if not evidence:
        return 1.0, 0
    read, found, used = 0, set(), 0
    for mid in ranked:
        cost = len(turns(mid))
        if cost == 0 or read + cost > budget:
            continue
        read += cost
        used += 1
        found |= turns(mid)
        if read >= budget:
            break
    return evidence_recall(found, evidence), used


def evaluate(
    engine: Any, conv: Conversation, qvecs: np.ndarray, *, budget: int, pool: int
) -> dict[str, Any]:
    """LoCoMo turn-level recall@budget at an equal reading budget, overall and by category."""
    memories = engine.list(agent=conv.name, limit=None, include_archived=True)
    turns = turn_map(memories)
    scores: list[float] = []
    by_cat: dict[str, list[float]] = {}
    read: list[int] = []
    for q, vec in zip(conv.questions, qvecs, strict=True):
        hits = engine.recall(vec, agent=conv.name, k=pool, record_access=False)
        r, used = budget_recall([h.memory.id for h in hits], q["evidence"], turns, budget)
        scores.append(r)
        read.append(used)
        by_cat.setdefault(CATEGORIES.get(q["category"], str(q["category"])), []).append(r)
    return {
        "recall": float(np.mean(scores)) if scores else float("nan"),
        "questions": len(scores),
        "memories_read": float(np.mean(read)) if read else 0.0,
        "by_category": {c: float(np.mean(v)) for c, v in sorted(by_cat.items())},
        "sum": float(np.sum(scores)),
    }


def sizes(engine: Any, agent: str, workdir: Path) -> dict[str, int]:
    """Arrow bytes of the agent's rows, snapshot bytes (all rows and active only), disk bytes."""
    rows = engine.table.scan_agent(agent)
    active = rows.filter(pc.equal(rows.column("status"), "active"))
    out = {"rows_bytes": int(rows.nbytes), "active_rows_bytes": int(active.nbytes)}
    try:
        import engramdb.snapshots.io  # noqa: F401

        for name, archived in (("snapshot_bytes", True), ("active_snapshot_bytes", False)):
            path = workdir / f"{agent}-{name}.engram"
            info = engine.export_snapshot(path, agent=agent, include_archived=archived)
            out[name] = int(info.bytes)
            path.unlink()
        out["snapshot_method"] = "export_snapshot"  # type: ignore[assignment]
    except ModuleNotFoundError:
        for name, table in (("snapshot_bytes", rows), ("active_snapshot_bytes", active)):
            sink = pa.BufferOutputStream()
            opts = pa.ipc.IpcWriteOptions(compression="zstd")
            with pa.ipc.new_file(sink, table.schema, options=opts) as writer:
                writer.write_table(table)
            out[name] = int(sink.getvalue().size)
        out["snapshot_method"] = "arrow-ipc-zstd"  # type: ignore[assignment]
    with warnings.catch_warnings():  # no other process uses this scratch store
        warnings.simplefilter("ignore", UserWarning)
        engine.table.table.optimize(cleanup_older_than=timedelta(0), delete_unverified=True)
    lance = engine.path / "lance"
    out["disk_bytes"] = sum(p.stat().st_size for p in lance.rglob("*") if p.is_file())
    return out


def run_conversation(
    conv: Conversation, cache: EmbeddingCache, args: argparse.Namespace, workdir: Path, policy: Any
) -> dict[str, Any]:
    from engramdb import MemoryEngine, Settings

    vectors = cache.embed([it["text"] for it in conv.items])
    qvecs = cache.embed([q["question"] for q in conv.questions])
    items = [{**it, "vector": v} for it, v in zip(conv.items, vectors, strict=True)]
    store = workdir / conv.name
    settings = Settings(threads=args.threads)
    with MemoryEngine.open(store, embedder=cache.embedder, settings=settings) as engine:
        engine.add_many(items, agent=conv.name)
        before = evaluate(engine, conv, qvecs, budget=args.budget, pool=args.pool)
        size_before = sizes(engine, conv.name, workdir)
        start = time.perf_counter()
        report = engine.consolidate(agent=conv.name, policy=policy)
        seconds = time.perf_counter() - start
        after = evaluate(engine, conv, qvecs, budget=args.budget, pool=args.pool)
        size_after = sizes(engine, conv.name, workdir)
        again = engine.consolidate(agent=conv.name, policy=policy)
        agent = report[conv.name]
        stored = engine.list(agent=conv.name, limit=None, include_archived=True)
        gists = sorted(
            (m for m in stored if m.metadata.get("consolidated") == "gist"),
            key=lambda m: (m.created_at, m.id),
        )
        picks = np.linspace(0, len(gists) - 1, min(args.examples, len(gists))).astype(int)
        examples = [
            {"members": len(gists[i].source_ids), "text": gists[i].text} for i in sorted(set(picks))
        ]
    return {
        "agent": conv.name,
        "memories": len(conv.items),
        "active_before": agent.active_before,
        "active_after": agent.active_after,
        "report": agent.to_dict(),
        "second_pass_changed": again.changed,
        "seconds": seconds,
        "recall_before": before,
        "recall_after": after,
        "size_before": size_before,
        "size_after": size_after,
        "gist_examples": examples,
        "dedup": dedup_check(stored),
    }


def dedup_check(memories: Sequence[Any]) -> dict[str, Any]:
    """How the duplicate stage did on this workload, where the truth is known.

    ``copies_merged``: share of the reworded copies merged with their own turn.
    ``merges``: duplicate groups written; ``mixed_merges``: those that joined memories
    standing for different turns (natural near-duplicates, or mistakes).
    """
    by_id = {m.id: m for m in memories}
    turns = turn_map(memories)
    merges = [m for m in memories if m.metadata.get("consolidated") == "merge"]
    group_of = {s: m.id for m in merges for s in m.source_ids}
    original = {
        m.metadata["dia_id"]: m.id
        for m in memories
        if m.kind.value == "episodic" and "dia_id" in m.metadata and not m.metadata.get("copy")
    }
    copies = [m for m in memories if m.metadata.get("copy") and not m.source_ids]
    caught = sum(
        1
        for c in copies
        if c.id in group_of
        and group_of.get(original.get(c.metadata["dia_id"], "")) == group_of[c.id]
    )
    mixed = [m for m in merges if len(turns(m.id)) > 1]
    return {
        "copies": len(copies),
        "copies_merged": caught / len(copies) if copies else float("nan"),
        "merges": len(merges),
        "mixed_merges": len(mixed),
        "mixed_examples": [
            [by_id[s].text for s in m.source_ids if s in by_id][:3] for m in mixed[:5]
        ],
    }


def scale_run(n: int, *, seed: int, threads: int, workdir: Path, policy: Any) -> dict[str, Any]:
    """Consolidate ``n`` synthetic memories of one agent (a fifth of them near-copies)."""
    from engramdb import MemoryEngine, Settings

    rng = np.random.default_rng(seed)
    n_copies = n // 5
    base = synthetic_vectors(n - n_copies, seed=seed)
    src = rng.integers(0, len(base), n_copies)
    noise = rng.standard_normal((n_copies, base.shape[1])).astype(np.float32) * 0.01
    copies = base[src] + noise
    copies /= np.linalg.norm(copies, axis=1, keepdims=True)
    vectors = np.vstack([base, copies])
    texts = [f"note {i}: item {i % 997} of topic {i % 89}" for i in range(len(base))]
    texts += [f"Note {s}: item {s % 997} of topic {s % 89}." for s in src]
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    spread = rng.integers(0, 365 * 86400, n)
    items = [
        {"text": t, "created_at": t0 + timedelta(seconds=int(s)), "vector": v}
        for t, s, v in zip(texts, spread, vectors, strict=True)
    ]
    settings = Settings(threads=threads)
    with MemoryEngine.open(
        workdir / "scale", embedder=f"hashing-{vectors.shape[1]}", settings=settings
    ) as engine:
        for i in range(0, n, 20_000):
            engine.add_many(items[i : i + 20_000], agent="scale")
        start = time.perf_counter()
        report = engine.consolidate(agent="scale", policy=policy)
        seconds = time.perf_counter() - start
    agent = report["scale"]
    return {
        "memories": n,
        "seconds": seconds,
        "active_after": agent.active_after,
        "report": agent.to_dict(),
    }


# -- the run ---------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("path", type=Path, help="a LoCoMo-format JSON file")
    parser.add_argument("--conversations", type=int, default=None, help="only the first N")
    parser.add_argument("--copy-fraction", type=float, default=0.5)
    parser.add_argument("--budget", type=int, default=10, help="turns read per question")
    parser.add_argument("--pool", type=int, default=60, help="hits fetched per question")
    parser.add_argument("--policy", type=Path, default=None, help="JSON or TOML policy file")
    parser.add_argument(
        "--scale",
        type=parse_size,
        default=100_000,
        help="synthetic memories for the scale run (0: skip)",
    )
    parser.add_argument("--embedder", default="minilm", help="'minilm' or 'hashing' (tests)")
    parser.add_argument("--examples", type=int, default=3, help="gists shown per conversation")
    add_common_args(parser, threads=1, threads_help="FAISS and BLAS threads", cache=True)
    return parser.parse_args(argv)


class LazyMiniLM:
    """The bundled model behind the engine's embedder protocol, loaded on first use.

    Memories arrive with cached vectors, so a run that hits the cache never loads it.
    """

    name = "all-MiniLM-L6-v2"
    dim = 384
    normalized = True
    threads = 2

    def __init__(self) -> None:
        self._model: Any = None

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if self._model is None:
            from engramdb.embeddings import SentenceTransformerEmbedder

            self._model = SentenceTransformerEmbedder(threads=self.threads)
        return self._model.embed(texts)


def _embedder(name: str) -> Any:
    if name == "minilm":
        return LazyMiniLM()
    from engramdb.embeddings import resolve_embedder

    return resolve_embedder(name)


def totals(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    def total(part: str, key: str) -> int:
        return sum(int(r[part][key]) for r in rows)

    n_q = sum(r["recall_before"]["questions"] for r in rows)
    before = sum(r["recall_before"]["sum"] for r in rows) / max(n_q, 1)
    after = sum(r["recall_after"]["sum"] for r in rows) / max(n_q, 1)
    active_before = sum(r["active_before"] for r in rows)
    active_after = sum(r["active_after"] for r in rows)
    return {
        "memories": sum(r["memories"] for r in rows),
        "active_before": active_before,
        "active_after": active_after,
        "active_reduction": 1 - active_after / max(active_before, 1),
        "recall_before": before,
        "recall_after": after,
        "recall_kept": after / before if before else float("nan"),
        "seconds": sum(r["seconds"] for r in rows),
        "questions": n_q,
        **{
            f"{k}_{when}": total(f"size_{when}", k)
            for k in (
                "rows_bytes",
                "active_rows_bytes",
                "snapshot_bytes",
                "active_snapshot_bytes",
                "disk_bytes",
            )
            for when in ("before", "after")
        },
    }


def render(
    rows: Sequence[dict[str, Any]],
    tot: dict[str, Any],
    scale: dict[str, Any] | None,
    args: argparse.Namespace,
) -> str:
    headers = [
        "agent",
        "memories",
        "active before",
        "active after",
        "reduction",
        "snapshot KB before",
        "snapshot KB after",
        "active snap. KB after",
        "disk KB before",
        "disk KB after",
        f"R@{args.budget} before",
        f"R@{args.budget} after",
        "kept",
        "seconds",
    ]

    def line(name: str, r: dict[str, Any]) -> list[object]:
        return [
            name,
            r["memories"],
            r["active_before"],
            r["active_after"],
            f"{1 - r['active_after'] / max(r['active_before'], 1):.1%}",
            r["snapshot_bytes_before"] / 1024,
            r["snapshot_bytes_after"] / 1024,
            r["active_snapshot_bytes_after"] / 1024,
            r["disk_bytes_before"] / 1024,
            r["disk_bytes_after"] / 1024,
            r["recall_before"],
            r["recall_after"],
            f"{r['recall_after'] / r['recall_before']:.1%}" if r["recall_before"] else "-",
            r["seconds"],
        ]

    body = []
    for r in rows:
        flat = {
            **r,
            "recall_before": r["recall_before"]["recall"],
            "recall_after": r["recall_after"]["recall"],
            **{f"{k}_before": v for k, v in r["size_before"].items()},
            **{f"{k}_after": v for k, v in r["size_after"].items()},
        }
        body.append(line(r["agent"], flat))
    body.append(line("**all**", tot))
    out = [markdown_table(headers, body)]
    out.append(
        f"\nRecall is LoCoMo turn-level recall at an equal reading budget of {args.budget} turns "
        "(a memory costs the distinct turns it stands for; one that does not fit is skipped), "
        "averaged over all questions. Snapshot bytes: "
        f"{rows[0]['size_before'].get('snapshot_method', '-') if rows else '-'}.\n"
    )
    copies = sum(r["dedup"]["copies"] for r in rows)
    caught = sum(r["dedup"]["copies_merged"] * r["dedup"]["copies"] for r in rows)
    merges = sum(r["dedup"]["merges"] for r in rows)
    mixed = sum(r["dedup"]["mixed_merges"] for r in rows)
    out.append(
        f"\nDuplicates: {caught / max(copies, 1):.1%} of {copies} reworded copies merged with "
        f"their turn; {mixed} of {merges} merges joined memories of different turns. "
        f"Second pass changed anything: {any(r['second_pass_changed'] for r in rows)}.\n"
    )
    if scale:
        out.append(
            f"\nScale: {scale['memories']:,} synthetic memories consolidated in "
            f"{scale['seconds']:.1f} s ({scale['report']['active_before']:,} -> "
            f"{scale['active_after']:,} active).\n"
        )
    examples = [(r["agent"], g) for r in rows[:1] for g in r["gist_examples"]]
    if examples:
        out.append("\n## Example gists\n")
        for agent, g in examples:
            quoted = "\n".join(f"> {line}" for line in g["text"].splitlines())
            out.append(f"\n{agent}, a gist of {g['members']} turns:\n\n{quoted}\n")
    return "".join(out)


def main(argv: list[str] | None = None) -> Path:
    args = parse_args(argv)
    threads = {**set_threads(args.threads), "torch": LazyMiniLM.threads}
    from engramdb.consolidation import ConsolidationPolicy

    policy = ConsolidationPolicy.from_file(args.policy) if args.policy else ConsolidationPolicy()
    embedder = _embedder(args.embedder)
    cache = EmbeddingCache(args.cache, embedder)
    convs = load_locomo(
        args.path, copy_fraction=args.copy_fraction, seed=args.seed, limit=args.conversations
    )
    rows = []
    with scratch_dir(args.work, "engramdb-compression-") as tmp:
        for conv in convs:
            row = run_conversation(conv, cache, args, Path(tmp), policy)
            rows.append(row)
            print(
                f"{conv.name}: active {row['active_before']} -> {row['active_after']}, "
                f"R@{args.budget} {row['recall_before']['recall']:.3f} -> "
                f"{row['recall_after']['recall']:.3f}, {row['seconds']:.2f} s",
                flush=True,
            )
        scale = None
        if args.scale:
            scale = scale_run(
                args.scale, seed=args.seed, threads=args.threads, workdir=Path(tmp), policy=policy
            )
            print(f"scale: {args.scale} memories in {scale['seconds']:.1f} s", flush=True)
    tot = totals(
        [{**r, **{f"size_{w}": r[f"size_{w}"] for w in ("before", "after")}} for r in rows]
    )
    figures = {"total": tot, "conversations": rows, "scale": scale}
    params = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    params["policy"] = policy.model_dump(mode="json")
    path = write_record(
        "compression",
        params=params,
        threads=threads,
        figures=figures,
        table=render(rows, tot, scale, args),
        out_dir=args.out,
    )
    print(f"wrote {path}")
    return path


if __name__ == "__main__":
    main()
