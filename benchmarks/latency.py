"""Recall latency, throughput, recall@10 and memory: engramdb's indexes beside the peers.

Usage:
    python benchmarks/latency.py                       # default: 1k, 10k, 100k + real text
    python benchmarks/latency.py --sizes 1k,10k --systems engramdb-flat,faiss-flat
    python benchmarks/latency.py --million             # adds 1M (long; Chroma takes hours)
    python benchmarks/latency.py --sizes 100k --systems engramdb-lance --lance-compact
    python benchmarks/latency.py --locomo ../shared/data/locomo/locomo-dev.json
    python benchmarks/latency.py --sizes 300 --real-size 40 --queries 12 --in-process  # smoke
    python benchmarks/latency.py --targets --queries 300   # the recall-speed targets at 100k

For each data set (seeded synthetic vectors at each size, and a real-text set
embedded once with the bundled all-MiniLM-L6-v2 and cached under
``benchmarks/cache/``) and each system (engramdb with index flat, hnsw, ivf and
lance; raw FAISS with the same parameters; raw LanceDB brute force and IVF-PQ;
Chroma's embedded ``PersistentClient``), it measures:

- ingest: vectors in (bring-your-own-vector ``add_many`` for engramdb) until the
  first query can be answered. engramdb builds its in-memory index from the store
  on first recall, so its figure is ``add_many`` plus open and first recall.
- cold open: a fresh process opens the artefact and answers one query (import time
  reported apart); the OS page cache is warm, the process is not.
- latency p50/p95/p99 of single queries by vector (engramdb: the default
  ``record_access=True`` path and ``record_access=False``), and by text, which
  includes embedding the query with the bundled model (engramdb's embedding cache
  is off, so every recall by text embeds its query). engramdb's default recall by
  text is hybrid (lexical and dense); it is also timed in ``mode="hybrid"`` and
  ``mode="dense"`` side by side, query by query in alternating order, with the
  embedding (as users see it) and without it (the query embedded in advance: the
  search alone), and the hybrid/dense ratios of p50 and p95 are reported.
- batch throughput in queries/s (FAISS and Chroma search a matrix; engramdb has
  no batch recall, so a loop of recall; LanceDB a loop).
- recall@10 against exact inner-product search, and resident memory per stored
  vector (RSS after the first query minus RSS before opening).

Memory texts: engramdb indexes every memory's text lexically, so the synthetic
sets carry realistic texts beside their (synthetic) vectors: with ``--locomo``, the
LoCoMo turns repeated until n, every copy after the first reworded (synonyms,
contractions, fillers: ``locomo_log.reword``), each in a session of its
conversation's copy, and the LoCoMo questions as text queries; without it, seeded
generated sentences in sessions of 20, with generated questions. The real-text set's
memories have no session.

``--targets`` runs the recall-speed targets at 100k (``--sizes`` to change): engramdb
with ``index="auto"`` beside raw FAISS HNSW at the cheapest efSearch that reaches
the recall@10 engramdb reached (at least 0.95) against exact search on the same
queries (``faiss-hnsw-tuned``; also timed, for reference, at recall 0.95), on
two data sets: the clustered low-intrinsic-dimension vectors above and
high-intrinsic-dimension ones (``--highid``: 200 Gaussian clusters, noise 0.35);
Chroma on the first; recall by text against the bundled model's embedding plus
FAISS; hybrid against dense; resident memory per memory. It ends with a table of
the targets, each with its ratio and whether it is met. Resident memory is
measured with the embedding model already loaded (it is not per memory).

Every system runs in its own process, one after another, on the same vectors and
queries (``--in-process`` runs them all in one, for smoke tests: no isolation).
Query threads: 1, for FAISS and for torch when a query is embedded (engramdb
is given its bundled embedder with 1 thread: its default of 2 makes single-query
latency erratic on a busy machine, see the README); index builds: 2. Figures go to
``benchmarks/results/latency-*.json|md|png``.
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    DIM,
    EmbeddingCache,
    add_common_args,
    cached_highid,
    cached_synthetic,
    exact_topk,
    generated_questions,
    generated_sentences,
    markdown_table,
    parse_size,
    percentiles,
    recall_at_k,
    scratch_dir,
    set_offline_env,
    set_threads,
    timed,
    write_record,
)
from systems import (
    APPROXIMATE,
    FLOOR,
    TUNED_RECALL,
    VARIANTS,
    builder_of,
)

QUERY_THREADS = 1
THREADS = {"query_threads": QUERY_THREADS, "build_threads": 2, "torch_threads": QUERY_THREADS}
WORKER_TIMEOUT = 3 * 3600
TEXT_DEFAULT = ("engramdb-flat", "engramdb-hnsw", "faiss-flat", "faiss-hnsw")
TARGET_SYSTEMS = ("engramdb-auto", "faiss-hnsw-tuned", "chroma")
"""What ``--targets`` runs (Chroma on the low-intrinsic-dimension set only)."""
"""Timed by text by default: engramdb's automatic choices (flat below 20k memories,
HNSW above) and their floors. Text latency is embedding plus search, so the other
systems add little but a model load each; ``--text-systems all`` times them too."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--sizes", default=None, help="comma-separated sizes (1k, 10k, 1M); default 1k,10k,100k"
    )
    p.add_argument(
        "--targets",
        action="store_true",
        help="the recall-speed targets: engramdb-auto, faiss-hnsw-tuned and chroma at 100k "
        "on the low- and high-intrinsic-dimension sets, and a table of targets met",
    )
    p.add_argument(
        "--highid", action="store_true", help="add a high-intrinsic-dimension set at each size"
    )
    p.add_argument("--million", action="store_true", help="add the 1M size")
    p.add_argument("--systems", default=",".join(VARIANTS), help="comma-separated variants")
    p.add_argument("--queries", type=int, default=200, help="distinct vector queries")
    p.add_argument("--repeats", type=int, default=3, help="passes over the vector queries")
    p.add_argument("--text-queries", type=int, default=60, help="distinct text queries")
    p.add_argument(
        "--text-systems",
        default=",".join(TEXT_DEFAULT),
        help="variants timed by text ('all' for every one)",
    )
    p.add_argument("--warmup", type=int, default=10, help="untimed queries before timing")
    p.add_argument("--max-seconds", type=float, default=4.0, help="stop timing past this")
    p.add_argument("--batch", type=int, default=1000, help="memories per add_many call")
    p.add_argument("--real-size", type=int, default=3000, help="generated sentences (no --locomo)")
    p.add_argument("--locomo", type=Path, help="LoCoMo file: its turns are the real-text set")
    p.add_argument("--no-real", action="store_true", help="skip the real-text set")
    add_common_args(p, cache=True)
    p.add_argument(
        "--lance-compact",
        action="store_true",
        help="call engine.compact() after ingest, so index='lance' gets its IVF-PQ index",
    )
    p.add_argument("--no-plots", action="store_true")
    p.add_argument(
        "--in-process",
        action="store_true",
        help="run every job in this process: no isolation, so the figures are not "
        "comparable; for smoke tests and debugging",
    )
    p.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.targets:
        args.highid = True
        args.no_real = True
        if args.systems == ",".join(VARIANTS):
            args.systems = ",".join(TARGET_SYSTEMS)
        if args.text_systems == ",".join(TEXT_DEFAULT):
            args.text_systems = "engramdb-auto,faiss-hnsw-tuned"
    args.sizes = args.sizes or ("100k" if args.targets else "1k,10k,100k")
    args.size_list = [parse_size(s) for s in args.sizes.split(",") if s.strip()]
    if args.million and 1_000_000 not in args.size_list:
        args.size_list.append(1_000_000)
    args.variants = [v.strip() for v in args.systems.split(",") if v.strip()]
    args.text_variants = (
        args.variants
        if args.text_systems == "all"
        else [v.strip() for v in args.text_systems.split(",") if v.strip()]
    )
    unknown = sorted((set(args.variants) | set(args.text_variants)) - set(VARIANTS))
    if unknown:
        p.error(f"unknown systems {unknown}; choose from {', '.join(VARIANTS)}")
    return args


