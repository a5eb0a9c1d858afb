"""The hand-written loss and gradient of the trainer against autograd."""

from __future__ import annotations

import math

import geoopt
import pytest
import torch

from engramdb.hyperbolic.loss import batch_loss_and_grad


def reference_loss(
    u: torch.Tensor,
    v: torch.Tensor,
    negatives: torch.Tensor,
    related: torch.Tensor,
    *,
    geometry: str,
    inv_temperature: float,
) -> torch.Tensor:
    """The same loss from geoopt's distance (or torch's norm), traced by autograd."""
    if geometry == "poincare":
        ball = geoopt.PoincareBall(c=1.0)
        pos = ball.dist(u, v)
        neg = ball.dist(u[:, None, :], negatives[None, :, :])
    else:
        pos = (u - v).norm(dim=-1)
        neg = (u[:, None, :] - negatives[None, :, :]).norm(dim=-1)
    logits = torch.cat([-pos[:, None], (-neg).masked_fill(related, -math.inf)], 1)
    target = torch.zeros(len(u), dtype=torch.int64)
    return torch.nn.functional.cross_entropy(logits * inv_temperature, target)


def random_points(n: int, dim: int, generator: torch.Generator, *, radius: float) -> torch.Tensor:
    direction = torch.randn(n, dim, generator=generator, dtype=torch.float64)
    direction /= direction.norm(dim=-1, keepdim=True)
    norm = radius * torch.rand(n, 1, generator=generator, dtype=torch.float64)
    return direction * norm


@pytest.mark.parametrize("geometry", ["poincare", "euclidean"])
@pytest.mark.parametrize("radius", [0.5, 0.999])
def test_loss_and_gradient_match_autograd(geometry: str, radius: float) -> None:
    generator = torch.Generator().manual_seed(3)
    batch, n_neg, dim = 17, 29, 5
    u = random_points(batch, dim, generator, radius=radius).requires_grad_()
    v = random_points(batch, dim, generator, radius=radius).requires_grad_()
    negatives = random_points(n_neg, dim, generator, radius=radius).requires_grad_()
    related = torch.rand(batch, n_neg, generator=generator) < 0.3
    related[0] = True  # an anchor whose every negative is related

    expected = reference_loss(u, v, negatives, related, geometry=geometry, inv_temperature=2.5)
    expected.backward()  # type: ignore[no-untyped-call]
    got = batch_loss_and_grad(
        u.detach(),
        v.detach(),
        negatives.detach(),
        related,
        geometry=geometry,  # type: ignore[arg-type]
        inv_temperature=2.5,
    )

    assert got.loss == pytest.approx(expected.item(), rel=1e-10)
    for mine, reference in [
        (got.grad_u, u.grad),
        (got.grad_v, v.grad),
        (got.grad_negatives, negatives.grad),
    ]:
        assert reference is not None
        torch.testing.assert_close(mine, reference, rtol=1e-7, atol=1e-10)


def test_a_negative_on_its_anchor_gives_finite_gradients() -> None:
    generator = torch.Generator().manual_seed(4)
    u = random_points(6, 3, generator, radius=0.9)
    negatives = torch.cat([u[:2], random_points(4, 3, generator, radius=0.9)])
    related = torch.zeros(6, 6, dtype=torch.bool)
    for geometry in ("poincare", "euclidean"):
        got = batch_loss_and_grad(
            u, u.flip(0), negatives, related, geometry=geometry, inv_temperature=1.0
        )
        assert math.isfinite(got.loss)
        for grad in (got.grad_u, got.grad_v, got.grad_negatives):
            assert torch.isfinite(grad).all()
