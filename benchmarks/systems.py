"""The systems ``latency.py`` measures: engramdb's index choices and the peers.

Each system has a *builder* (writes a persistent artefact from vectors: a store, an
index file, a table, a collection) and one or more *variants* that open that artefact
in a fresh process and answer queries. Queries return row numbers of the base set,
so every system is scored against the same exact ground truth.

Parameters are engramdb's own (``engramdb/index/vector.py``), so raw FAISS is the
floor engramdb's overhead is measured against:

- flat: ``IndexFlatIP`` (engramdb wraps it in ``IndexIDMap2``).
- HNSW: M=32, efConstruction=80, efSearch=96, inner product; ``faiss-hnsw-tuned``
  opens the same graph with the cheapest efSearch (from :data:`EF_LADDER`) that
  reaches the same recall@10 against exact search on the benchmark's queries as
  ``engramdb-auto`` did (at least ``TUNED_RECALL``): the floor ``engramdb-auto`` is
  held to. It is timed at the cheapest efSearch reaching ``TUNED_RECALL`` too.
- IVF: ``IndexIVFFlat``, nlist = min(4*sqrt(n), n/39), nprobe = nlist/8 + 8.
- LanceDB: brute force (no index), and IVF-PQ (cosine, sqrt(n) partitions up to
  256, 48 sub-vectors of 8 dims, a light k-means; LanceDB's default nprobes, no refine).
- Chroma: ``PersistentClient`` with its default HNSW (M=16, ef_construction=100,
  ef_search=100) in cosine space: what agent-memory projects get out of the box.
"""

from __future__ import annotations

import functools
import json
import math
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

AGENT = "bench"
K = 10
BUILD_THREADS = 2
"""Threads for index builds, as engramdb's own ``build_threads()`` uses on this machine."""

HNSW_M, HNSW_EF_CONSTRUCTION, HNSW_EF_SEARCH = 32, 80, 96
CHROMA_BATCH = 5_000
LANCE_MAX_PARTITIONS = 256
LANCE_SUB_VECTORS = 48

ENGRAM_KINDS = ("flat", "hnsw", "ivf", "lance", "auto")
EF_LADDER = (
    *range(10, 64, 2),
    *range(64, 256, 8),
    *range(256, 1024, 32),
    *range(1024, 2049, 128),
)
"""The efSearch values tried for ``faiss-hnsw-tuned``: fine, so the floor is the cheapest."""
TUNED_RECALL = 0.95
VARIANTS = (
    *(f"engramdb-{kind}" for kind in ENGRAM_KINDS),
    "faiss-flat",
    "faiss-hnsw",
    "faiss-hnsw-tuned",
    "faiss-ivf",
    "lance-flat",
    "lance-ivfpq",
    "chroma",
)
FLOOR = {
    "engramdb-flat": "faiss-flat",
    "engramdb-hnsw": "faiss-hnsw",
    "engramdb-ivf": "faiss-ivf",
    "engramdb-lance": "lance-flat",
    "engramdb-auto": "faiss-hnsw-tuned",
}
"""The raw peer with the same index parameters: the floor each engramdb index is held to."""
APPROXIMATE = ("engramdb-hnsw", "engramdb-ivf", "faiss-hnsw", "faiss-ivf", "lance-ivfpq", "chroma")
"""The approximate variants the recall/latency plot shows (one marker each)."""


def builder_of(variant: str) -> str:
    """Which artefact a variant opens: engramdb's variants share one store, LanceDB's one table."""
    if variant.startswith("engramdb-"):
        return "engramdb"
    if variant.startswith("lance-"):
        return "lance"
    if variant == "faiss-hnsw-tuned":
        return "faiss-hnsw"
    return variant


