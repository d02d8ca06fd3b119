import math

import pytest
import torch

from ui3d.world import sdf as S


def _grid(bound: float = 0.5, n: int = 100) -> tuple[torch.Tensor, float]:
    c = (torch.arange(n, dtype=torch.float32) + 0.5) / n * 2 * bound - bound
    p = torch.stack(torch.meshgrid(c, c, c, indexing="ij"), dim=-1).reshape(-1, 3)
    return p, (2 * bound / n) ** 3


def _volume(d: torch.Tensor, cell: float) -> float:
    return float((d < 0).sum()) * cell


def test_exact_distances_at_known_points():
    p = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.6, 0.7, 0.0]])
    assert torch.allclose(S.sphere(p, (0, 0, 0), 0.5), torch.tensor([0.5, -0.5, math.hypot(0.6, 0.7) - 0.5]))
    # box corner region: distance to the corner (0.5, 0.5, 0)
    q = torch.tensor([[0.6, 0.7, 0.0], [0.0, 0.0, 0.0], [0.9, 0.0, 0.0]])
    assert torch.allclose(
        S.box(q, (0, 0, 0), (0.5, 0.5, 0.25)), torch.tensor([math.hypot(0.1, 0.2), -0.25, 0.4])
    )
    # torus: the ring centre line is at distance -minor, the axis at distance major - minor
    t = torch.tensor([[0.3, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.3, 0.5]])
    assert torch.allclose(S.torus(t, (0, 0, 0), 0.3, 0.1), torch.tensor([-0.1, 0.2, 0.4]), atol=1e-6)
    # cone: the apex is on the surface; a point above it is at the vertical distance
    c = torch.tensor([[0.0, 0.0, 0.4], [0.0, 0.0, 0.6], [0.0, 0.0, -0.5]])
    assert torch.allclose(
        S.cone(c, (0, 0, -0.3), (0, 0, 0.4), 0.3, 0.0), torch.tensor([0.0, 0.2, 0.2]), atol=1e-6
    )
    # cylinder: outside the rim, distance to the rim circle
    y = torch.tensor([[0.4, 0.0, 0.4], [0.0, 0.0, 0.0]])
    assert torch.allclose(
        S.cylinder(y, (0, 0, -0.3), (0, 0, 0.3), 0.3), torch.tensor([math.hypot(0.1, 0.1), -0.3]), atol=1e-6
    )


@pytest.mark.parametrize(
    "fn, volume",
    [
        (lambda p: S.sphere(p, (0.05, 0, 0), 0.3), 4 / 3 * math.pi * 0.3**3),
        (lambda p: S.box(p, (0, 0, 0), (0.3, 0.2, 0.1)), 0.6 * 0.4 * 0.2),
        (lambda p: S.cylinder(p, (0, 0, -0.3), (0, 0, 0.3), 0.25), math.pi * 0.25**2 * 0.6),
        (lambda p: S.cylinder(p, (-0.3, 0, 0), (0.3, 0, 0.0), 0.25), math.pi * 0.25**2 * 0.6),
        (
            lambda p: S.cone(p, (0, 0, -0.3), (0, 0, 0.4), 0.35, 0.1),
            math.pi * 0.7 / 3 * (0.35**2 + 0.35 * 0.1 + 0.1**2),
        ),
        (lambda p: S.cone(p, (0, -0.3, 0), (0, 0.4, 0), 0.35, 0.0), math.pi * 0.7 / 3 * 0.35**2),
        (lambda p: S.torus(p, (0, 0, 0), 0.3, 0.1), 2 * math.pi**2 * 0.3 * 0.1**2),
        (lambda p: S.ellipsoid(p, (0, 0, 0), (0.4, 0.3, 0.2)), 4 / 3 * math.pi * 0.4 * 0.3 * 0.2),
    ],
)
def test_primitive_volumes_match_formulas(fn, volume):
    p, cell = _grid()
    assert _volume(fn(p), cell) == pytest.approx(volume, rel=0.02)


def test_general_axis_formulas_match_vertical_ones_after_rotation():
    g = torch.Generator().manual_seed(0)
    p = torch.rand(5000, 3, generator=g) * 1.2 - 0.6
    rot = S.rotation_matrix("y", 90)  # maps +z to +x
    q = S.rotate(p, rot)
    a = S.cylinder(p, (-0.2, 0.05, 0.0), (0.3, 0.05, 0.0), 0.15)
    b = S.cylinder(q, (0.0, 0.05, -0.2), (0.0, 0.05, 0.3), 0.15)
    assert torch.allclose(a, b, atol=1e-5)
    a = S.cone(p, (-0.2, 0.0, 0.1), (0.3, 0.0, 0.1), 0.2, 0.05)
    b = S.cone(q, (-0.1, 0.0, -0.2), (-0.1, 0.0, 0.3), 0.2, 0.05)
    assert torch.allclose(a, b, atol=1e-5)


@pytest.mark.parametrize(
    "fn",
    [
        lambda p: S.cone(p, (0, 0, -0.3), (0, 0, 0.4), 0.35, 0.0),
        lambda p: S.cylinder(p, (0, -0.1, -0.3), (0.1, 0.1, 0.3), 0.2),
        lambda p: S.box(p, (0, 0, 0), (0.3, 0.2, 0.1), rounding=0.02),
        lambda p: S.capsule(p, (0, 0, -0.2), (0.1, 0.1, 0.2), 0.1),
    ],
)
def test_exact_sdfs_have_unit_gradient(fn):
    g = torch.Generator().manual_seed(1)
    p = (torch.rand(4000, 3, generator=g) * 1.2 - 0.6).requires_grad_(True)
    (grad,) = torch.autograd.grad(fn(p).sum(), p)
    norms = grad.norm(dim=-1)
    # a distance function has |grad| = 1 almost everywhere (not on the medial axis)
    assert (norms - 1).abs().lt(1e-3).float().mean() > 0.98


def test_combinators():
    p = torch.tensor([[0.0, 0.0, 0.0], [0.45, 0.0, 0.0]])
    a = S.sphere(p, (0, 0, 0), 0.3)
    b = S.sphere(p, (0.4, 0, 0), 0.1)
    assert torch.equal(S.union(a, b), torch.minimum(a, b))
    assert torch.all(S.smooth_union(a, b, 0.1) <= torch.minimum(a, b) + 1e-7)
    cut = S.subtract(a, S.sphere(p, (0, 0, 0), 0.1))
    assert cut[0] > 0  # the centre was carved out
    assert torch.allclose(S.scaled(lambda x: S.sphere(x, (0, 0, 0), 0.2), 2.0)(p)[:1], torch.tensor([-0.4]))
    assert torch.allclose(
        S.spheres(p, [(0, 0, 0), (0.4, 0, 0)], 0.1), torch.minimum(S.sphere(p, (0, 0, 0), 0.1), b)
    )
    with pytest.raises(ValueError, match="axis"):
        S.rotation_matrix("w", 10)