# -- data sets ------------------------------------------------------------------------------


def real_text(args: argparse.Namespace) -> tuple[list[str], list[str]]:
    """(memories, questions) of the real-text set: LoCoMo turns, or generated sentences."""
    if args.locomo:
        from locomo_data import read_locomo

        convs = read_locomo(args.locomo)
        texts = list(dict.fromkeys(t.render() for c in convs for t in c.turns))
        questions = list(dict.fromkeys(q.question for c in convs for q in c.questions))
        return texts, questions
    return generated_sentences(args.real_size, seed=args.seed), generated_questions(
        args.queries + args.text_queries + 2 * args.warmup, seed=args.seed + 1
    )


SESSION_SIZE = 20
"""Memories per session of the generated texts (LoCoMo sessions average about 20 turns)."""


def synthetic_texts(args: argparse.Namespace, n: int) -> tuple[list[str], list[str]]:
    """(texts, sessions) of ``n`` memories for a synthetic set (see the module docstring)."""
    if not args.locomo:
        texts = generated_sentences(n, seed=args.seed)
        return texts, [f"g{i // SESSION_SIZE}" for i in range(n)]
    import random

    from locomo_data import read_locomo
    from locomo_log import reword

    turns = [(c.sample_id, t) for c in read_locomo(args.locomo) for t in c.turns]
    texts, sessions = [], []
    for i in range(n):
        copy = i // len(turns)
        conv, turn = turns[i % len(turns)]
        rng = random.Random(f"{args.seed}:{copy}:{conv}:{turn.dia_id}")
        texts.append(turn.render(reword(turn.text, rng) if copy else None))
        sessions.append(f"c{copy}-{conv}-s{turn.session}")
    return texts, sessions


def text_questions(args: argparse.Namespace, n: int) -> list[str]:
    """Text queries for the synthetic sets: LoCoMo's questions, or generated ones."""
    if args.locomo:
        from locomo_data import read_locomo

        qs = list(dict.fromkeys(q.question for c in read_locomo(args.locomo) for q in c.questions))
        if len(qs) >= n:
            return qs[:n]
    return generated_questions(n, seed=args.seed + 2)


