import dataclasses

import pytest
import torch

from ui3d.cameras import cameras_from_spherical, focal_length_px
from ui3d.render.gaussian_raster import RasterConfig, gsplat_available, project_gaussians, rasterize_gaussians


def _cam(size=32, distance=2.0, fovy=40.0, dtype=torch.float32):
    c = cameras_from_spherical(
        torch.tensor([0.0]), torch.tensor([0.0]), torch.tensor([distance]), torch.tensor([fovy]), size
    )
    if dtype != torch.float32:
        c = dataclasses.replace(c, **{f.name: getattr(c, f.name).to(dtype) for f in dataclasses.fields(c) if f.name not in ("height", "width")})
    return c


def _one(dtype=torch.float32):
    z = lambda *s: torch.zeros(*s, dtype=dtype)  # noqa: E731
    quats = z(1, 4)
    quats[:, 0] = 1
    return z(1, 3), quats


def test_single_isotropic_gaussian_has_the_analytic_footprint():
    cam = _cam()
    means, quats = _one()
    s, o = 0.05, 0.8
    out = rasterize_gaussians(means, torch.full((1, 3), s), quats, torch.tensor([o]), torch.tensor([[1.0, 0.5, 0.0]]),
                              cam, torch.zeros(1, 3))
    f = focal_length_px(cam).item()
    var = (s * f / 2.0) ** 2 + 0.3  # projected variance in px^2 + eps2d
    c = torch.arange(32, dtype=torch.float32) + 0.5 - 16.0
    r2 = c[None, :] ** 2 + c[:, None] ** 2
    expect = o * torch.exp(-0.5 * r2 / var)
    expect = torch.where(expect >= 1 / 255, expect, torch.zeros_like(expect))
    torch.testing.assert_close(out.alpha[0, ..., 0], expect, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(out.rgb[0, 16, 16], torch.tensor([1.0, 0.5, 0.0]) * expect[16, 16], atol=1e-5, rtol=1e-4)
    assert out.depth[0, 16, 16, 0].item() == pytest.approx(2.0, abs=1e-4)
    assert out.depth[0, 0, 0, 0].item() == 0.0  # uncovered pixels have depth 0


def test_two_overlapping_gaussians_composite_in_depth_order():
    cam = _cam()
    quats = torch.tensor([[1.0, 0, 0, 0]] * 2)
    means = torch.tensor([[0.3, 0.0, 0.0], [-0.3, 0.0, 0.0]])  # camera on +x: the first is in front
    scales = torch.full((2, 3), 0.2)
    op = torch.tensor([0.6, 0.9])
    cols = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    bg = torch.ones(1, 3)
    a = rasterize_gaussians(means, scales, quats, op, cols, cam, bg)
    b = rasterize_gaussians(means.flip(0), scales, quats, op.flip(0), cols.flip(0), cam, bg)
    torch.testing.assert_close(a.rgb, b.rgb)  # the order of the arrays does not matter
    a1, a2 = 0.6, 0.9  # both centred on the middle pixel corner region; check the central pixel exactly
    f = focal_length_px(cam).item()
    d = 0.5  # pixel (15, 15) centre is 0.5 px from the image centre in x and y
    g1 = a1 * torch.exp(torch.tensor(-0.5 * 2 * d * d / ((0.2 * f / 1.7) ** 2 + 0.3)))
    g2 = a2 * torch.exp(torch.tensor(-0.5 * 2 * d * d / ((0.2 * f / 2.3) ** 2 + 0.3)))
    expect = g1 * cols[0] + (1 - g1) * g2 * cols[1] + (1 - g1) * (1 - g2) * bg[0]
    torch.testing.assert_close(a.rgb[0, 15, 15], expect, atol=1e-4, rtol=1e-4)
    assert a.rgb[0, 15, 15, 0] > a.rgb[0, 15, 15, 2]  # red in front of blue


def test_tile_size_does_not_change_the_image():
    g = torch.Generator().manual_seed(0)
    n = 60
    means = (torch.rand(n, 3, generator=g) - 0.5) * 0.8
    scales = torch.rand(n, 3, generator=g) * 0.08 + 0.01
    quats = torch.randn(n, 4, generator=g)
    op = torch.rand(n, generator=g)
    cols = torch.rand(n, 3, generator=g)
    cam = _cam(size=24)
    outs = [rasterize_gaussians(means, scales, quats, op, cols, cam, torch.zeros(1, 3), RasterConfig(tile_size=t)) for t in (4, 8, 16)]
    for o in outs[1:]:
        torch.testing.assert_close(o.rgb, outs[0].rgb, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(o.alpha, outs[0].alpha, atol=1e-5, rtol=1e-4)


def test_gradients_match_finite_differences():
    dt = torch.float64
    cam = _cam(size=8, distance=2.0, dtype=dt)
    means = torch.tensor([[0.05, 0.02, -0.03], [-0.2, -0.04, 0.05]], dtype=dt, requires_grad=True)
    scales = torch.tensor([[0.12, 0.1, 0.15], [0.2, 0.16, 0.12]], dtype=dt, requires_grad=True)
    quats = torch.tensor([[1.0, 0.1, -0.2, 0.05], [0.9, 0.0, 0.3, 0.1]], dtype=dt, requires_grad=True)
    op = torch.tensor([0.5, 0.7], dtype=dt, requires_grad=True)
    cols = torch.tensor([[0.9, 0.2, 0.1], [0.1, 0.3, 0.8]], dtype=dt, requires_grad=True)
    weight = torch.randn(1, 8, 8, 3, generator=torch.Generator().manual_seed(0), dtype=dt)
    bg = torch.full((1, 3), 0.5, dtype=dt)

    def loss():
        o = rasterize_gaussians(means, scales, quats, op, cols, cam, bg)
        return (o.rgb * weight).sum() + o.alpha.sum()

    loss().backward()
    eps = 1e-6
    for p in (means, scales, quats, op, cols):
        flat = p.data.view(-1)
        for i in range(flat.numel()):
            old = flat[i].item()
            flat[i] = old + eps
            up = loss().item()
            flat[i] = old - eps
            down = loss().item()
            flat[i] = old
            fd = (up - down) / (2 * eps)
            assert p.grad.view(-1)[i].item() == pytest.approx(fd, rel=1e-4, abs=1e-6)


def test_gaussians_behind_the_camera_are_culled():
    cam = _cam()
    means, quats = _one()
    proj = project_gaussians(torch.tensor([[4.0, 0.0, 0.0]]), torch.full((1, 3), 0.1), quats, cam)
    assert proj.radii.item() == 0


@pytest.mark.gpu
def test_gsplat_parity():
    if not gsplat_available():
        pytest.skip("gsplat with CUDA not available")
    g = torch.Generator().manual_seed(0)
    n = 500
    args = [
        ((torch.rand(n, 3, generator=g) - 0.5) * 0.8).cuda(),
        (torch.rand(n, 3, generator=g) * 0.05 + 0.01).cuda(),
        torch.randn(n, 4, generator=g).cuda(),
        torch.rand(n, generator=g).cuda(),
        torch.rand(n, 3, generator=g).cuda(),
    ]
    cam = _cam(size=64).to("cuda")
    bg = torch.ones(1, 3, device="cuda")
    ref = rasterize_gaussians(*args, cam, bg, RasterConfig(backend="torch"))
    fast = rasterize_gaussians(*args, cam, bg, RasterConfig(backend="gsplat"))
    torch.testing.assert_close(fast.rgb, ref.rgb, atol=2e-3, rtol=1e-3)
    torch.testing.assert_close(fast.alpha, ref.alpha, atol=2e-3, rtol=1e-3)
