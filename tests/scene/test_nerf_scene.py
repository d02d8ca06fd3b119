import pytest
import torch

from ui3d.cameras import orbit_cameras
from ui3d.encoding import HashGridConfig
from ui3d.scene import HashGridNeRF, NeRFConfig, load_scene, save_scene

SMALL = NeRFConfig(grid=HashGridConfig(levels=4, log2_table_size=12, max_resolution=64), samples_per_ray=32)


def _scene(seed=0):
    return HashGridNeRF(SMALL, generator=torch.Generator().manual_seed(seed)).eval()


def test_blob_initialisation_renders_a_ball():
    s = _scene()
    with torch.no_grad():
        out = s.render(orbit_cameras(2, 16), background=torch.zeros(3))
    assert out.rgb.shape == (2, 16, 16, 3) and out.alpha.shape == (2, 16, 16, 1)
    assert out.alpha[:, 8, 8].min() > 0.95  # the centre ray crosses the blob
    assert out.alpha[:, 0, 0].max() < 0.05  # a corner ray misses it
    d = out.depth[:, 8, 8, 0]
    assert ((d > 1.2) & (d < 1.8)).all()  # camera at 1.8, blob surface a few tenths in front of the centre
    n = out.normal[0, 8, 8]
    assert n.norm().item() == pytest.approx(1.0, abs=1e-4)
    assert n[0] > 0.8  # the front camera (azimuth 0, +x) sees a normal pointing back at it


def test_occupancy_skipping_does_not_change_the_render():
    s = _scene()
    cams = orbit_cameras(1, 12)
    with torch.no_grad():
        full = s.render(cams, background=torch.ones(3))
        frac = s.update_occupancy(torch.Generator().manual_seed(0))
        skipped = s.render(cams, background=torch.ones(3))
    assert frac < 0.3  # most of the box is empty and skipped
    torch.testing.assert_close(skipped.rgb, full.rgb, atol=5e-3, rtol=0)  # skipped cells: density < 0.01


def test_shading_modes_and_gradients():
    s = HashGridNeRF(SMALL, generator=torch.Generator().manual_seed(0))
    cams = orbit_cameras(1, 8)
    lam = s.render(cams, shading="lambertian", background=torch.zeros(3))
    lam.rgb.sum().backward()
    assert s.encoding.table.grad.abs().sum() > 0
    with torch.no_grad():
        alb = s.render(cams, shading="albedo", background=torch.zeros(3))
        tex = s.render(cams, shading="textureless", background=torch.zeros(3))
    c = (4, 4)
    assert (lam.rgb[0][c] <= alb.rgb[0][c] * 1.1 + 1e-6).all()  # ambient + diffuse <= 1.1
    assert torch.allclose(tex.rgb[0][c], tex.rgb[0][c][0].expand(3))  # grey
    with pytest.raises(ValueError, match="shading"):
        s.render(cams, shading="phong")