def prepare(args: argparse.Namespace, work: Path) -> list[dict[str, Any]]:
    """Write each data set's vectors, queries and ground truth to ``work``."""
    n_vec = args.queries + args.warmup
    n_text = args.text_queries + args.warmup
    questions = text_questions(args, n_text)
    sets = []
    for n in args.size_list:
        base = cached_synthetic(n, seed=args.seed, stream=0, cache_dir=args.cache)
        queries = np.array(cached_synthetic(n_vec, seed=args.seed, stream=1, cache_dir=args.cache))
        texts, sessions = synthetic_texts(args, n)
        sets.append(
            _write_set(work, f"synthetic-{n}", base, texts, queries, questions, n, sessions)
        )
        if args.highid:
            base = cached_highid(n, seed=args.seed, stream=0, cache_dir=args.cache)
            queries = np.array(cached_highid(n_vec, seed=args.seed, stream=1, cache_dir=args.cache))
            sets.append(
                _write_set(work, f"highid-{n}", base, texts, queries, questions, n, sessions)
            )
    if not args.no_real:
        texts, qs = real_text(args)
        cache = EmbeddingCache(args.cache)
        base = cache.embed(texts)
        vec_q, text_q = qs[:n_vec], qs[n_vec : n_vec + n_text]
        if len(text_q) < n_text:  # few questions: time text queries on generated ones
            text_q = generated_questions(n_text, seed=args.seed + 2)
        queries = cache.embed(vec_q)
        name = "locomo" if args.locomo else "generated"
        sets.append(_write_set(work, f"text-{name}", base, texts, queries, text_q, len(texts)))
    return sets


def _write_set(
    work: Path,
    name: str,
    base: np.ndarray,
    texts: list[str],
    queries: np.ndarray,
    text_queries: list[str],
    n: int,
    sessions: list[str] | None = None,
) -> dict[str, Any]:
    d = work / name
    d.mkdir(parents=True, exist_ok=True)
    (d / "sessions.json").write_text(json.dumps(sessions))
    np.save(d / "base.npy", np.asarray(base, dtype=np.float32))
    np.save(d / "queries.npy", queries.astype(np.float32))
    np.save(d / "truth.npy", exact_topk(base, queries, 10))
    (d / "texts.json").write_text(json.dumps(texts))
    (d / "text_queries.json").write_text(json.dumps(text_queries))
    return {"name": name, "n": n, "dir": str(d)}


# -- workers --------------------------------------------------------------------------------


def run_worker(spec: dict[str, Any], work: Path, *, in_process: bool = False) -> dict[str, Any]:
    """Run one ingest or query job in a fresh process (or, for ``--in-process``, in this
    one); return its figures."""
    spec_path = work / f"spec-{spec['role']}-{spec['name']}.json"
    out_path = spec_path.with_suffix(".out.json")
    spec["result"] = str(out_path)
    spec_path.write_text(json.dumps(spec))
    if in_process:
        # What earlier jobs loaded stays: keep it out of the workers' gc.collect() calls.
        gc.freeze()
        t0 = time.perf_counter()
        try:
            worker_main(spec_path)
        except Exception as exc:  # as a failing worker process: its row says why
            return {"error": f"{type(exc).__name__}: {exc}", "wall_s": time.perf_counter() - t0}
        return {**json.loads(out_path.read_text()), "wall_s": time.perf_counter() - t0}
    # For the libraries the worker loads before set_threads() runs (numpy's BLAS).
    env = dict(os.environ, OMP_NUM_THREADS=str(QUERY_THREADS))
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--worker", str(spec_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=WORKER_TIMEOUT,
        check=False,
    )
    wall = time.perf_counter() - t0
    if proc.returncode != 0 or not out_path.exists():
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        return {"error": f"exit {proc.returncode}: " + " | ".join(tail), "wall_s": wall}
    result: dict[str, Any] = json.loads(out_path.read_text())
    result["wall_s"] = wall
    return result


def worker_main(spec_path: Path) -> None:
    t_start = time.perf_counter()
    spec = json.loads(spec_path.read_text())
    set_threads(QUERY_THREADS)
    import systems

    d = Path(spec["dir"])
    base = np.load(d / "base.npy", mmap_mode="r")
    texts = json.loads((d / "texts.json").read_text())
    sessions = json.loads((d / "sessions.json").read_text())
    if spec["role"] == "ingest":
        # All builders of a data set in one process, one after another.
        result = {}
        for builder in spec["builders"]:
            try:
                result[builder] = systems.build(
                    builder,
                    base,
                    texts,
                    d / builder,
                    batch=spec["batch"],
                    lance_compact=spec["lance_compact"],
                    sessions=sessions,
                )
            except Exception as exc:  # a failing peer must not sink the others' figures
                result[builder] = {"error": f"{type(exc).__name__}: {exc}"}
    else:
        result = query_worker(spec, d, base, t_start)
    Path(spec["result"]).write_text(json.dumps(result, default=str))


