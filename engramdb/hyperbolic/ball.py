"""Poincaré ball and hyperboloid (Lorentz) maths with an explicit curvature.

The ball of curvature ``-c`` (``c > 0``) is the open ball of radius ``1/sqrt(c)``.
Every function takes the curvature as the keyword ``c``, accepts a NumPy array
or a torch tensor, and returns the same kind it was given (NumPy in, NumPy out).
The formulas and boundary margins are geoopt's (:class:`geoopt.PoincareBall`,
the manifold the trainer optimises on), but they are written out with torch's
own ``tanh``/``atanh``/``log1p``: with this torch, geoopt's TorchScript kernels
reach only about float32 accuracy on float64 tensors (``expmap0`` of norm 4 is
off by 2e-8, ``projx`` overshoots the 1e-5 margin by 2e-8 and ``dist`` near the
boundary is off by up to ~1e-4 relative), too coarse for points that sit 1e-5
from the boundary. The tests compare both with geoopt.

Example:
    >>> import numpy as np
    >>> x = expmap0(np.array([[0.3, -0.2]]), c=1.0)
    >>> float(distance(x, x, c=1.0)[0])
    0.0
"""

from __future__ import annotations

import math
from typing import Any, TypeVar, cast

import numpy as np
import torch

from engramdb.errors import ValidationError

__all__ = [
    "boundary_margin",
    "distance",
    "expmap0",
    "from_hyperboloid",
    "logmap0",
    "pairwise_distance",
    "project",
    "to_hyperboloid",
]

ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)

# Pairwise distances broadcast to an (rows, cols, dim) tensor; keep each block
# to about this many elements.
_PAIRWISE_BLOCK_ELEMENTS = 1 << 24


def boundary_margin(dtype: torch.dtype | np.dtype | type) -> float:
    """Relative distance from the boundary that projected points keep.

    The margins are geoopt's: float32 points stay ``4e-3`` inside the boundary,
    float64 points ``1e-5``. Closer than that, ``1 - c|x|^2`` cancels to a few
    ulps and distances (which grow like ``-log(1 - |x|)``) become noise.

    Args:
        dtype: A torch or NumPy floating dtype.

    Returns:
        The margin ``eps``: projected points have norm at most ``(1 - eps)/sqrt(c)``.
    """
    if isinstance(dtype, torch.dtype):
        is_single = dtype in (torch.float32, torch.float16, torch.bfloat16)
    else:
        is_single = np.dtype(dtype).itemsize <= 4
    return 4e-3 if is_single else 1e-5


def _check_c(c: float) -> float:
    if not (isinstance(c, (int, float)) and math.isfinite(c) and c > 0):
        raise ValidationError(
            f"curvature c={c!r} is not a positive finite number; the ball has "
            "curvature -c, pass e.g. c=1.0"
        )
    return float(c)


def _to_tensor(x: np.ndarray | torch.Tensor) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        t = x
    else:
        t = torch.from_numpy(np.asarray(x))
    if not t.is_floating_point():
        t = t.to(torch.float64)
    return t


def _like(result: torch.Tensor, template: ArrayT) -> ArrayT:
    """``result`` as the same kind of array as ``template`` (NumPy or torch)."""
    out: Any = result if isinstance(template, torch.Tensor) else result.detach().cpu().numpy()
    return cast(ArrayT, out)


def _project(t: torch.Tensor, c: float) -> torch.Tensor:
    # Same rule and margins as geoopt's projx, written out because geoopt's
    # scripted kernel overshoots the float64 margin by ~2e-8 on this torch.
    max_norm = (1.0 - boundary_margin(t.dtype)) / math.sqrt(c)
    norm = t.norm(dim=-1, keepdim=True)
    return torch.where(norm > max_norm, t * (max_norm / norm.clamp_min(max_norm)), t)


def project(x: ArrayT, *, c: float) -> ArrayT:
    """Pull points back inside the ball, keeping a dtype-aware margin.

    Args:
        x: Points of shape ``(..., dim)``.
        c: Curvature magnitude; the ball has radius ``1/sqrt(c)``.

    Returns:
        Points with norm at most ``(1 - eps)/sqrt(c)`` where ``eps`` is
        :func:`boundary_margin` of the dtype; points already inside are unchanged.
    """
    return _like(_project(_to_tensor(x), _check_c(c)), x)


def _norm(t: torch.Tensor) -> torch.Tensor:
    # The floor only avoids 0/0 at the origin, where the maps are the identity.
    norm: torch.Tensor = t.norm(dim=-1, keepdim=True)
    return norm.clamp_min(float(torch.finfo(t.dtype).tiny))


def expmap0(v: ArrayT, *, c: float) -> ArrayT:
    """Exponential map at the origin: tangent vectors to points of the ball.

    Args:
        v: Tangent vectors at the origin, shape ``(..., dim)``.
        c: Curvature magnitude.

    Returns:
        Points ``tanh(sqrt(c)|v|) v / (sqrt(c)|v|)``, projected inside the boundary
        (large tangent vectors would otherwise round onto it).
    """
    sqrt_c = math.sqrt(_check_c(c))
    t = _to_tensor(v)
    n = _norm(t) * sqrt_c
    return _like(_project(torch.tanh(n) * t / n, c), v)


