"""Poincaré embeddings of hierarchies, trained as Nickel & Kiela (2017) do.

Given the transitive closure of a hierarchy as ``(child, ancestor)`` pairs, each
node gets a point of the unit ball so that related nodes are close. The loss for
a related pair ``(u, v)`` is the softmax of ``-d(u, v) / T`` against
``-d(u, v') / T`` for sampled negatives ``v'`` that are not related to ``u``::

    L(u, v) = -log( exp(-d(u, v)/T) / sum_{w in {v} + negatives(u)} exp(-d(u, w)/T) )

The temperature ``T`` defaults to ``1 / (dim - 1)`` (see
:func:`default_temperature`); ``T = 1`` is the paper's loss. The loss always
gains from pushing negatives further away, so with ``T = 1`` in five or more
dimensions hundreds of points end on the float64 projection margin, where the
projection rather than the loss sets their distances and from which they do not
return; a smaller ``T`` is satisfied at a proportionally smaller radius.

It is minimised on a :class:`~geoopt.ManifoldParameter` of the Poincaré ball,
in float64 by default, by a Riemannian optimiser (geoopt's ``RiemannianAdam`` by
default, ``RiemannianSGD`` as in the paper), after a burn-in phase at a tenth of
the learning rate with negatives drawn in proportion to ``degree ** 0.75`` so
that the first, chaotic steps do not fix a bad angular layout; the learning rate
then decays linearly over the last half of the epochs. Pairs are used in both
directions, and the negatives of ``u`` exclude its ancestors, its descendants
and itself, matching the undirected reconstruction protocol.
:func:`fit_euclidean` trains the Euclidean twin with the same loss, temperature,
sampler and schedule, as the fair baseline.

The reconstruction MAP averages over nodes, but a node takes part in as many
pairs as it has relatives, so an epoch that visits every pair once gives the
root of a tree as much weight as all its leaves together. Pairs are therefore
drawn in proportion to ``degree(anchor) ** -balance``: ``balance=0`` visits
every pair equally (what the mean rank averages over), ``1`` gives every node
the same weight (what MAP averages over), and the default ``0.5`` sits between.

Speed decides how many epochs fit in a budget, so every step handles a whole
batch at once, and the batch shares one draw of negatives: the distances to the
negatives are then a ``(batch, negatives)`` matrix built from one matrix product
rather than a gather of ``batch * negatives`` points, and its loss and gradient
are written out by hand (:mod:`engramdb.hyperbolic.loss`) rather than traced by
autograd, which makes a step with hundreds of negatives about twice as fast.
Large batches (1024) with Adam reach the quality of the paper's batches of 10
with SGD in far fewer Python-level steps.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterable
from typing import Literal, TypeVar

import geoopt
import numpy as np
import torch
from numpy.typing import DTypeLike, NDArray

from engramdb.errors import ValidationError
from engramdb.hyperbolic.loss import batch_loss_and_grad

__all__ = [
    "DEFAULT_BALANCE",
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_BURN_IN",
    "DEFAULT_EPOCHS",
    "DEFAULT_LR",
    "DEFAULT_NEGATIVES",
    "default_temperature",
    "fit_euclidean",
    "fit_poincare",
]

NodeT = TypeVar("NodeT", bound=Hashable)

DEFAULT_EPOCHS = 300
# Measured on WordNet mammals at dim 5 (seed 0, balance 0): 200 negatives MAP 0.972,
# 400 0.979, 600 0.982 (seed 1: 0.984), 800 0.981; each step's cost grows
# linearly with the count, and 600 trains mammals in under two minutes.
DEFAULT_NEGATIVES = 600
DEFAULT_BURN_IN = 20
DEFAULT_BURN_IN_FACTOR = 0.1
DEFAULT_BATCH_SIZE = 1024
# Measured on WordNet mammals (seed 0), MAP / mean rank at dim 2 and dim 5:
# balance 0: 0.788 / 7.95 and 0.982 / 1.56; 0.25: 0.853 / 7.34 and 0.988 / 2.64;
# 0.5: 0.880 / 10.9 and 0.991 / 4.2; 1: 0.873 / 20.6 and 0.991 / 8.6.
DEFAULT_BALANCE = 0.5
# With batch_size=None the batch shrinks for small closures so that an epoch
# still takes at least this many optimiser steps.
_MIN_STEPS_PER_EPOCH = 12
_MIN_BATCH_SIZE = 32
DEFAULT_OPTIMIZER: Literal["adam", "sgd"] = "adam"
DEFAULT_LR = {"adam": 0.05, "sgd": 20.0}
DEFAULT_DECAY = 0.5
DEFAULT_INIT_SCALE = 1e-3
# The last learning rate of the linear decay, as a fraction of lr.
_FINAL_LR_FRACTION = 0.01
_DENSE_RELATED_MAX = 1 << 26


def default_temperature(dim: int) -> float:
    """The softmax temperature used when ``temperature=None``: ``1 / (dim - 1)``.

    The loss keeps rewarding larger distances between a node and its
    negatives, so without a temperature the points drift outwards until many
    of them sit on the float64 projection margin (about 12.2 from the origin),
    where the projection rather than the loss sets their distances and from
    which they do not come back. Dividing distances by ``T < 1`` lets the loss
    be satisfied at about ``T`` times the radius. How much radius a hierarchy
    needs shrinks with the dimension: the volume of a hyperbolic ball of
    radius ``r`` grows like ``exp((dim - 1) r)``, so ``T = 1 / (dim - 1)``
    asks for about the same room at every dimension, and is the plain loss at
    dim 2, where the room is scarcest.
    """
    # Measured on WordNet mammals with balance 0: at dim 2, T = 0.5 drops MAP from 0.78 to
    # 0.31 (the points stay where the ball is nearly flat) and T = 1.3 to
    # 0.75 (more of them on the margin); at dim 5 and 10 (200 negatives), T = 1/(dim - 1)
    # gives 0.97 and 0.995 against 0.95 and 0.96 for T = 1.
    return 1.0 / max(1, dim - 1)


class _Closure:
    """Integer view of a closure: training pairs, relatedness and degrees."""

    def __init__(self, edges: Iterable[tuple[Hashable, Hashable]], *, symmetric: bool) -> None:
        position: dict[Hashable, int] = {}
        us: list[int] = []
        vs: list[int] = []
        for pair in edges:
            if len(pair) < 2:
                raise ValidationError(
                    f"edge {pair!r} is not a (child, ancestor) pair; pass 2-tuples"
                )
            u = position.setdefault(pair[0], len(position))
            v = position.setdefault(pair[1], len(position))
            if u != v:
                us.append(u)
                vs.append(v)
        if not us:
            raise ValidationError(
                "the closure has no edge between distinct nodes; pass (child, ancestor) pairs"
            )
        self.nodes: list[Hashable] = list(position)
        n = len(self.nodes)
        u_arr = np.asarray(us, dtype=np.int64)
        v_arr = np.asarray(vs, dtype=np.int64)
        undirected = np.unique(np.minimum(u_arr, v_arr) * n + np.maximum(u_arr, v_arr))
        lo, hi = undirected // n, undirected % n
        if symmetric:
            pairs = np.concatenate([np.stack([lo, hi], 1), np.stack([hi, lo], 1)])
        else:
            directed = np.unique(u_arr * n + v_arr)
            pairs = np.stack([directed // n, directed % n], 1)
        self.pairs = torch.from_numpy(pairs)
        # Relatedness is undirected, and a node is related to itself, so it is
        # never its own negative.
        keys = np.concatenate([lo * n + hi, hi * n + lo, np.arange(n) * (n + 1)])
        self.related_keys = torch.from_numpy(np.unique(keys))
        # A dense bitmap is faster to probe than a sorted-key search; keep it
        # while it costs at most _DENSE_RELATED_MAX bytes.
        self.related_dense: torch.Tensor | None = None
        if n * n <= _DENSE_RELATED_MAX:
            dense = torch.zeros(n * n, dtype=torch.bool)
            dense[self.related_keys] = True
            self.related_dense = dense.view(n, n)
        degree = np.bincount(np.concatenate([lo, hi]), minlength=n).astype(np.float64)
        self.degree = torch.from_numpy(degree)

    def related(self, anchors: torch.Tensor, others: torch.Tensor) -> torch.Tensor:
        """Whether each anchor is related to each other node (broadcasting)."""
        if self.related_dense is not None:
            return self.related_dense[anchors, others]
        keys = anchors * len(self.nodes) + others
        found = torch.searchsorted(self.related_keys, keys).clamp_max(len(self.related_keys) - 1)
        return self.related_keys[found] == keys


def _draw(
    n: int, shape: tuple[int, ...], weights: torch.Tensor | None, generator: torch.Generator
) -> torch.Tensor:
    if weights is None:
        return torch.randint(n, shape, generator=generator)
    flat = torch.multinomial(weights, math.prod(shape), replacement=True, generator=generator)
    return flat.view(shape)


def _pair_weights(closure: _Closure, balance: float) -> torch.Tensor | None:
    """Each pair's weight, ``degree(anchor) ** -balance``; None for uniform (balance 0)."""
    if balance == 0:
        return None
    return closure.degree[closure.pairs[:, 0]].pow(-balance)