def query_worker(spec: dict[str, Any], d: Path, base: np.ndarray, t_start: float) -> dict[str, Any]:
    import systems
    from common import anon_bytes, per_item, rss_bytes

    variant = spec["name"]
    queries = np.load(d / "queries.npy")
    truth = np.load(d / "truth.npy")
    text_queries = json.loads((d / "text_queries.json").read_text())
    warm, nq = spec["warmup"], len(queries) - spec["warmup"]
    artefact = d / systems.builder_of(variant)
    if variant.startswith("engramdb-"):
        artefact = systems.copy_artefact(artefact, d / f"copy-{variant}")

    def embed(text: str) -> np.ndarray:
        return query_model().embed([text])[0]

    systems.import_modules(variant)
    if variant.startswith("engramdb-"):
        # The model is per process, not per memory: loaded before the memory baseline,
        # as the harness's id -> row map is.
        systems.bundled_embedder(threads=1).embed(["warm up"])
        systems.row_numbers(artefact)
    import_s = time.perf_counter() - t_start
    gc.collect()
    rss0, anon0 = rss_bytes(), anon_bytes()
    # engramdb: every query before the default-path pass uses record_access=False, so
    # recall@10 measures the index on a clean state; access counts recorded by the
    # default path change later rankings (the score rewards use), measured apart.
    t0 = time.perf_counter()
    tune = None
    if variant == "faiss-hnsw-tuned":  # on the timed queries, where engramdb's recall is
        tune = (queries[warm:], truth[warm:], float(spec.get("tune_target") or TUNED_RECALL))
    system = systems.open_variant(variant, artefact, embed=embed, tune=tune)
    t_open = time.perf_counter() - t0
    quiet = system.quiet_search or system.search
    first = quiet(queries[0])
    t_cold = time.perf_counter() - t0
    gc.collect()
    rss1, anon1 = rss_bytes(), anon_bytes()
    out: dict[str, Any] = {
        "import_s": import_s,
        "open_s": t_open,
        "cold_first_query_s": t_cold,
        "first_query_hits": len(first),
        "rss_delta_bytes": rss1 - rss0,
        "bytes_per_memory": (rss1 - rss0) / spec["n"],
        # The heap alone: the RSS delta also counts file-backed pages (library code
        # and mapped files first touched by the build), not held per memory.
        "anon_bytes_per_memory": per_item(anon0, anon1, spec["n"]),
    }
    if system.info:
        out["info"] = system.info
    timed_q = queries[warm:]
    items = list(range(nq))
    cap = spec["max_seconds"]

    def recorded(fn: Any, found: dict[int, list[int]]) -> Any:
        def call(i: int) -> None:
            found[i] = fn(timed_q[i])

        return call

    for q in queries[1:warm]:
        quiet(q)
    found: dict[int, list[int]] = {}
    samples = timed(recorded(quiet, found), items, repeats=spec["repeats"], max_seconds=cap)
    out["recall_at_10"] = recall_of(found, truth[warm:])
    if system.quiet_search is not None:
        out["vector_no_access"] = percentiles(samples)
        found = {}
        samples = timed(
            recorded(system.search, found),
            items,
            repeats=spec["repeats"],
            max_seconds=cap,
        )
        out["recall_at_10_default_path"] = recall_of(found, truth[warm:])
    out["vector"] = percentiles(samples)
    info = system.info or {}
    if system.retune is not None and info.get("ef_search_at_base", info.get("ef_search")) != (
        info.get("ef_search")
    ):
        # The floor at the base recall target too (for reference beside the matched one).
        system.retune(info["ef_search_at_base"])
        found = {}
        samples = timed(
            recorded(system.search, found), items, repeats=spec["repeats"], max_seconds=cap
        )
        out["vector_at_base"] = percentiles(samples)
        out["recall_at_10_at_base"] = recall_of(found, truth[warm:])
        system.retune(info["ef_search"])
    if system.native_batch:
        t0 = time.perf_counter()
        system.search_batch(np.ascontiguousarray(timed_q))
        out["batch_qps"] = nq / (time.perf_counter() - t0)
    else:  # no batch API: a loop of single queries (time-capped like the passes above)
        t0 = time.perf_counter()
        done = len(timed(system.search, list(timed_q), max_seconds=cap / 3))
        out["batch_qps"] = done / (time.perf_counter() - t0)
    out["batch_native"] = system.native_batch
    if spec["text_queries"] <= 0:
        system.close()
        return out
    # Text: the first text query may load the model; it is timed apart, then the
    # warm-up and the timed queries are all distinct texts.
    t0 = time.perf_counter()
    system.search_text(text_queries[0])
    out["first_text_query_s"] = time.perf_counter() - t0
    text_warm = text_queries[1:warm]
    text_items = text_queries[warm : warm + spec["text_queries"]]
    samples = timed(system.search_text, text_items, warmup=text_warm, max_seconds=cap)
    out["text"] = percentiles(samples)
    if variant == "engramdb-auto":  # before text_modes, which primes the embeddings
        target = max(TUNED_RECALL, out["recall_at_10"])
        artefact = d / builder_of("faiss-hnsw")
        tune = (queries[warm:], truth[warm:], target)
        floor = text_floor(system, artefact, tune, text_warm, text_items)
        if floor is not None:
            out["text_floor"] = floor
    if system.search_text_mode is not None and system.prime is not None:
        out["text_modes"] = text_modes(system, text_warm, text_items)
    system.close()
    return out