def ivf_params(n: int) -> tuple[int, int]:
    """(nlist, nprobe) exactly as ``engramdb.index.vector.IVFIndex`` picks them."""
    nlist = max(1, min(int(4 * np.sqrt(n)), n // 39))
    return nlist, max(1, min(nlist, nlist // 8 + 8))


class PrimedEmbedder:
    """An embedder that answers from vectors given in advance (:meth:`prime`) and asks
    the model for any other text: recall by text timed without the embedding, to
    separate the search's cost from the model's."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name, self.dim, self.normalized = inner.name, inner.dim, inner.normalized
        self._known: dict[str, np.ndarray] = {}

    def prime(self, texts: Sequence[str]) -> None:
        self._known.update(zip(texts, self.inner.embed(list(texts)), strict=True))

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if all(t in self._known for t in texts):
            return np.stack([self._known[t] for t in texts]).astype(np.float32)
        return np.asarray(self.inner.embed(texts), np.float32)

    def __getattr__(self, item: str) -> Any:  # chunk_counts and the like
        return getattr(self.inner, item)


@functools.cache
def bundled_embedder(threads: int = 2) -> Any:
    """engramdb's embedder on the bundled all-MiniLM-L6-v2 (what ``embedder="minilm"``
    builds), with an explicit torch thread count; one per process (each engine wraps it
    in an embedding cache of its own), so the model loads at most once."""
    from engramdb.embeddings import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder(threads=threads)


# -- builders: run in an ingest worker; return timings in seconds ------------------------


def build(
    builder: str,
    vectors: np.ndarray,
    texts: Sequence[str],
    out: Path,
    *,
    batch: int,
    lance_compact: bool = False,
    sessions: Sequence[str | None] | None = None,
) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    if builder == "engramdb":
        return _build_engramdb(
            vectors, texts, out, batch, lance_compact=lance_compact, sessions=sessions
        )
    return _BUILDERS[builder](vectors, texts, out, batch)


def _build_engramdb(
    vectors: np.ndarray,
    texts: Sequence[str],
    out: Path,
    batch: int,
    *,
    lance_compact: bool,
    sessions: Sequence[str | None] | None = None,
) -> dict:
    from engramdb import MemoryEngine

    # The index is built from the store on first recall; add_many writes the store
    # of record only, whatever index the store is later opened with.
    engine = MemoryEngine.open(out / "store", embedder=bundled_embedder(), index="flat")
    ids: list[str] = []
    t0 = time.perf_counter()
    for s in range(0, len(vectors), batch):
        items = [
            {
                "text": texts[i],
                "vector": np.asarray(vectors[i]),
                "session": sessions[i] if sessions else None,
            }
            for i in range(s, min(s + batch, len(vectors)))
        ]
        ids.extend(m.id for m in engine.add_many(items, agent=AGENT))
    t_add = time.perf_counter() - t0
    engine.close()
    (out / "ids.json").write_text(json.dumps(ids))
    result: dict[str, Any] = {"add_many_s": t_add, "batch": batch}
    if lance_compact:
        # index="lance" gets a LanceDB vector index (IVF-PQ, from 50k rows) only when
        # the user calls compact(); the automatic compaction does not build one.
        engine = MemoryEngine.open(out / "store", embedder=bundled_embedder(), index="lance")
        t0 = time.perf_counter()
        engine.compact()
        result["lance_compact_s"] = time.perf_counter() - t0
        result["lance_indexed"] = bool(engine.table.table.list_indices())
        engine.close()
    return result


def _faiss_index(kind: str, vectors: np.ndarray) -> Any:
    import faiss

    dim = vectors.shape[1]
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    if kind == "flat":
        index = faiss.IndexFlatIP(dim)
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
    else:
        nlist, nprobe = ivf_params(len(x))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
        index.train(x)
        index.nprobe = nprobe
    index.add(x)
    return index


def _build_faiss(kind: str) -> Callable[..., dict]:
    def run(vectors: np.ndarray, texts: Sequence[str], out: Path, batch: int) -> dict:
        import faiss

        faiss.omp_set_num_threads(BUILD_THREADS)
        t0 = time.perf_counter()
        index = _faiss_index(kind, vectors)
        t_build = time.perf_counter() - t0
        faiss.write_index(index, str(out / "index.faiss"))
        return {"build_s": t_build}

    return run


def _build_lance(vectors: np.ndarray, texts: Sequence[str], out: Path, batch: int) -> dict:
    import lancedb
    import pyarrow as pa

    n, dim = vectors.shape
    t0 = time.perf_counter()
    db = lancedb.connect(str(out / "lance"))
    data = pa.table(
        {
            "row": pa.array(np.arange(n, dtype=np.int64)),
            "vector": pa.FixedSizeListArray.from_arrays(
                pa.array(np.ascontiguousarray(vectors, dtype=np.float32).ravel()), dim
            ),
        }
    )
    table = db.create_table("vectors", data=data)
    t_write = time.perf_counter() - t0
    result: dict[str, Any] = {"write_s": t_write}
    if n >= 256:  # PQ trains 256 centroids per sub-vector
        from lancedb.index import IvfPq

        # LanceDB's defaults train for minutes at 100k on 2 cores (about 280 s under
        # load), so training is lighter: sqrt(n) partitions (at most 256), 48 sub-vectors
        # of 8 dims, 10 k-means iterations on 32 samples per centroid. Search uses
        # LanceDB's default nprobes and no refine step.
        parts = max(1, min(LANCE_MAX_PARTITIONS, int(math.sqrt(n))))
        config = IvfPq(
            distance_type="cosine",
            num_partitions=parts,
            num_sub_vectors=LANCE_SUB_VECTORS,
            max_iterations=10,
            sample_rate=32,
        )
        t0 = time.perf_counter()
        table.create_index("vector", config=config)
        result["index_s"] = time.perf_counter() - t0
        result["num_partitions"] = parts
        result["index"] = [str(i) for i in table.list_indices()]
    return result


def _chroma_client(path: Path) -> Any:
    import chromadb

    return chromadb.PersistentClient(
        path=str(path), settings=chromadb.Settings(anonymized_telemetry=False)
    )


def _build_chroma(vectors: np.ndarray, texts: Sequence[str], out: Path, batch: int) -> dict:
    client = _chroma_client(out / "chroma")
    t0 = time.perf_counter()
    col = client.create_collection(
        "bench-vectors", configuration={"hnsw": {"space": "cosine"}}, embedding_function=None
    )
    step = min(CHROMA_BATCH, client.get_max_batch_size())
    for s in range(0, len(vectors), step):
        stop = min(s + step, len(vectors))
        col.add(
            ids=[str(i) for i in range(s, stop)],
            embeddings=np.ascontiguousarray(vectors[s:stop], dtype=np.float32),
        )
    t_add = time.perf_counter() - t0
    # Chroma may index lazily: the first query after the adds belongs to the ingest.
    t0 = time.perf_counter()
    col.query(query_embeddings=np.asarray(vectors[:1]), n_results=1, include=[])
    t_first = time.perf_counter() - t0
    return {"add_s": t_add, "first_query_s": t_first, "config": col.configuration}


_BUILDERS: dict[str, Callable[..., dict]] = {
    "faiss-flat": _build_faiss("flat"),
    "faiss-hnsw": _build_faiss("hnsw"),
    "faiss-ivf": _build_faiss("ivf"),
    "lance": _build_lance,
    "chroma": _build_chroma,
}


# -- variants: opened in a query worker --------------------------------------------------


@dataclass
class Searcher:
    """An opened system. ``search`` takes a unit vector, ``search_text`` a string
    (embedding included), ``search_batch`` a matrix; all return row numbers."""

    search: Callable[[np.ndarray], list[int]]
    search_text: Callable[[str], list[int]]
    search_batch: Callable[[np.ndarray], list[list[int]]]
    close: Callable[[], None]
    quiet_search: Callable[[np.ndarray], list[int]] | None = None
    """engramdb only: recall with ``record_access=False``."""
    search_text_mode: Callable[[str, str], list[int]] | None = None
    """engramdb only: recall by text in a mode (``"hybrid"``, ``"dense"``), no access."""
    prime: Callable[[Sequence[str]], None] | None = None
    """engramdb only: embed texts in advance, so that recall by them skips the model."""
    native_batch: bool = True
    """False when ``search_batch`` is only a loop over ``search`` (no batch API)."""
    info: dict[str, Any] | None = None
    """Parameters chosen at open (the tuned efSearch and the recall it reached)."""
    retune: Callable[[int], None] | None = None
    """``faiss-hnsw-tuned`` only: set another efSearch (to time it at the base target too)."""


def import_modules(variant: str) -> None:
    """Import what a variant needs, so that cold-open timings do not include imports."""
    if variant.startswith("engramdb-"):
        import engramdb  # noqa: F401  (imports lancedb, pyarrow, faiss)
    elif variant.startswith("lance-"):
        import lancedb  # noqa: F401
    elif variant == "chroma":
        import chromadb  # noqa: F401


def open_variant(
    variant: str,
    artefact: Path,
    *,
    embed: Callable[[str], np.ndarray],
    tune: tuple[np.ndarray, np.ndarray, float] | None = None,
) -> Searcher:
    """Open a variant's artefact (copied to a private directory by the caller).

    ``tune`` is (queries, exact top-10 row numbers, recall@10 to reach):
    ``faiss-hnsw-tuned`` picks its efSearch on them.
    """
    if variant.startswith("engramdb-"):
        return _open_engramdb(variant.removeprefix("engramdb-"), artefact)
    if variant == "faiss-hnsw-tuned":
        if tune is None:
            raise ValueError("faiss-hnsw-tuned needs queries and their exact top 10 to tune on")
        return _open_faiss(artefact, embed, tune=tune)
    if variant.startswith("faiss-"):
        return _open_faiss(artefact, embed)
    if variant.startswith("lance-"):
        return _open_lance(artefact, embed, indexed=variant == "lance-ivfpq")
    if variant == "chroma":
        return _open_chroma(artefact, embed)
    raise ValueError(f"unknown variant {variant!r}; use one of {', '.join(VARIANTS)}")


@functools.cache
def row_numbers(artefact: Path) -> dict[str, int]:
    """engramdb's memory ids -> the base set's row numbers: the harness's own bookkeeping,
    loaded before the memory baseline (it is not the engine's). One per artefact and
    process: the searcher uses the map loaded then, not a second one after the baseline."""
    ids = json.loads((artefact / "ids.json").read_text())
    return {mid: i for i, mid in enumerate(ids)}


def _open_engramdb(kind: str, artefact: Path) -> Searcher:
    from engramdb import MemoryEngine
    from engramdb.config import Settings

    row_of = row_numbers(artefact)
    embedder = PrimedEmbedder(bundled_embedder(threads=1))
    # No embedding cache: every recall by text embeds its query, whatever ran before it
    # on the same text (the hybrid and dense passes share their texts).
    engine = MemoryEngine.open(
        artefact / "store",
        embedder=embedder,
        index=kind,
        settings=Settings(threads=1, embed_cache_size=0),
    )

    def search(vec: np.ndarray) -> list[int]:
        return [row_of[h.memory.id] for h in engine.recall(vec, agent=AGENT, k=K)]

    def quiet(vec: np.ndarray) -> list[int]:
        hits = engine.recall(vec, agent=AGENT, k=K, record_access=False)
        return [row_of[h.memory.id] for h in hits]

    def search_text(text: str) -> list[int]:
        return [row_of[h.memory.id] for h in engine.recall(text, agent=AGENT, k=K)]

    def text_mode(text: str, mode: str) -> list[int]:
        hits = engine.recall(text, agent=AGENT, k=K, mode=mode, record_access=False)
        return [row_of[h.memory.id] for h in hits]

    def batch(queries: np.ndarray) -> list[list[int]]:
        # engramdb has no batch recall: a loop over recall is what a user can do.
        return [search(q) for q in queries]

    return Searcher(
        search,
        search_text,
        batch,
        engine.close,
        quiet_search=quiet,
        native_batch=False,
        search_text_mode=text_mode,
        prime=embedder.prime,
    )


def tune_ef_search(
    index: Any, queries: np.ndarray, truth: np.ndarray, target: float = TUNED_RECALL
) -> tuple[int, float]:
    """The cheapest efSearch of :data:`EF_LADDER` whose recall@10 on ``queries`` against
    ``truth`` reaches ``target`` (the largest when none does), and that recall."""
    x = np.ascontiguousarray(queries, dtype=np.float32)
    recall = 0.0
    for ef in EF_LADDER:
        index.hnsw.efSearch = ef
        _, found = index.search(x, K)
        hits = [
            len(set(f.tolist()) & set(t[:K].tolist())) / K
            for f, t in zip(found, truth, strict=True)
        ]
        recall = float(np.mean(hits))
        if recall >= target:
            return ef, recall
    return EF_LADDER[-1], recall


def _open_faiss(
    artefact: Path,
    embed: Callable[[str], np.ndarray],
    *,
    tune: tuple[np.ndarray, np.ndarray, float] | None = None,
) -> Searcher:
    import faiss

    index = faiss.read_index(str(artefact / "index.faiss"))
    info = None
    if isinstance(index, faiss.IndexHNSW):
        index.hnsw.efSearch = HNSW_EF_SEARCH
        if tune is not None:
            queries, truth, target = tune
            ef_base, reached_base = tune_ef_search(index, queries, truth, TUNED_RECALL)
            ef, reached = ef_base, reached_base
            if target > TUNED_RECALL:
                ef, reached = tune_ef_search(index, queries, truth, target)
            index.hnsw.efSearch = ef
            info = {
                "ef_search": ef,
                "tuned_recall_at_10": reached,
                "target": target,
                "ef_search_at_base": ef_base,
                "recall_at_base": reached_base,
                "base_target": TUNED_RECALL,
            }

    def search(vec: np.ndarray) -> list[int]:
        _, found = index.search(np.ascontiguousarray(vec[None, :], dtype=np.float32), K)
        return [int(x) for x in found[0] if x >= 0]

    def batch(queries: np.ndarray) -> list[list[int]]:
        _, found = index.search(np.ascontiguousarray(queries, dtype=np.float32), K)
        return [[int(x) for x in row if x >= 0] for row in found]

    def retune(ef: int) -> None:
        index.hnsw.efSearch = ef

    return Searcher(
        search, lambda text: search(embed(text)), batch, lambda: None, info=info, retune=retune
    )


def _open_lance(artefact: Path, embed: Callable[[str], np.ndarray], *, indexed: bool) -> Searcher:
    import lancedb

    table = lancedb.connect(str(artefact / "lance")).open_table("vectors")
    if indexed and not table.list_indices():
        raise RuntimeError("no IVF-PQ index (too few vectors to train one)")

    def search(vec: np.ndarray) -> list[int]:
        query = table.search(np.asarray(vec, dtype=np.float32)).metric("cosine")
        if not indexed:
            query = query.bypass_vector_index()
        rows = query.select(["row"]).limit(K).to_arrow()
        return rows.column("row").to_pylist()

    def batch(queries: np.ndarray) -> list[list[int]]:
        return [search(q) for q in queries]

    return Searcher(
        search, lambda text: search(embed(text)), batch, lambda: None, native_batch=False
    )


def _open_chroma(artefact: Path, embed: Callable[[str], np.ndarray]) -> Searcher:
    client = _chroma_client(artefact / "chroma")
    col = client.get_collection("bench-vectors")

    def run(queries: np.ndarray) -> list[list[int]]:
        res = col.query(query_embeddings=queries, n_results=K, include=[])
        return [[int(x) for x in row] for row in res["ids"]]

    def search(vec: np.ndarray) -> list[int]:
        return run(np.asarray(vec, dtype=np.float32)[None, :])[0]

    return Searcher(search, lambda text: search(embed(text)), run, lambda: None)


def copy_artefact(src: Path, dst: Path) -> Path:
    """A private copy, so that one variant's writes (access counts) cannot reach another."""
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst)
    return dst
