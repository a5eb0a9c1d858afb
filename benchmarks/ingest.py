"""Ingest throughput with the bundled model: engramdb ``add_many`` against the model alone.

Usage:
    python benchmarks/ingest.py [--texts 1000] [--repeats 3] [--batch 500]
                                [--warmup 64] [--locomo PATH] [--out DIR] [--work DIR]
    python benchmarks/ingest.py --texts 16 --repeats 2 --batch 8 --warmup 4   # smoke

The same texts (seeded generated sentences, or the turns of a LoCoMo file) are
embedded three ways, in alternating order on every repeat so that drift on a shared
machine hits all three alike:

- ``model``: sentence-transformers ``encode`` on the bundled all-MiniLM-L6-v2 (batch
  64, normalized): the floor.
- ``embedder``: engramdb's ``SentenceTransformerEmbedder.embed`` (adds the long-text
  windowing check).
- ``add_many``: ``MemoryEngine.add_many(texts, agent=...)`` in batches of ``--batch``
  into a fresh store, for an agent not yet recalled: validation, embedding, chunk
  counts and the LanceDB write. The agent's in-memory indexes (vectors, and the
  lexical index of every text with its context) are built from the store at its
  first recall, timed apart (``first_recall_s``).
- ``add_many_loaded``: the same into a fresh store whose agent has been recalled
  once, so its view is loaded and every ``add_many`` also indexes the new memories
  in memory, lexically and by vector: what a user pays who recalls as they add.

Reported: texts/s of each (median over repeats) and the ratios to ``model`` (1.0 =
no overhead). Torch threads: 2 (engramdb's choice).
The model is loaded and warmed up before timing, on other texts, in every path.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    BundledModel,
    add_common_args,
    generated_sentences,
    markdown_table,
    scratch_dir,
    set_offline_env,
    write_record,
)

TORCH_THREADS = 2


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--texts", type=int, default=1000, help="generated sentences to embed")
    p.add_argument("--locomo", type=Path, help="use the turns of this LoCoMo file instead")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--batch", type=int, default=500, help="texts per add_many call")
    p.add_argument(
        "--warmup", type=int, default=64, help="untimed texts embedded first by each path"
    )
    add_common_args(p)
    return p.parse_args(argv)


def load_texts(args: argparse.Namespace) -> list[str]:
    if args.locomo:
        from locomo_data import read_locomo

        return [t.render() for c in read_locomo(args.locomo) for t in c.turns]
    return generated_sentences(args.texts, seed=args.seed)


def run(args: argparse.Namespace, texts: list[str]) -> dict[str, Any]:
    from engramdb import MemoryEngine
    from engramdb.config import Settings
    from engramdb.embeddings import SentenceTransformerEmbedder

    warmup = [
        f"Warm-up sentence number {i} about nothing in particular." for i in range(args.warmup)
    ]
    model = BundledModel(threads=TORCH_THREADS)
    model.embed(warmup)
    embedder = SentenceTransformerEmbedder(threads=TORCH_THREADS)
    embedder.embed(warmup)

    def via_model() -> None:
        model.embed(texts)

    def via_embedder() -> None:
        embedder.embed(texts)

    paths = ("model", "embedder", "add_many", "add_many_loaded")
    seconds: dict[str, list[float]] = {name: [] for name in paths}
    first_recall: list[float] = []
    with scratch_dir(args.work, "engramdb-ingest-") as tmp:
        for r in range(args.repeats):
            # Fresh stores each time: their embedding caches are empty, as for new memories.
            # They get the embedder loaded above (what embedder="minilm" builds, same threads).
            engines = {
                name: MemoryEngine.open(
                    Path(tmp) / f"{name}-{r}", embedder=embedder, settings=Settings()
                )
                for name in ("add_many", "add_many_loaded")
            }
            for engine in engines.values():
                engine.add_many(warmup, agent="warmup")  # untimed: the store's first write
            # Untimed: one memory and one recall load the agent's view (its indexes).
            loaded = engines["add_many_loaded"]
            loaded.add_many(warmup[:1], agent="bench")
            loaded.recall(warmup[0], agent="bench", k=1, record_access=False)

            def adder(engine: Any) -> Any:
                def run() -> None:
                    for s in range(0, len(texts), args.batch):
                        engine.add_many(texts[s : s + args.batch], agent="bench")

                return run

            order = [
                ("model", via_model),
                ("embedder", via_embedder),
                ("add_many", adder(engines["add_many"])),
                ("add_many_loaded", adder(loaded)),
            ]
            shift = r % len(order)
            for name, fn in order[shift:] + order[:shift]:
                t0 = time.perf_counter()
                fn()
                seconds[name].append(time.perf_counter() - t0)
            cold = engines["add_many"]
            t0 = time.perf_counter()
            cold.recall(texts[0], agent="bench", k=1, record_access=False)
            first_recall.append(time.perf_counter() - t0)
            if (
                cold.count(agent="bench") != len(texts)
                or loaded.count(agent="bench") != len(texts) + 1
            ):
                raise RuntimeError("add_many stored a different number of memories")
            for engine in engines.values():
                engine.close()
    n = len(texts)
    rates = {name: n / float(np.median(vals)) for name, vals in seconds.items()}
    until_recall = n / float(np.median(np.add(seconds["add_many"], first_recall)))
    return {
        "texts": n,
        "seconds": seconds,
        "first_recall_s": first_recall,
        "texts_per_s": rates,
        "add_many_until_first_recall_per_s": until_recall,
        "ratio_add_many_vs_model": rates["add_many"] / rates["model"],
        "ratio_add_many_loaded_vs_model": rates["add_many_loaded"] / rates["model"],
        "ratio_add_many_until_first_recall_vs_model": until_recall / rates["model"],
        "ratio_embedder_vs_model": rates["embedder"] / rates["model"],
        "mean_chars": float(np.mean([len(t) for t in texts])),
    }


def main(argv: list[str] | None = None) -> Path:
    args = parse_args(argv)
    set_offline_env()
    texts = load_texts(args)
    t0 = time.perf_counter()
    figures = run(args, texts)
    rates = figures["texts_per_s"]
    rows = [[name, rate, rate / rates["model"]] for name, rate in rates.items()]
    until = figures["add_many_until_first_recall_per_s"]
    rows.append(["add_many + first recall (index build)", until, until / rates["model"]])
    table = markdown_table(["path", "texts/s (median)", "ratio to model"], rows)
    params = {
        "texts": len(texts),
        "source": str(args.locomo) if args.locomo else f"generated:{args.texts}",
        "repeats": args.repeats,
        "batch": args.batch,
        "warmup": args.warmup,
        "model": "all-MiniLM-L6-v2 (bundled), batch 64, normalized",
        "seconds": round(time.perf_counter() - t0, 1),
    }
    path = write_record(
        "ingest",
        params=params,
        threads={"torch_threads": TORCH_THREADS},
        figures=figures,
        table=table,
        out_dir=args.out,
    )
    print(path)
    return path


if __name__ == "__main__":
    main(sys.argv[1:])