def text_floor(
    system: Any,
    artefact: Path,
    tune: tuple[np.ndarray, np.ndarray, float],
    warm: list[str],
    items: list[str],
) -> dict[str, Any] | None:
    """Recall by text against its floor in this process: the bundled model's query
    embedding plus raw FAISS HNSW (the same graph as ``faiss-hnsw-tuned``, at the
    cheapest efSearch reaching the recall@10 of ``tune``: queries, their exact top
    10, the target), text by text in alternating order.

    The floor's own process runs minutes apart from engramdb's, and on a shared
    machine the model's time moves more between them than the search adds; here
    both see the same moments. None when the FAISS artefact was not built.
    """
    import faiss
    from systems import K, tune_ef_search

    path = artefact / "index.faiss"
    if not path.exists():
        return None
    index = faiss.read_index(str(path))
    ef, _ = tune_ef_search(index, *tune)
    index.hnsw.efSearch = ef
    model = query_model()

    def floor(text: str) -> None:
        vec = np.ascontiguousarray(model.embed([text])[0][None, :], dtype=np.float32)
        index.search(vec, K)

    calls = (("engramdb", system.search_text), ("floor", floor))
    for text in warm:
        for _, fn in calls:
            fn(text)
    samples: dict[str, list[float]] = {name: [] for name, _ in calls}
    for i, text in enumerate(items):
        for name, fn in calls if i % 2 == 0 else calls[::-1]:
            t0 = time.perf_counter()
            fn(text)
            samples[name].append(time.perf_counter() - t0)
    out: dict[str, Any] = {name: percentiles(samples[name]) for name, _ in calls}
    out["ratio_p50"] = out["engramdb"]["p50"] / out["floor"]["p50"]
    out["ef_search"] = ef
    return out


MODES = ("hybrid", "dense")


def text_modes(system: Any, warm: list[str], items: list[str]) -> dict[str, Any]:
    """engramdb's recall by text in each mode, side by side on the same texts.

    Query by query, both modes in alternating order (drift on a shared machine hits
    both alike), first with the query embedded by every call, then with every query
    embedded in advance (the search alone). No access is recorded.
    """
    fn = system.search_text_mode
    out: dict[str, Any] = {}
    for label in ("", "_search_only"):
        if label:
            system.prime([*warm, *items])
        for text in warm:
            for mode in MODES:
                fn(text, mode)
        samples: dict[str, list[float]] = {m: [] for m in MODES}
        for i, text in enumerate(items):
            for mode in MODES if i % 2 == 0 else MODES[::-1]:
                t0 = time.perf_counter()
                fn(text, mode)
                samples[mode].append(time.perf_counter() - t0)
        for mode in MODES:
            out[f"{mode}{label}"] = percentiles(samples[mode])
        for q in ("p50", "p95"):
            out[f"ratio{label}_{q}"] = out[f"hybrid{label}"][q] / out[f"dense{label}"][q]
    return out


@functools.cache
def query_model() -> Any:
    """The bundled model for text queries, loaded once per process on first use."""
    from common import BundledModel

    return BundledModel(threads=QUERY_THREADS)


def recall_of(found: dict[int, list[int]], truth: np.ndarray) -> float:
    """recall@10 over the queries answered (a time cap may stop a pass early)."""
    done = sorted(found)
    return recall_at_k([found[i] for i in done], truth[done], 10)


# -- the run --------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with scratch_dir(args.work, "engramdb-latency-") as tmp:
        work = Path(tmp)
        for ds in prepare(args, work):
            builders = list(dict.fromkeys(builder_of(v) for v in args.variants))
            if args.targets and not ds["name"].startswith("synthetic-"):
                builders = [b for b in builders if b != "chroma"]
            print(f"[{ds['name']}] ingest {', '.join(builders)}", file=sys.stderr, flush=True)
            spec = {"role": "ingest", "name": "all", "builders": builders}
            spec.update(dir=ds["dir"], batch=args.batch, lance_compact=args.lance_compact)
            done = run_worker(spec, work, in_process=args.in_process)
            ingests: dict[str, Any] = {
                b: done.get(b, {"error": done.get("error", "not built")}) for b in builders
            }
            ingest_wall = done.get("wall_s")
            rows: dict[str, Any] = {}
            for v in args.variants:
                if args.targets and v == "chroma" and not ds["name"].startswith("synthetic-"):
                    continue  # the Chroma target is on the first set
                if "error" in ingests[builder_of(v)]:
                    rows[v] = {"error": "ingest failed: " + ingests[builder_of(v)]["error"]}
                    continue
                if v == "lance-ivfpq" and "index_s" not in ingests["lance"]:
                    rows[v] = {"skipped": "fewer than 256 vectors: PQ cannot train"}
                    continue
                print(f"[{ds['name']}] query {v}", file=sys.stderr, flush=True)
                # The tuned floor reaches engramdb's own recall@10 (at least the base target).
                mine = rows.get("engramdb-auto", {}).get("recall_at_10")
                rows[v] = run_worker(
                    {
                        "tune_target": max(TUNED_RECALL, mine) if mine else TUNED_RECALL,
                        "role": "query",
                        "name": v,
                        "dir": ds["dir"],
                        "n": ds["n"],
                        "warmup": args.warmup,
                        "repeats": args.repeats,
                        "max_seconds": args.max_seconds,
                        "text_queries": args.text_queries if v in args.text_variants else 0,
                    },
                    work,
                    in_process=args.in_process,
                )
                rows[v]["ingest_rate"] = ingest_rate(v, ds["n"], ingests, rows[v])
            results[ds["name"]] = {
                "n": ds["n"],
                "ingest": ingests,
                "ingest_worker_s": ingest_wall,
                "systems": rows,
            }
            add_ratios(results[ds["name"]])
            # Drop the artefacts of this size before building the next.
            for child in Path(ds["dir"]).iterdir():
                if child.is_dir():
                    shutil.rmtree(child, ignore_errors=True)
    return results


