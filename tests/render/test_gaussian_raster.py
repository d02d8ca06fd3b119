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


def _cams(size, azimuth=(0.0,), elevation=(0.0,), distance=2.0, fovy=40.0, dtype=torch.float32):
    b = len(azimuth)
    c = cameras_from_spherical(
        torch.tensor(azimuth), torch.tensor(elevation), torch.full((b,), distance), torch.full((b,), fovy), size
    )
    floats = {f.name: getattr(c, f.name).to(dtype) for f in dataclasses.fields(c) if f.name not in ("height", "width")}
    return dataclasses.replace(c, **floats)


def _brute_force(means, scales, quats, op, cols, cams, bg):
    """Every pixel against every Gaussian (no footprints, no tiles): alpha min(0.99, o exp(-q/2)),
    alphas below 1/255 skipped, front to back, a pixel takes no more Gaussians once T <= 1e-4."""
    proj = project_gaussians(means, scales, quats, cams)
    h, w = cams.height, cams.width
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    centres = torch.stack([xs, ys], -1).reshape(-1, 1, 2).to(means.dtype) + 0.5  # [HW, 1, 2]
    images = []
    for b in range(len(cams)):
        dx, dy = (centres - proj.means2d[b][None]).unbind(-1)  # [HW, N]
        a, bb, c = proj.conics[b].unbind(-1)
        alpha = (op * torch.exp(-0.5 * (a * dx * dx + 2 * bb * dx * dy + c * dy * dy))).clamp_max(0.99)
        alpha = torch.where((alpha >= 1 / 255) & (proj.radii[b] > 0), alpha, torch.zeros_like(alpha))
        order = torch.argsort(proj.depths[b].detach(), stable=True)
        alpha = alpha[:, order]
        trans = torch.cumprod(torch.cat([torch.ones_like(alpha[:, :1]), 1 - alpha[:, :-1]], 1), 1)
        wgt = torch.where(trans > 1e-4, alpha * trans, torch.zeros_like(alpha))
        vals = torch.cat([cols, torch.ones_like(op)[:, None], proj.distances[b][:, None], proj.normals[b]], -1)[order]
        images.append((wgt @ vals).reshape(h, w, 8))
    img = torch.stack(images)
    alpha = img[..., 3:4]
    covered = alpha > 1e-6
    return {
        "rgb": img[..., :3] + (1 - alpha) * bg[:, None, None, :],
        "alpha": alpha,
        "depth": torch.where(covered, img[..., 4:5] / alpha.clamp_min(1e-6), torch.zeros_like(alpha)),
        "normal": torch.where(covered, torch.nn.functional.normalize(img[..., 5:8], dim=-1), torch.zeros_like(img[..., 5:8])),
    }


