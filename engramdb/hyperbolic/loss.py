"""The training loss of :mod:`engramdb.hyperbolic.train` with its gradient written out.

For a batch of related pairs ``(u_i, v_i)`` sharing one draw of negatives
``n_j``, the loss is the mean over ``i`` of::

    p_i  = exp(-d(u_i, v_i) / T)
    L_i  = -log( p_i / (p_i + sum_j [not related(i, j)] exp(-d(u_i, n_j) / T)) )

Autograd builds this from some sixty element-wise passes over the
``(batch, negatives)`` matrix and keeps every intermediate for the backward
pass; at the batch and negative counts that train well (1024 x 400 and more)
those passes are the whole cost of training. Written out, the forward and
backward passes share their intermediates and take about twenty passes, which
buys several times more negatives in the same time.

Both distances are functions of the squared difference ``S = |x - y|^2`` and of
the squared norms, so one derivation serves both geometries:

* Poincaré ball (curvature -1): ``d = arccosh(1 + z)``, ``z = 2 S / (a_x a_y)``,
  ``a = 1 - |x|^2``. With ``H = dL/dd / sqrt(z (z + 2))`` (that is ``dL/dz``),
  ``dL/dx = 2 (dL/dS) (x - y) + 2 (dL/d|x|^2) x`` where ``dL/dS = 2 H / (a_x a_y)``
  and ``dL/d|x|^2 = H z / a_x``.
* Euclidean: ``d = sqrt(S)``, ``dL/dS = dL/dd / (2 d)``, no norm term.

The functions return Euclidean gradients; the Riemannian optimiser converts
them (:meth:`geoopt.PoincareBall.egrad2rgrad` rescales by the conformal factor).
"""

from __future__ import annotations

import math
from typing import Literal, NamedTuple

import torch

__all__ = ["BatchGradient", "batch_loss_and_grad"]

# Floors that keep divisions finite for coinciding points or points on the
# projection margin (where 1 - |x|^2 is about 2e-5 in float64); they match the
# floors of the autograd formulation so both give the same numbers.
_TINY = 1e-15


class BatchGradient(NamedTuple):
    """The batch loss and the Euclidean gradients of its three point sets."""

    loss: float
    grad_u: torch.Tensor
    grad_v: torch.Tensor
    grad_negatives: torch.Tensor


def batch_loss_and_grad(
    u: torch.Tensor,
    v: torch.Tensor,
    negatives: torch.Tensor,
    related: torch.Tensor,
    *,
    geometry: Literal["poincare", "euclidean"],
    inv_temperature: float,
) -> BatchGradient:
    """The mean softmax loss of a batch and its gradients, without autograd.

    Args:
        u: ``(batch, dim)`` anchors.
        v: ``(batch, dim)`` their related nodes (the positives).
        negatives: ``(negatives, dim)`` shared by the whole batch.
        related: ``(batch, negatives)`` booleans; a related negative is left out
            of its anchor's softmax.
        geometry: ``"poincare"`` (unit ball, curvature -1) or ``"euclidean"``.
        inv_temperature: ``1 / T``.

    Returns:
        The loss and the gradients with respect to ``u``, ``v`` and
        ``negatives`` (rows of repeated nodes are separate; sum them).
    """
    batch = u.shape[0]
    sq_u = u.pow(2).sum(-1)
    sq_v = v.pow(2).sum(-1)
    sq_n = negatives.pow(2).sum(-1)
    diff = u - v
    s_pos = diff.pow(2).sum(-1)
    # S_ij = |u_i|^2 + |n_j|^2 - 2 u_i . n_j, from one matrix product; exact
    # enough in float64 for negatives, which are not close to their anchors.
    s_neg = torch.addmm(sq_n.expand(batch, -1), u, negatives.T, beta=1.0, alpha=-2.0)
    s_neg.add_(sq_u[:, None]).clamp_min_(0.0)

    if geometry == "poincare":
        inv_a_u = 1.0 / (1.0 - sq_u).clamp_min(_TINY)
        inv_a_v = 1.0 / (1.0 - sq_v).clamp_min(_TINY)
        inv_a_n = 1.0 / (1.0 - sq_n).clamp_min(_TINY)
        z_pos = 2.0 * s_pos * inv_a_u * inv_a_v
        root_pos = (z_pos * (z_pos + 2.0)).clamp_min(_TINY).sqrt()
        d_pos = torch.log1p(z_pos + root_pos)
        # z = 2 S / (a_u a_n), built in place on S's storage.
        z = s_neg.mul_(inv_a_u[:, None]).mul_(inv_a_n[None, :]).mul_(2.0)
        root = torch.addcmul(z, z, z).add_(z)  # z (z + 2)
        root.clamp_min_(_TINY).sqrt_()
        dist = torch.log1p(z + root)
    else:
        d_pos = s_pos.clamp_min(_TINY).sqrt()
        dist = s_neg.clamp_min(_TINY).sqrt()

    # Softmax over [positive, unrelated negatives] with logits -d / T.
    logit_pos = d_pos.mul(-inv_temperature)
    logits = dist.mul(-inv_temperature)
    logits.masked_fill_(related, -math.inf)
    top = torch.maximum(logits.amax(1), logit_pos)
    exp = logits.sub_(top[:, None]).exp_()  # related negatives give exp(-inf) = 0
    exp_pos = (logit_pos - top).exp()
    total = exp.sum(1) + exp_pos
    loss = float((torch.log(total) - (logit_pos - top)).mean())

    # dL/dd: (1 - p_pos) / (B T) for the positive, -p_j / (B T) for negative j.
    scale = inv_temperature / batch
    p_pos = exp_pos / total
    g_pos = (1.0 - p_pos) * scale
    g_neg = exp.mul_((-scale / total)[:, None])  # reuses exp's storage

    if geometry == "poincare":
        h_pos = g_pos / root_pos  # dL/dz
        gs_pos = 2.0 * h_pos * inv_a_u * inv_a_v  # dL/dS
        hz_pos = h_pos * z_pos
        grad_u = 2.0 * (gs_pos[:, None] * diff + (hz_pos * inv_a_u)[:, None] * u)
        grad_v = 2.0 * (-gs_pos[:, None] * diff + (hz_pos * inv_a_v)[:, None] * v)
        h = g_neg.div_(root)  # dL/dz, on g_neg's storage
        hz = z.mul_(h)  # on z's storage: z is not needed again
        gs = h.mul_(inv_a_u[:, None]).mul_(inv_a_n[None, :]).mul_(2.0)  # dL/dS
        row = gs.sum(1) + hz.sum(1) * inv_a_u
        col = gs.sum(0) + hz.sum(0) * inv_a_n
    else:
        gs_pos = g_pos / (2.0 * d_pos)
        grad_u = 2.0 * gs_pos[:, None] * diff
        grad_v = -grad_u
        gs = g_neg.div_(dist).mul_(0.5)
        row = gs.sum(1)
        col = gs.sum(0)
    # d S_ij / d u_i = 2 (u_i - n_j); d S_ij / d n_j = 2 (n_j - u_i).
    grad_u += 2.0 * (row[:, None] * u - gs @ negatives)
    grad_n = 2.0 * (col[:, None] * negatives - gs.T @ u)
    return BatchGradient(loss, grad_u, grad_v, grad_n)
