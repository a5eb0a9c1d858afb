"""Leave-one-conversation-out selection of the hybrid weights, and an ablation, on LoCoMo.

Run by ``locomo.py --folds`` on the stores it ingested (one per conversation, one
agent each). The weights act at query time, so each store is reopened read-only with
``Settings(hybrid=HybridWeights(...))`` for every configuration of a small grid around
the shipped defaults, and every conversation is evaluated once per configuration:

- ``dense`` (the dense/lexical balance ``a``, with ``lexical = 1 - a``) in GRID["a"];
- ``context`` (BM25 weight of a memory's two previous turns) in GRID["context"];
- ``session_prior`` (turn level) in GRID["session_prior"];
- ``group_prior`` (``group_by="session"`` only) in GRID["group_prior"].

``session_prior`` changes only turn rankings and ``group_prior`` only session rankings,
so they share one axis of the grid (3 reopenings per (a, context), not 9). Everything
else (``prior_dense`` 0.25, ``pool`` 100, and the session scoring's ``group_top`` 5,
``group_temperature`` 0.1 and ``group_pool`` 1000) stays at its default.

Selection, for each held-out conversation: the turn weights (a, context,
session_prior) with the best turn R@10 over the questions of the other four, then,
with that (a, context), the ``group_prior`` with the best session R@10 on the same
four; ties go to the configuration nearest the defaults. The held-out conversation is
then scored. Reported: the held-out mean over folds, its min and max, the picks, the
pick made on all conversations and its (in-sample) figure, and the defaults' figure.

The ablation runs fixed configurations through the engine on every conversation
(in-sample: the defaults were chosen on these conversations): dense only, lexical on
a memory's own text (context weight 0; as in FTS5's ``bm25()`` the context still
counts in the document length), lexical with context, hybrid without the session
prior, the full hybrid, and at session level the hybrid without the group prior.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from common import markdown_table
from locomo import engine_rows, open_store, recall_session_list, recall_turns
from locomo_data import CATEGORIES, Conversation

GRIDS: dict[str, dict[str, tuple[float, ...]]] = {
    "full": {
        "a": (0.3, 0.4, 0.5, 0.6),
        "context": (0.3, 0.5, 0.8),
        "session_prior": (0.2, 0.4, 0.6),
        "group_prior": (0.25, 0.5, 1.0),
    },
    "tiny": {"a": (0.4, 0.6), "context": (0.5,), "session_prior": (0.4,), "group_prior": (0.5,)},
}
"""Both grids hold the shipped defaults (a 0.4, context 0.5, session_prior 0.4,
group_prior 0.5)."""

Scores = dict[str, np.ndarray]
"""Per-question recall of one conversation: ``turn@5``... ``session@25``."""


def defaults() -> dict[str, float]:
    from engramdb.config import HybridWeights

    w = HybridWeights()
    return {
        "a": w.dense,
        "context": w.context,
        "session_prior": w.session_prior,
        "group_prior": w.group_prior,
    }


def settings_of(
    a: float, context: float, session_prior: float, group_prior: float, **extra: Any
) -> Any:
    from engramdb.config import HybridWeights, Settings

    hybrid = HybridWeights(
        dense=a,
        lexical=1.0 - a,
        context=context,
        session_prior=session_prior,
        group_prior=group_prior,
        **extra,
    )
    return Settings(hybrid=hybrid)


def scores_of(conv: Conversation, rows: Sequence[dict[str, Any]], ks: Sequence[int]) -> Scores:
    out: Scores = {}
    for k in ks:
        out[f"turn@{k}"] = np.array(
            [
                recall_turns(r["turn"][k], q.evidence, k)
                for q, r in zip(conv.questions, rows, strict=True)
            ]
        )
        out[f"session@{k}"] = np.array(
            [
                recall_session_list(r["session"][k], q.evidence, k)
                for q, r in zip(conv.questions, rows, strict=True)
            ]
        )
    return out


def evaluate(
    conv: Conversation, stores: Path, settings: Any, ks: Sequence[int], mode: str = "hybrid"
) -> Scores:
    with open_store(stores, conv, settings) as engine:
        rows, _ = engine_rows(engine, conv, ks, mode=mode)
    return scores_of(conv, rows, ks)


def pooled(per_conv: dict[str, Scores], names: Sequence[str], key: str) -> float:
    """Question-weighted mean of ``key`` over the conversations ``names``."""
    return float(np.mean(np.concatenate([per_conv[n][key] for n in names])))


def run(
    convs: Sequence[Conversation], stores: Path, ks: Sequence[int], *, grid: str = "full"
) -> dict[str, Any]:
    if len(convs) < 2:
        raise ValueError(f"leave-one-out needs 2 conversations or more, not {len(convs)}")
    t0 = time.perf_counter()
    g = GRIDS[grid]
    base = defaults()
    names = [c.sample_id for c in convs]
    turn: dict[tuple[float, float, float], dict[str, Scores]] = {}
    sess: dict[tuple[float, float, float], dict[str, Scores]] = {}
    axis = list(zip(g["session_prior"], g["group_prior"], strict=True))
    for a, ctx, (sp, gp) in itertools.product(g["a"], g["context"], axis):
        for conv in convs:
            scores = evaluate(conv, stores, settings_of(a, ctx, sp, gp), ks)
            turn.setdefault((a, ctx, sp), {})[conv.sample_id] = scores
            sess.setdefault((a, ctx, gp), {})[conv.sample_id] = scores
    grid_s = time.perf_counter() - t0

    def nearest(cfg: tuple[float, ...], keys: Sequence[str]) -> float:
        return sum(abs(v - base[k]) for v, k in zip(cfg, keys, strict=True))

    def pick(train: Sequence[str]) -> dict[str, Any]:
        tkeys = ("a", "context", "session_prior")
        best_t = max(turn, key=lambda c: (pooled(turn[c], train, "turn@10"), -nearest(c, tkeys)))
        a, ctx, sp = best_t
        cands = [c for c in sess if c[:2] == (a, ctx)]
        best_s = max(
            cands,
            key=lambda c: (pooled(sess[c], train, "session@10"), -nearest(c[2:], ("group_prior",))),
        )
        return {
            "a": a,
            "context": ctx,
            "session_prior": sp,
            "group_prior": best_s[2],
            "train_turn_R@10": pooled(turn[best_t], train, "turn@10"),
            "train_session_R@10": pooled(sess[best_s], train, "session@10"),
        }

    def figures(cfg: dict[str, Any], held: Sequence[str]) -> dict[str, float]:
        t = turn[(cfg["a"], cfg["context"], cfg["session_prior"])]
        s = sess[(cfg["a"], cfg["context"], cfg["group_prior"])]
        out = {f"turn R@{k}": pooled(t, held, f"turn@{k}") for k in ks}
        out |= {f"session R@{k}": pooled(s, held, f"session@{k}") for k in ks}
        return out

    default_cfg = {k: base[k] for k in ("a", "context", "session_prior", "group_prior")}
    folds = []
    for held in names:
        train = [n for n in names if n != held]
        cfg = pick(train)
        folds.append(
            {
                "held_out": held,
                "pick": cfg,
                "held_out_figures": figures(cfg, [held]),
                "defaults_figures": figures(default_cfg, [held]),
                "train_defaults_turn_R@10": pooled(
                    turn[tuple(default_cfg[k] for k in ("a", "context", "session_prior"))],
                    train,
                    "turn@10",
                ),
            }
        )
    keys = list(folds[0]["held_out_figures"])
    held_mean = {k: float(np.mean([f["held_out_figures"][k] for f in folds])) for k in keys}
    held_min = {k: float(np.min([f["held_out_figures"][k] for f in folds])) for k in keys}
    held_max = {k: float(np.max([f["held_out_figures"][k] for f in folds])) for k in keys}
    # Question-weighted held-out figures and categories: each question scored by its fold's pick.
    cats = np.concatenate([[q.category for q in c.questions] for c in convs])
    held_q: dict[str, np.ndarray] = {}
    for key in (f"{lv}@{k}" for lv in ("turn", "session") for k in ks):
        parts = []
        for f in folds:
            cfg = f["pick"]
            table_ = turn if key.startswith("turn") else sess
            third = cfg["session_prior"] if key.startswith("turn") else cfg["group_prior"]
            parts.append(table_[(cfg["a"], cfg["context"], third)][f["held_out"]][key])
        held_q[key] = np.concatenate(parts)
    by_category = {
        key: {
            CATEGORIES.get(int(c), str(c)): float(held_q[key][cats == c].mean())
            for c in sorted(set(cats.tolist()))
        }
        for key in held_q
    }
    fit_all = pick(names)
    agree = sum(all(f["pick"][k] == default_cfg[k] for k in default_cfg) for f in folds)
    ranking = sorted(turn, key=lambda c: -pooled(turn[c], names, "turn@10"))
    top_turn = [
        {
            "a": c[0],
            "context": c[1],
            "session_prior": c[2],
            "turn R@10": pooled(turn[c], names, "turn@10"),
        }
        for c in ranking[:8]
    ]
    t1 = time.perf_counter()
    ablation = run_ablation(convs, stores, ks)
    return {
        "grid": {k: list(v) for k, v in g.items()},
        "defaults": default_cfg,
        "folds": folds,
        "held_out_mean": held_mean,
        "held_out_min": held_min,
        "held_out_max": held_max,
        "held_out_question_weighted": {k: float(v.mean()) for k, v in held_q.items()},
        "held_out_by_category": by_category,
        "fit_all": {"pick": fit_all, "figures": figures(fit_all, names)},
        "defaults_all": figures(default_cfg, names),
        "folds_picking_defaults": agree,
        "top_turn_configs_fit_all": top_turn,
        "ablation": ablation,
        "seconds": {"grid": grid_s, "ablation": time.perf_counter() - t1},
    }


ABLATION = (
    ("dense only", "dense", {}),
    ("lexical, own text (context 0)", "lexical", {"context": 0.0}),
    ("lexical with context", "lexical", {}),
    ("hybrid, no session prior", "hybrid", {"session_prior": 0.0}),
    ("hybrid, no date preference", "hybrid", {"date": 0.0}),
    ("hybrid, no group prior (session level)", "hybrid", {"group_prior": 0.0}),
    ("full hybrid (defaults)", "hybrid", {}),
)
"""(row, mode, weights changed from the defaults)."""


def run_ablation(
    convs: Sequence[Conversation], stores: Path, ks: Sequence[int]
) -> list[dict[str, Any]]:
    base = defaults()
    names = [c.sample_id for c in convs]
    out = []
    for label, mode, change in ABLATION:
        cfg = base | change
        per = {c.sample_id: evaluate(c, stores, settings_of(**cfg), ks, mode) for c in convs}
        row: dict[str, Any] = {"row": label, "mode": mode, "weights": cfg}
        for level in ("turn", "session"):
            for k in ks:
                row[f"{level} R@{k}"] = pooled(per, names, f"{level}@{k}")
            r10 = [float(per[n][f"{level}@10"].mean()) for n in names]
            row[f"{level} R@10 min"], row[f"{level} R@10 max"] = min(r10), max(r10)
        out.append(row)
    return out


def tables(folds: dict[str, Any], ks: Sequence[int]) -> str:
    keys = [f"turn R@{k}" for k in ks] + [f"session R@{k}" for k in ks]
    out = "\n## Leave-one-conversation-out selection (engine, hybrid)\n\n"
    out += f"Grid: {folds['grid']}; defaults: {folds['defaults']}.\n\n"
    rows = []
    for f in folds["folds"]:
        p = f["pick"]
        pick = f"a={p['a']} ctx={p['context']} sp={p['session_prior']} gp={p['group_prior']}"
        rows.append([f["held_out"], pick, *(f["held_out_figures"][k] for k in keys)])
        rows.append([f["held_out"], "(defaults)", *(f["defaults_figures"][k] for k in keys)])
    rows.append(["mean of folds", "held-out", *(folds["held_out_mean"][k] for k in keys)])
    rows.append(["min", "", *(folds["held_out_min"][k] for k in keys)])
    rows.append(["max", "", *(folds["held_out_max"][k] for k in keys)])
    qw = folds["held_out_question_weighted"]
    rows.append(["question-weighted", "held-out", *(qw[k.replace(" R", "")] for k in keys)])
    fa = folds["fit_all"]
    p = fa["pick"]
    pick = f"a={p['a']} ctx={p['context']} sp={p['session_prior']} gp={p['group_prior']}"
    rows.append(["fit on all (in-sample)", pick, *(fa["figures"][k] for k in keys)])
    rows.append(["defaults (in-sample)", "", *(folds["defaults_all"][k] for k in keys)])
    out += markdown_table(["held out", "pick", *keys], rows)
    out += f"\nFolds picking exactly the defaults: {folds['folds_picking_defaults']} of "
    out += f"{len(folds['folds'])}.\n\nBest turn configurations on all conversations:\n\n"
    out += markdown_table(
        ["a", "context", "session_prior", "turn R@10"],
        [
            [c["a"], c["context"], c["session_prior"], c["turn R@10"]]
            for c in folds["top_turn_configs_fit_all"]
        ],
    )
    cats = sorted(next(iter(folds["held_out_by_category"].values())))
    out += "\nHeld-out recall by category (question-weighted):\n\n"
    out += markdown_table(
        ["metric", *cats],
        [[k, *(v[c] for c in cats)] for k, v in folds["held_out_by_category"].items()],
    )
    out += "\n## Ablation through the engine (all conversations, question-weighted)\n\n"
    heads = [*keys, "turn R@10 min", "turn R@10 max", "session R@10 min", "session R@10 max"]
    out += markdown_table(
        ["design", *heads],
        [[r["row"], *(r[h] for h in heads)] for r in folds["ablation"]],
    )
    return out