def _scene(n=20, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    means = (torch.rand(n, 3, generator=g, dtype=dtype) - 0.5) * 0.9
    scales = torch.rand(n, 3, generator=g, dtype=dtype) * 0.12 + 0.02
    quats = torch.randn(n, 4, generator=g, dtype=dtype)
    op = torch.rand(n, generator=g, dtype=dtype) * 0.6 + 0.1
    # three large, nearly opaque Gaussians stacked on the axis saturate the centre (early termination)
    means[:3] = torch.tensor([[0.3, 0.0, 0.0], [0.2, 0.05, 0.0], [0.1, 0.0, 0.05]], dtype=dtype)
    scales[:3] = 0.25
    op[:3] = 0.995
    means[3] = torch.tensor([5.0, 0.0, 0.0], dtype=dtype)  # behind the first camera
    cols = torch.rand(n, 3, generator=g, dtype=dtype)
    return [t.requires_grad_() for t in (means, scales, quats, op, cols)]


@pytest.mark.parametrize("cfg", [RasterConfig(), RasterConfig(tile_size=1), RasterConfig(tile_size=16, max_chunk_elements=300)])
@pytest.mark.parametrize("used", [("rgb", "alpha", "depth", "normal"), ("rgb",)])
def test_matches_a_brute_force_reference_with_gradients(cfg, used):
    """``used``: the outputs the loss reads (an rgb-only loss leaves depth and normals without a
    gradient, which the compositing backward skips)."""
    dt = torch.float64
    params = _scene(dtype=dt)
    cams = _cams((10, 12), azimuth=(0.0, 70.0), elevation=(0.0, 25.0), dtype=dt)
    bg = torch.tensor([[0.2, 0.5, 0.9], [1.0, 1.0, 1.0]], dtype=dt)
    weights = {k: torch.randn(2, 10, 12, d, generator=torch.Generator().manual_seed(i), dtype=dt)
               for i, (k, d) in enumerate([("rgb", 3), ("alpha", 1), ("depth", 1), ("normal", 3)]) if k in used}

    def outputs_and_grads(render):
        out = render()
        loss = sum((out[k] * wk).sum() for k, wk in weights.items())
        grads = torch.autograd.grad(loss, params)
        return {k: out[k].detach() for k in ("rgb", "alpha", "depth", "normal")}, grads

    fast = lambda: vars(rasterize_gaussians(*params, cams, bg, cfg))  # noqa: E731
    got, got_grads = outputs_and_grads(fast)
    want, want_grads = outputs_and_grads(lambda: _brute_force(*params, cams, bg))
    assert (want["alpha"] > 0.9999).any() and (want["alpha"] == 0).any()  # saturated and empty pixels
    for k in want:
        torch.testing.assert_close(got[k], want[k], atol=1e-10, rtol=1e-9)
    for name, g1, g2 in zip(("means", "scales", "quats", "opacities", "colours"), got_grads, want_grads):
        torch.testing.assert_close(g1, g2, atol=1e-9, rtol=1e-8, msg=name)


def test_weights_sum_each_gaussians_compositing_weights():
    params = _scene(n=12, seed=1, dtype=torch.float32)
    cams = _cams(16, azimuth=(0.0, 90.0), elevation=(0.0, 10.0))
    out = rasterize_gaussians(*[p.detach() for p in params], cams, torch.zeros(2, 3))
    # a pixel's alpha is the sum of its compositing weights, so the image's total is that of all Gaussians
    assert out.weights.shape == (2, 12) and (out.weights >= 0).all()
    total = out.weights.sum(1)
    torch.testing.assert_close(total, out.alpha.sum((1, 2, 3)), rtol=1e-4, atol=1e-4)
    assert (out.weights[0, 3] == 0) and (out.radii[0, 3] == 0)  # culled: behind the camera


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
    """gsplat against the torch rasteriser: the image, and a loss's gradients with respect to every
    Gaussian parameter. Gradients are compared as a whole per parameter (relative L2 error): a few
    (pixel, Gaussian) pairs at the 1/255 alpha cut-off may fall on either side in float32."""
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
    upstream_rgb = torch.randn(1, 64, 64, 3, generator=g).cuda()
    upstream_alpha = torch.randn(1, 64, 64, 1, generator=g).cuda()

    def image_and_grads(backend):
        params = [a.clone().requires_grad_(True) for a in args]
        out = rasterize_gaussians(*params, cam, bg, RasterConfig(backend=backend))
        loss = (out.rgb * upstream_rgb).sum() + (out.alpha * upstream_alpha).sum()
        return out, torch.autograd.grad(loss, params)

    ref, ref_grads = image_and_grads("torch")
    fast, fast_grads = image_and_grads("gsplat")
    torch.testing.assert_close(fast.rgb, ref.rgb, atol=2e-3, rtol=1e-3)
    torch.testing.assert_close(fast.alpha, ref.alpha, atol=2e-3, rtol=1e-3)
    for name, got, want in zip(("means", "scales", "quats", "opacities", "colours"), fast_grads, ref_grads):
        assert want.norm() > 0, name
        error = ((got - want).norm() / want.norm()).item()
        assert error < 1e-2, f"d/d{name}: relative L2 error {error:.2e}"