def ingest_rate(variant: str, n: int, ingests: dict[str, Any], row: dict[str, Any]) -> float | None:
    """Vectors per second from the first write until the first query can be answered."""
    ing = ingests[builder_of(variant)]
    if "error" in row or "skipped" in row or "error" in ing:
        return None
    if variant.startswith("engramdb-"):
        seconds = ing["add_many_s"] + row["cold_first_query_s"]
        if variant == "engramdb-lance":
            seconds += ing.get("lance_compact_s", 0.0)
    elif variant.startswith("faiss-"):
        seconds = ing["build_s"]
    elif variant == "lance-flat":
        seconds = ing["write_s"]
    elif variant == "lance-ivfpq":
        seconds = ing["write_s"] + ing.get("index_s", float("nan"))
    else:
        seconds = ing["add_s"] + ing["first_query_s"]
    return n / seconds if seconds > 0 else None


def add_ratios(ds: dict[str, Any]) -> None:
    """engramdb's figures over its raw floor's and over Chroma's (1.0 = as fast)."""
    rows = ds["systems"]
    chroma = rows.get("chroma", {})

    def ratio(a: dict[str, Any], b: dict[str, Any], *path: str) -> float | None:
        try:
            x, y = a, b
            for key in path:
                x, y = x[key], y[key]
            return float(x) / float(y) if y else None
        except (KeyError, TypeError):
            return None

    for v, floor in FLOOR.items():
        row = rows.get(v)
        if row is None or "error" in row or "skipped" in row:
            continue
        peer = rows.get(floor, {})
        row["ratios"] = {
            "floor": floor,
            "vector_p50_vs_floor": ratio(row, peer, "vector", "p50"),
            "vector_p95_vs_floor": ratio(row, peer, "vector", "p95"),
            "text_p50_vs_floor": ratio(row, peer, "text", "p50"),
            "text_p95_vs_floor": ratio(row, peer, "text", "p95"),
            "ingest_rate_vs_floor": ratio(row, peer, "ingest_rate"),
            "vector_p50_vs_chroma": ratio(row, chroma, "vector", "p50"),
            "vector_p95_vs_chroma": ratio(row, chroma, "vector", "p95"),
            "text_p50_vs_chroma": ratio(row, chroma, "text", "p50"),
            "ingest_rate_vs_chroma": ratio(row, chroma, "ingest_rate"),
        }


# -- reports --------------------------------------------------------------------------------


def _get(row: dict[str, Any], *path: str) -> Any:
    for key in path:
        if not isinstance(row, dict) or key not in row:
            return None
        row = row[key]
    return row