def test_random_background_only_in_training():
    from ui3d.render import BackgroundConfig

    s = HashGridNeRF(NeRFConfig(grid=SMALL.grid, samples_per_ray=8, background=BackgroundConfig(kind="random", random_prob=1.0)))
    cams = orbit_cameras(2, 4)
    with torch.no_grad():
        ev = s.render(cams)
        tr = s.render(cams, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(ev.rgb[:, 0, 0], torch.ones(2, 3), atol=0.02)
    assert not torch.allclose(tr.rgb[:, 0, 0], torch.ones(2, 3), atol=0.02)


def test_save_and_load_round_trip(tmp_path):
    s = _scene(3)
    s.update_occupancy(torch.Generator().manual_seed(0))
    save_scene(s, tmp_path / "scene")
    t = load_scene(tmp_path)
    cams = orbit_cameras(1, 8)
    with torch.no_grad():
        torch.testing.assert_close(t.render(cams).rgb, s.render(cams).rgb)
    assert t.cfg == s.cfg


def test_fast_photometric_fit_learns_shape_and_colour():
    from systems.photometric_fit import FitConfig, fit

    cfg = FitConfig(backend="nerf", object="sphere", colour="red", size=32, steps=60, rays_per_step=2048,
                    extract_resolution=48, eval_resolution=48, views=16)
    res = fit(cfg)
    # the initial blob's mesh is a tiny ball (IoU ~0.02); after 60 steps the sphere is found
    assert res.metrics["iou"] > 0.7, res.metrics
    assert res.metrics["colour_mae"] < 0.1, res.metrics


@pytest.mark.gpu
def test_nerfacc_sampler_parity():
    """nerfacc's estimator against our sampler: the render, and a loss's gradient with respect to
    all the scene's parameters. The sample positions differ (a fixed step vs one bin per sample), so
    the two agree to quadrature accuracy: values to 0.03, the gradient in direction and in size."""
    from ui3d.render.volume import nerfacc_available

    if not (torch.cuda.is_available() and nerfacc_available()):
        pytest.skip("nerfacc with CUDA not available")
    from dataclasses import replace

    s = HashGridNeRF(replace(SMALL, samples_per_ray=256), generator=torch.Generator().manual_seed(0)).cuda().eval()
    s.update_occupancy(torch.Generator().manual_seed(0))
    cams = orbit_cameras(2, 32).to("cuda")
    g = torch.Generator().manual_seed(1)
    upstream_rgb = torch.randn(2, 32, 32, 3, generator=g).cuda()
    upstream_alpha = torch.randn(2, 32, 32, 1, generator=g).cuda()
    params = [p for p in s.parameters() if p.requires_grad]

    def render_and_gradient(use_nerfacc):
        s.cfg = replace(s.cfg, use_nerfacc=use_nerfacc)
        out = s.render(cams, background=torch.ones(3, device="cuda"))
        loss = (out.rgb * upstream_rgb).sum() + (out.alpha * upstream_alpha).sum()
        grads = torch.autograd.grad(loss, params, allow_unused=True)  # the background model is unused
        return out, torch.cat([(torch.zeros_like(p) if d is None else d).reshape(-1) for p, d in zip(params, grads)])

    fast, fast_grad = render_and_gradient(True)
    assert getattr(s, "_estimator", None) is not None  # nerfacc did the sampling
    ref, ref_grad = render_and_gradient(False)
    torch.testing.assert_close(fast.alpha.detach(), ref.alpha.detach(), atol=0.03, rtol=0)
    torch.testing.assert_close(fast.rgb.detach(), ref.rgb.detach(), atol=0.03, rtol=0)
    cosine = torch.nn.functional.cosine_similarity(fast_grad, ref_grad, dim=0).item()
    size = (fast_grad.norm() / ref_grad.norm()).item()
    assert cosine > 0.98 and 0.95 < size < 1.05, f"gradient: cosine {cosine:.3f}, norm ratio {size:.3f}"


def test_renders_without_normals_skip_only_the_normals():
    """``normals=False`` under albedo shading: the same colours, opacity and depth, zero normals; under
    lambertian shading the normals are needed for the colour and are computed anyway."""
    cfg = NeRFConfig(grid=HashGridConfig(levels=2, log2_table_size=10, max_resolution=32), samples_per_ray=16)
    scene = HashGridNeRF(cfg, generator=torch.Generator().manual_seed(0)).eval()
    cams = orbit_cameras(2, 16)
    with torch.no_grad():
        full, bare = scene.render(cams), scene.render(cams, normals=False)
        lit, lit_bare = scene.render(cams, "lambertian"), scene.render(cams, "lambertian", normals=False)
    for key in ("rgb", "alpha", "depth"):
        assert torch.equal(getattr(bare, key), getattr(full, key)), key
    assert full.normal.abs().sum() > 0 and bare.normal.abs().sum() == 0
    assert torch.equal(lit_bare.rgb, lit.rgb) and torch.equal(lit_bare.normal, lit.normal)