def logmap0(x: ArrayT, *, c: float) -> ArrayT:
    """Logarithmic map at the origin, the inverse of :func:`expmap0`.

    Args:
        x: Points of the ball, shape ``(..., dim)``.
        c: Curvature magnitude.

    Returns:
        Tangent vectors ``artanh(sqrt(c)|x|) x / (sqrt(c)|x|)`` at the origin; the
        norm of each is the distance to the origin.
    """
    sqrt_c = math.sqrt(_check_c(c))
    # artanh is infinite on the boundary: project first so that points that
    # rounded onto it map to a large finite vector.
    t = _project(_to_tensor(x), c)
    n = _norm(t) * sqrt_c
    return _like(torch.atanh(n) * t / n, x)


def _dist(x: torch.Tensor, y: torch.Tensor, c: float) -> torch.Tensor:
    """``arccosh(1 + 2c|x-y|^2 / ((1-c|x|^2)(1-c|y|^2))) / sqrt(c)``, broadcasting."""
    sq_x = c * x.pow(2).sum(-1)
    sq_y = c * y.pow(2).sum(-1)
    # Inputs closer to the boundary than the projection margin are floored to
    # it, as project() would place them; 0 or less would give inf or NaN.
    eps = boundary_margin(x.dtype)
    floor = eps * (2.0 - eps)
    den = (1.0 - sq_x).clamp_min(floor) * (1.0 - sq_y).clamp_min(floor)
    arg = 2.0 * c * (x - y).pow(2).sum(-1) / den
    # arccosh(1 + a) = log1p(a + sqrt(a (a + 2))) keeps full precision for near
    # points, where arccosh of a number close to 1 cancels.
    return torch.log1p(arg + (arg * (arg + 2.0)).sqrt()) / math.sqrt(c)


def distance(x: ArrayT, y: ArrayT, *, c: float) -> ArrayT:
    """Geodesic distance between matching points (elementwise, broadcasting).

    Args:
        x: Points of shape ``(..., dim)``.
        y: Points broadcastable against ``x``.
        c: Curvature magnitude.

    Returns:
        Distances of the broadcast shape without the last axis.
    """
    c = _check_c(c)
    tx = _to_tensor(x)
    return _like(_dist(tx, _to_tensor(y).to(tx.dtype), c), x)


def pairwise_distance(x: ArrayT, y: ArrayT | None = None, *, c: float) -> ArrayT:
    """Geodesic distances between every row of ``x`` and every row of ``y``.

    Computed in blocks so memory stays bounded for large inputs.

    Args:
        x: Points of shape ``(n, dim)``.
        y: Points of shape ``(m, dim)``; ``x`` itself when omitted.
        c: Curvature magnitude.

    Returns:
        An ``(n, m)`` matrix of distances.
    """
    c = _check_c(c)
    tx = _to_tensor(x)
    ty = tx if y is None else _to_tensor(y).to(tx.dtype)
    if tx.ndim != 2 or ty.ndim != 2 or tx.shape[1] != ty.shape[1]:
        raise ValidationError(
            f"pairwise_distance needs two (n, dim) matrices of the same dim, got "
            f"shapes {tuple(tx.shape)} and {tuple(ty.shape)}; reshape the inputs"
        )
    rows = max(1, _PAIRWISE_BLOCK_ELEMENTS // max(1, ty.shape[0] * ty.shape[1]))
    blocks = [
        _dist(tx[i : i + rows, None, :], ty[None, :, :], c) for i in range(0, tx.shape[0], rows)
    ]
    out = torch.cat(blocks) if blocks else tx.new_zeros((0, ty.shape[0]))
    return _like(out, x)


def to_hyperboloid(x: ArrayT, *, c: float) -> ArrayT:
    """Map ball points to the hyperboloid ``y0^2 - |y_1..n|^2 = 1/c``, ``y0 > 0``.

    The isometry is ``y = (1 + c|x|^2, 2 sqrt(c) x) / (sqrt(c) (1 - c|x|^2))``;
    for ``c = 1`` it is ``(1 + |x|^2, 2x) / (1 - |x|^2)``. The Minkowski product
    ``<p, q>_L = -p0 q0 + p_1..n . q_1..n`` then gives the distance
    ``arccosh(-c <p, q>_L) / sqrt(c)``.

    Args:
        x: Points of the ball, shape ``(..., dim)``.
        c: Curvature magnitude.

    Returns:
        Points of shape ``(..., dim + 1)``, time coordinate first.
    """
    c = _check_c(c)
    t = _to_tensor(x)
    sqrt_c = math.sqrt(c)
    sq = c * t.pow(2).sum(dim=-1, keepdim=True)
    # 1 - c|x|^2 reaches 0 on the boundary and the coordinates grow like its
    # inverse; flooring it at the projection margin keeps them finite and equal
    # to those of the projected point.
    eps = boundary_margin(t.dtype)
    den = (1.0 - sq).clamp_min(eps * (2.0 - eps))
    time = (1.0 + sq) / (sqrt_c * den)
    space = 2.0 * t / den
    return _like(torch.cat([time, space], dim=-1), x)


def from_hyperboloid(y: ArrayT, *, c: float) -> ArrayT:
    """Map hyperboloid points back to the ball, the inverse of :func:`to_hyperboloid`.

    Args:
        y: Points of shape ``(..., dim + 1)``, time coordinate first.
        c: Curvature magnitude.

    Returns:
        Points ``y_1..n / (1 + sqrt(c) y0)`` of the ball, shape ``(..., dim)``,
        projected inside the boundary.
    """
    c = _check_c(c)
    t = _to_tensor(y)
    # y0 >= 1/sqrt(c) on the hyperboloid, so the denominator is at least 2; the
    # clamp only guards against inputs that are slightly off the sheet.
    den = (1.0 + math.sqrt(c) * t[..., :1]).clamp_min(1.0)
    return _like(_project(t[..., 1:] / den, c), y)