def tables(results: dict[str, Any]) -> str:
    parts = []
    for name, ds in results.items():
        rows = []
        for v, r in ds["systems"].items():
            if "error" in r or "skipped" in r:
                why = f"error: {r['error'][:80]}" if "error" in r else r["skipped"]
                rows.append([v, why] + [None] * 14)
                continue
            mb = r["bytes_per_memory"]
            rows.append(
                [
                    v,
                    _get(r, "vector", "p50"),
                    _get(r, "vector", "p95"),
                    _get(r, "vector", "p99"),
                    _get(r, "vector_no_access", "p50"),
                    _get(r, "vector_no_access", "p99"),
                    _get(r, "text", "p50"),
                    _get(r, "text", "p95"),
                    r.get("batch_qps"),
                    r.get("recall_at_10"),
                    r.get("ingest_rate"),
                    r.get("cold_first_query_s"),
                    r.get("import_s"),
                    mb,
                    _get(r, "ratios", "vector_p50_vs_floor"),
                    _get(r, "ratios", "vector_p50_vs_chroma"),
                ]
            )
        parts.append(
            f"## {name} (n = {ds['n']:,}, dim {DIM})\n\n"
            + markdown_table(
                [
                    "system",
                    "vec p50 ms",
                    "vec p95",
                    "vec p99",
                    "vec p50 no-access",
                    "vec p99 no-access",
                    "text p50 ms",
                    "text p95",
                    "batch q/s",
                    "recall@10",
                    "ingest /s",
                    "cold open+1st q s",
                    "import s",
                    "RSS B/mem",
                    "p50 / floor",
                    "p50 / chroma",
                ],
                rows,
            )
        )
        ratio_rows = []
        for v in FLOOR:
            r = ds["systems"].get(v, {})
            if "ratios" not in r:
                continue
            q = r["ratios"]
            ratio_rows.append(
                [
                    v,
                    q["floor"],
                    q["vector_p50_vs_floor"],
                    q["vector_p95_vs_floor"],
                    q["text_p50_vs_floor"],
                    q["text_p95_vs_floor"],
                    q["ingest_rate_vs_floor"],
                    q["vector_p50_vs_chroma"],
                    q["text_p50_vs_chroma"],
                    q["ingest_rate_vs_chroma"],
                ]
            )
        mode_rows = []
        for v, r in ds["systems"].items():
            m = r.get("text_modes")
            if not m:
                continue
            mode_rows.append(
                [
                    v,
                    m["hybrid"]["p50"],
                    m["hybrid"]["p95"],
                    m["dense"]["p50"],
                    m["dense"]["p95"],
                    m["ratio_p50"],
                    m["ratio_p95"],
                    m["hybrid_search_only"]["p50"],
                    m["hybrid_search_only"]["p95"],
                    m["dense_search_only"]["p50"],
                    m["dense_search_only"]["p95"],
                    m["ratio_search_only_p50"],
                    m["ratio_search_only_p95"],
                ]
            )
        if mode_rows:
            parts.append(
                "Recall by text, hybrid against dense (ms; the same texts, alternating; "
                "'search' = query embedded in advance):\n\n"
                + markdown_table(
                    [
                        "engramdb",
                        "hybrid p50",
                        "hybrid p95",
                        "dense p50",
                        "dense p95",
                        "ratio p50",
                        "ratio p95",
                        "search hybrid p50",
                        "search hybrid p95",
                        "search dense p50",
                        "search dense p95",
                        "search ratio p50",
                        "search ratio p95",
                    ],
                    mode_rows,
                )
            )
        if ratio_rows:
            parts.append(
                "Ratios (engramdb / peer; latency > 1 is slower, ingest < 1 is slower):\n\n"
                + markdown_table(
                    [
                        "engramdb",
                        "floor",
                        "vec p50",
                        "vec p95",
                        "text p50",
                        "text p95",
                        "ingest",
                        "vec p50 / chroma",
                        "text p50 / chroma",
                        "ingest / chroma",
                    ],
                    ratio_rows,
                )
            )
    return "\n".join(parts)


def _ratio(a: Any, b: Any) -> float | None:
    return float(a) / float(b) if a is not None and b else None


def target_rows(results: dict[str, Any]) -> list[list[Any]]:
    """One row per recall-speed target and data set: engramdb, its peer, the ratio, met."""
    rows: list[list[Any]] = []
    for name, ds in results.items():
        found = ds["systems"]
        e = found.get("engramdb-auto", {})
        if "vector" not in e:
            continue
        f = found.get("faiss-hnsw-tuned", {})
        kind = {"synthetic": "low-ID", "highid": "high-ID"}.get(name.split("-")[0], name)
        where = f"{kind} {ds['n']:,}"

        def add(
            what: str, mine: Any, peer: Any, ratio: Any, goal: str, ok: bool | None, at: str = where
        ) -> None:
            state = "n/a" if ok is None else ("met" if ok else "not met")
            rows.append([what, at, mine, peer, ratio, goal, state])

        p50, floor = _get(e, "vector", "p50"), _get(f, "vector", "p50")
        info = f.get("info") or {}
        r = _ratio(p50, floor)
        add(
            f"vector p50 ms / FAISS HNSW at the same recall (efSearch {info.get('ef_search')})",
            p50,
            floor,
            r,
            "<= 1.5",
            r and r <= 1.5,
        )
        add(
            f"recall@10: engramdb / FAISS tuned (efSearch {info.get('ef_search')})",
            e.get("recall_at_10"),
            f.get("recall_at_10"),
            None,
            ">= 0.95",
            e.get("recall_at_10", 0.0) >= 0.95,
        )
        base = _get(f, "vector_at_base", "p50")
        if base is not None:
            r = _ratio(p50, base)
            ef, got = info.get("ef_search_at_base"), f.get("recall_at_10_at_base")
            add(
                f"vector p50 ms / FAISS HNSW at recall {TUNED_RECALL} (efSearch {ef}, "
                f"recall {got:.3f}): reference",
                p50,
                base,
                r,
                "-",
                None,
            )
        p99 = _get(e, "vector", "p99")
        r = _ratio(p99, p50)
        add("vector p99 / p50 ms", p99, p50, r, "<= 3", r and r <= 3.0)
        modes = e.get("text_modes") or {}
        for label, key in (("search only", "_search_only"), ("with embedding", "")):
            hy, de = _get(modes, f"hybrid{key}", "p50"), _get(modes, f"dense{key}", "p50")
            r = _ratio(hy, de)
            add(f"hybrid / dense p50 ms ({label})", hy, de, r, "<= 2", r and r <= 2.0)
        chroma = _get(found, "chroma", "vector", "p50")
        if chroma is not None:
            r = _ratio(p50, chroma)
            add("vector p50 ms / Chroma", p50, chroma, r, "<= 0.3", r and r <= 0.3)
        text, peer = _get(e, "text", "p50"), _get(f, "text", "p50")
        r = _ratio(text, peer)
        same = e.get("text_floor")
        if same:
            mine, floor = same["engramdb"]["p50"], same["floor"]["p50"]
            ratio = same["ratio_p50"]
            what = "text p50 ms / model + FAISS (one process, alternating)"
            add(what, mine, floor, ratio, "<= 1.1", ratio <= 1.1)
            what = "text p50 ms / model + FAISS (separate processes): reference"
            add(what, text, peer, r, "-", None)
        else:
            add("text p50 ms / model + FAISS", text, peer, r, "<= 1.1", r and r <= 1.1)
        mine, raw = e.get("bytes_per_memory"), f.get("bytes_per_memory")
        kb = None if mine is None else mine / 1e3
        add(
            "resident KB per memory / raw FAISS",
            kb,
            None if raw is None else raw / 1e3,
            _ratio(mine, raw),
            "<= 3.5 KB",
            kb is not None and 0 < kb <= 3.5,
        )
        mine, raw = e.get("anon_bytes_per_memory"), f.get("anon_bytes_per_memory")
        if mine is not None:
            add(
                "anonymous (heap) KB per memory / raw FAISS: reference",
                mine / 1e3,
                None if raw is None else raw / 1e3,
                _ratio(mine, raw),
                "-",
                None,
            )
    return rows