def _learning_rate(
    epoch: int, epochs: int, lr: float, burn_in: int, burn_in_factor: float, decay: float
) -> float:
    """Burn-in at ``lr * burn_in_factor``, then ``lr``, then a linear decay.

    The decay covers the last ``decay`` fraction of the epochs and ends at 1% of
    ``lr``: late steps then refine the ranking instead of shaking it.
    """
    if epoch < burn_in:
        return lr * burn_in_factor
    start = (1.0 - decay) * epochs
    if decay == 0 or epoch < start:
        return lr
    progress = (epoch - start) / max(1.0, decay * epochs)
    return lr * (1.0 - (1.0 - _FINAL_LR_FRACTION) * progress)


def _fit(
    edges: Iterable[tuple[NodeT, NodeT]],
    dim: int,
    *,
    geometry: Literal["poincare", "euclidean"],
    epochs: int | None,
    seed: int,
    negatives: int,
    burn_in: int,
    burn_in_factor: float,
    balance: float,
    lr: float | None,
    batch_size: int | None,
    optimizer: Literal["adam", "sgd"],
    decay: float,
    dtype: DTypeLike,
    symmetric: bool,
    init_scale: float,
    temperature: float | None,
    progress: bool,
    callback: Callable[[int, float], None] | None,
) -> dict[NodeT, NDArray[np.float64]]:
    n_epochs = DEFAULT_EPOCHS if epochs is None else epochs
    if optimizer not in DEFAULT_LR:
        raise ValidationError(f"optimizer={optimizer!r} is unknown; use 'adam' or 'sgd'")
    base_lr = DEFAULT_LR[optimizer] if lr is None else lr
    checks: list[tuple[str, object, bool, str]] = [
        ("dim", dim, isinstance(dim, int) and dim >= 1, "a positive int"),
        ("epochs", n_epochs, isinstance(n_epochs, int) and n_epochs >= 0, "an int >= 0"),
        ("negatives", negatives, isinstance(negatives, int) and negatives >= 1, "an int >= 1"),
        ("burn_in", burn_in, isinstance(burn_in, int) and burn_in >= 0, "an int >= 0"),
        (
            "batch_size",
            batch_size,
            batch_size is None or (isinstance(batch_size, int) and batch_size >= 1),
            "None or an int >= 1",
        ),
        ("lr", base_lr, math.isfinite(base_lr) and base_lr > 0, "a positive number"),
        ("decay", decay, 0 <= decay <= 1, "in [0, 1]"),
        ("burn_in_factor", burn_in_factor, 0 < burn_in_factor <= 1, "in (0, 1]"),
        ("balance", balance, 0 <= balance <= 1, "in [0, 1]"),
        ("init_scale", init_scale, 0 < init_scale < 0.5, "in (0, 0.5)"),
        (
            "temperature",
            temperature,
            temperature is None or (math.isfinite(temperature) and temperature > 0),
            "None or a positive number",
        ),
    ]
    for name, value, ok, want in checks:
        if not ok:
            raise ValidationError(f"{name}={value!r} is invalid; it must be {want}")
    np_dtype = np.dtype(dtype)
    if np_dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValidationError(f"dtype={np_dtype} is not supported; use numpy.float64 or float32")
    torch_dtype = torch.float64 if np_dtype == np.float64 else torch.float32
    inv_temperature = 1.0 / (default_temperature(dim) if temperature is None else temperature)

    closure = _Closure(edges, symmetric=symmetric)
    n = len(closure.nodes)
    n_pairs = len(closure.pairs)
    if batch_size is None:
        batch_size = min(DEFAULT_BATCH_SIZE, max(_MIN_BATCH_SIZE, n_pairs // _MIN_STEPS_PER_EPOCH))
    generator = torch.Generator().manual_seed(seed)
    init = (torch.rand(n, dim, generator=generator, dtype=torch_dtype) * 2 - 1) * init_scale
    manifold: geoopt.Manifold
    if geometry == "poincare":
        manifold = geoopt.PoincareBall(c=1.0).to(torch_dtype)
    else:
        manifold = geoopt.Euclidean(ndim=1)
    weight = geoopt.ManifoldParameter(init, manifold=manifold)
    optim: torch.optim.Optimizer
    if optimizer == "adam":
        optim = geoopt.optim.RiemannianAdam([weight], lr=base_lr)
    else:
        optim = geoopt.optim.RiemannianSGD([weight], lr=base_lr)
    burn_in_weights = closure.degree.pow(0.75)
    pair_weights = _pair_weights(closure, balance)

    epoch_iter: Iterable[int] = range(n_epochs)
    if progress:
        from tqdm.auto import tqdm

        epoch_iter = tqdm(epoch_iter, desc=f"fit_{geometry} dim={dim}", unit="epoch")

    n_batches = -(-n_pairs // batch_size)
    for epoch in epoch_iter:
        in_burn_in = epoch < burn_in
        for group in optim.param_groups:
            group["lr"] = _learning_rate(epoch, n_epochs, base_lr, burn_in, burn_in_factor, decay)
        if pair_weights is None:
            order = torch.randperm(n_pairs, generator=generator)
        else:
            order = torch.multinomial(pair_weights, n_pairs, replacement=True, generator=generator)
        pairs = closure.pairs[order]
        # One set of negatives per batch, shared by its anchors: the distances
        # become a (batch, negatives) matrix product instead of a gather of
        # batch * negatives points, several times faster on CPU. Each anchor
        # still sees independent uniform negatives from batch to batch.
        weights = burn_in_weights if in_burn_in else None
        negs = _draw(n, (n_batches, negatives), weights, generator)
        total = 0.0
        for b in range(n_batches):
            u_idx = pairs[b * batch_size : (b + 1) * batch_size, 0]
            v_idx = pairs[b * batch_size : (b + 1) * batch_size, 1]
            # A negative related to the anchor (or the anchor itself) is dropped
            # from that anchor's softmax; for the root of a tree that is all of
            # them, and its loss is zero.
            related = closure.related(u_idx[:, None], negs[b][None, :])
            with torch.no_grad():
                step = batch_loss_and_grad(
                    weight[u_idx],
                    weight[v_idx],
                    weight[negs[b]],
                    related,
                    geometry=geometry,
                    inv_temperature=inv_temperature,
                )
                grad = torch.zeros_like(weight)
                grad.index_add_(0, u_idx, step.grad_u)
                grad.index_add_(0, v_idx, step.grad_v)
                grad.index_add_(0, negs[b], step.grad_negatives)
            weight.grad = grad
            optim.step()
            total += step.loss * len(u_idx)
        mean_loss = total / n_pairs
        if progress:
            epoch_iter.set_postfix(loss=f"{mean_loss:.4f}")  # type: ignore[attr-defined]
        if callback is not None:
            callback(epoch, mean_loss)

    points_np = weight.detach().to(torch.float64).numpy()
    return {node: points_np[i].copy() for i, node in enumerate(closure.nodes)}  # type: ignore[misc]


def fit_poincare(
    edges: Iterable[tuple[NodeT, NodeT]],
    dim: int,
    *,
    epochs: int | None = None,
    seed: int = 0,
    negatives: int = DEFAULT_NEGATIVES,
    burn_in: int = DEFAULT_BURN_IN,
    burn_in_factor: float = DEFAULT_BURN_IN_FACTOR,
    balance: float = DEFAULT_BALANCE,
    lr: float | None = None,
    batch_size: int | None = None,
    optimizer: Literal["adam", "sgd"] = DEFAULT_OPTIMIZER,
    decay: float = DEFAULT_DECAY,
    dtype: DTypeLike = np.float64,
    symmetric: bool = True,
    init_scale: float = DEFAULT_INIT_SCALE,
    temperature: float | None = None,
    progress: bool = False,
    callback: Callable[[int, float], None] | None = None,
) -> dict[NodeT, NDArray[np.float64]]:
    """Embed a hierarchy in the Poincaré ball (curvature -1).

    Args:
        edges: ``(child, ancestor)`` pairs of the hierarchy's transitive closure.
            Node names may be any hashable values.
        dim: Dimension of the ball.
        epochs: Passes over the pairs, burn-in included; ``None`` means
            :data:`DEFAULT_EPOCHS`.
        seed: Seed for the initialisation, the pair order and the negatives.
        negatives: Negatives per pair, drawn with replacement; a negative of
            ``u`` is any node that is neither an ancestor nor a descendant of
            ``u``, nor ``u`` itself.
        burn_in: Epochs at ``lr * burn_in_factor`` with negatives drawn in
            proportion to ``degree ** 0.75``; uniform negatives afterwards.
            Longer is not better in general (measured with ``balance=0``): 100
            (of 300) raised dim-2 MAP on mammals from 0.78 to 0.80 but lowered
            it on a random tree from 0.83 to 0.69.
        burn_in_factor: Learning-rate multiplier during burn-in.
        balance: Pairs are drawn, with replacement, in proportion to
            ``degree(anchor) ** -balance`` (an epoch still draws as many pairs
            as there are). ``0`` visits each pair once per epoch, which favours
            the mean rank (an average over pairs); ``1`` gives each node equal
            weight, which favours MAP (an average over nodes). On WordNet
            mammals at dim 2, 0, 0.5 and 1 gave MAP 0.79, 0.88 and 0.87 and mean
            rank 8.0, 10.9 and 20.6; at dim 5, MAP 0.982, 0.991, 0.991 and mean
            rank 1.6, 4.2, 8.6. From 0 to 0.5, dim-2 MAP also rose on six other
            WordNet noun subtrees (by 0.03 to 0.13) and on a random tree.
        lr: Learning rate (the loss is the batch mean); ``None`` means
            :data:`DEFAULT_LR` for the optimiser.
        batch_size: Pairs per step; each batch shares one draw of negatives.
            ``None`` means :data:`DEFAULT_BATCH_SIZE`, or less for small closures
            so that an epoch has at least 12 steps.
        optimizer: ``"adam"`` (geoopt's ``RiemannianAdam``, the default: it
            copes with large batches) or ``"sgd"`` (``RiemannianSGD``, as in the
            paper).
        decay: Fraction of the epochs, at the end, over which the learning
            rate decays linearly to 1% of ``lr``; 0 keeps it constant.
        dtype: ``numpy.float64`` (recommended: distances near the boundary need
            it) or ``numpy.float32``.
        symmetric: Train each related pair in both directions, matching the
            undirected evaluation; ``False`` trains child-to-ancestor only.
            ``False`` is not a general gain at dim 2 (measured with
            ``balance=0``): on WordNet mammals it raised MAP from 0.78 to
            0.82-0.84 (seeds 0-1), but on random trees of 1,000 nodes it
            dropped from 0.83 to 0.67-0.70, and at dim 5 on mammals from 0.98
            to 0.95. With ``burn_in=100`` as well, other WordNet subtrees
            fell: bird 0.82 to 0.71, fish 0.86 to 0.78.
        init_scale: Points start uniform in ``[-init_scale, init_scale]^dim``.
        temperature: Distances are divided by it inside the softmax; ``None``
            means :func:`default_temperature` of ``dim``, ``1 / (dim - 1)``.
            Larger values push points further out (``1`` is the paper's loss).
        progress: Show a tqdm progress bar over epochs.
        callback: Called as ``callback(epoch, mean_loss)`` after each epoch.

    Returns:
        A float64 point strictly inside the unit ball for every node.

    Raises:
        ValidationError: for an empty closure or an invalid parameter.

    Example:
        >>> emb = fit_poincare([("dog", "mammal"), ("cat", "mammal")], 2, epochs=5)
        >>> sorted(emb)
        ['cat', 'dog', 'mammal']
    """
    return _fit(
        edges,
        dim,
        geometry="poincare",
        epochs=epochs,
        seed=seed,
        negatives=negatives,
        burn_in=burn_in,
        burn_in_factor=burn_in_factor,
        balance=balance,
        lr=lr,
        batch_size=batch_size,
        optimizer=optimizer,
        decay=decay,
        dtype=dtype,
        symmetric=symmetric,
        init_scale=init_scale,
        temperature=temperature,
        progress=progress,
        callback=callback,
    )


def fit_euclidean(
    edges: Iterable[tuple[NodeT, NodeT]],
    dim: int,
    *,
    epochs: int | None = None,
    seed: int = 0,
    negatives: int = DEFAULT_NEGATIVES,
    burn_in: int = DEFAULT_BURN_IN,
    burn_in_factor: float = DEFAULT_BURN_IN_FACTOR,
    balance: float = DEFAULT_BALANCE,
    lr: float | None = None,
    batch_size: int | None = None,
    optimizer: Literal["adam", "sgd"] = DEFAULT_OPTIMIZER,
    decay: float = DEFAULT_DECAY,
    dtype: DTypeLike = np.float64,
    symmetric: bool = True,
    init_scale: float = DEFAULT_INIT_SCALE,
    temperature: float | None = None,
    progress: bool = False,
    callback: Callable[[int, float], None] | None = None,
) -> dict[NodeT, NDArray[np.float64]]:
    """Euclidean twin of :func:`fit_poincare`: same loss, sampler and schedule.

    Distances are Euclidean and the optimiser is the same geoopt one on the
    Euclidean manifold (where it is plain Adam or SGD), with the same
    temperature, so comparisons isolate the geometry. Arguments and return
    value are as for :func:`fit_poincare`, except that points are unconstrained.
    """
    return _fit(
        edges,
        dim,
        geometry="euclidean",
        epochs=epochs,
        seed=seed,
        negatives=negatives,
        burn_in=burn_in,
        burn_in_factor=burn_in_factor,
        balance=balance,
        lr=lr,
        batch_size=batch_size,
        optimizer=optimizer,
        decay=decay,
        dtype=dtype,
        symmetric=symmetric,
        init_scale=init_scale,
        temperature=temperature,
        progress=progress,
        callback=callback,
    )