def targets_table(results: dict[str, Any]) -> str:
    rows = target_rows(results)
    if not rows:
        return ""
    return "## Recall-speed targets (one run, one query thread)\n\n" + markdown_table(
        ["target", "data set", "engramdb", "peer", "ratio", "goal", "met"], rows
    )


def plots(results: dict[str, Any], out: Path, stamp: str) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    synthetic = {k: v for k, v in results.items() if k.startswith("synthetic-")}
    if len(synthetic) >= 1:
        fig, ax = plt.subplots(figsize=(7, 5))
        variants = sorted({v for ds in synthetic.values() for v in ds["systems"]})
        for v in variants:
            pts = [
                (ds["n"], ds["systems"][v]["vector"]["p50"])
                for ds in synthetic.values()
                if "vector" in ds["systems"].get(v, {})
            ]
            if pts:
                xs, ys = zip(*sorted(pts), strict=True)
                style = "-" if v.startswith("engramdb") else "--"
                ax.plot(xs, ys, style, marker="o", label=v)
        ax.set(xscale="log", yscale="log", xlabel="memories", ylabel="p50 recall latency (ms)")
        ax.set_title("Single-query latency by vector (1 thread)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
        path = out / f"latency-vs-size-{stamp}.png"
        fig.savefig(path, dpi=120, bbox_inches="tight")
        plt.close(fig)
        written.append(str(path))
    fig, ax = plt.subplots(figsize=(7, 5))
    markers = dict(zip(APPROXIMATE, "os^vDP", strict=True))
    colours = dict(zip(APPROXIMATE, plt.get_cmap("tab10").colors, strict=False))
    for name, ds in results.items():
        for v in APPROXIMATE:
            r = ds["systems"].get(v, {})
            if "vector" in r:
                ax.scatter(
                    r["vector"]["p50"],
                    r["recall_at_10"],
                    marker=markers[v],
                    color=colours[v],
                    label=v,
                )
                where = (r["vector"]["p50"], r["recall_at_10"])
                ax.annotate(name.split("-")[-1], where, fontsize=6)
    handles, labels = ax.get_legend_handles_labels()
    uniq = dict(zip(labels, handles, strict=True))
    ax.legend(uniq.values(), uniq.keys(), fontsize=7)
    ax.set(xscale="log", xlabel="p50 latency (ms)", ylabel="recall@10 vs exact")
    ax.set_title("Approximate indexes: recall@10 against latency (labels: data set)")
    ax.grid(True, alpha=0.3)
    path = out / f"recall-vs-latency-{stamp}.png"
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    written.append(str(path))
    return written


def main(argv: list[str] | None = None) -> Path:
    args = parse_args(argv)
    if args.worker:
        worker_main(args.worker)
        return args.worker
    set_offline_env()
    t0 = time.perf_counter()
    results = run(args)
    params = {
        "sizes": args.size_list,
        "dim": DIM,
        "systems": args.variants,
        "queries": args.queries,
        "repeats": args.repeats,
        "text_queries": args.text_queries,
        "text_systems": args.text_variants,
        "warmup": args.warmup,
        "max_seconds": args.max_seconds,
        "batch": args.batch,
        "lance_compact": args.lance_compact,
        "in_process": args.in_process,
        "real_text": None if args.no_real else str(args.locomo or f"generated:{args.real_size}"),
        "synthetic_texts": (
            f"LoCoMo turns of {args.locomo}, repeated, reworded after the first copy"
            if args.locomo
            else f"generated sentences, sessions of {SESSION_SIZE}"
        ),
        "seed": args.seed,
        "targets": args.targets,
        "highid": args.highid,
        "k": 10,
        "seconds": None,
    }
    params["seconds"] = round(time.perf_counter() - t0, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    figures: dict[str, Any] = {"datasets": results}
    if not args.no_plots:
        figures["plots"] = plots(results, args.out, stamp)
    goals = targets_table(results)
    path = write_record(
        "latency",
        params=params,
        threads=THREADS,
        figures=figures,
        table=tables(results) + ("\n" + goals if goals else ""),
        out_dir=args.out,
    )
    if goals:
        print(goals)
    print(path)
    return path


if __name__ == "__main__":
    main(sys.argv[1:])
