import math

import pytest
import torch

from ui3d.render.volume import OccupancyGrid, accumulate, nerfacc_available, ray_aabb, render_weights, stratified_samples


def test_one_opaque_sample():
    sig = torch.tensor([[1e4, 5.0, 5.0]])
    w, t, a = render_weights(sig, torch.full((1, 3), 0.1))
    torch.testing.assert_close(w, torch.tensor([[1.0, 0.0, 0.0]]))
    col = torch.tensor([[[0.2, 0.4, 0.6], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])
    torch.testing.assert_close(accumulate(w, col), torch.tensor([[0.2, 0.4, 0.6]]))
    assert accumulate(w).item() == pytest.approx(1.0)


def test_two_half_transparent_samples():
    sig = torch.full((1, 2), math.log(2.0))  # sigma * delta = ln 2 -> alpha = 0.5
    w, trans, alpha = render_weights(sig, torch.ones(1, 2))
    torch.testing.assert_close(alpha, torch.tensor([[0.5, 0.5]]))
    torch.testing.assert_close(trans, torch.tensor([[1.0, 0.5]]))
    torch.testing.assert_close(w, torch.tensor([[0.5, 0.25]]))
    col = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]])
    torch.testing.assert_close(accumulate(w, col), torch.tensor([[0.5, 0.0, 0.25]]))
    assert accumulate(w).item() == pytest.approx(0.75)


def test_empty_rays():
    w, trans, _ = render_weights(torch.zeros(3, 8), torch.full((3, 8), 0.1))
    assert w.abs().max() == 0 and (trans == 1).all()
    assert accumulate(w).abs().max() == 0


def test_ray_box():
    o = torch.tensor([[-2.0, 0.0, 0.0], [-2.0, 3.0, 0.0], [0.0, 0.0, 0.0]])
    d = torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    near, far, hit = ray_aabb(o, d, 1.0)
    assert hit.tolist() == [True, False, True]
    assert near[0].item() == pytest.approx(1.0) and far[0].item() == pytest.approx(3.0)
    assert near[2].item() == 0.0 and far[2].item() == pytest.approx(1.0)


def test_stratified_samples_cover_the_interval():
    s = stratified_samples(torch.tensor([1.0]), torch.tensor([3.0]), 4)
    torch.testing.assert_close(s.t, torch.tensor([[1.25, 1.75, 2.25, 2.75]]))
    assert s.delta.sum().item() == pytest.approx(2.0)
    r = stratified_samples(torch.tensor([1.0]), torch.tensor([3.0]), 4, torch.Generator().manual_seed(0))
    bins = torch.tensor([1.0, 1.5, 2.0, 2.5])
    assert ((r.t[0] >= bins) & (r.t[0] < bins + 0.5)).all()


def test_occupancy_grid_marks_only_dense_cells():
    grid = OccupancyGrid(resolution=16, bound=1.0)
    assert grid.query(torch.tensor([[0.9, 0.9, 0.9]])).item()  # before any update: all occupied
    frac = grid.update(lambda p: (p.norm(dim=-1) < 0.5).float() * 10.0, torch.Generator().manual_seed(0))
    assert 0.02 < frac < 0.1  # a ball of radius 0.5 fills ~6.5% of the box
    q = grid.query(torch.tensor([[0.0, 0.0, 0.0], [0.9, 0.9, 0.9], [0.0, 0.0, 1.5]]))
    assert q.tolist() == [True, False, False]


@pytest.mark.gpu
def test_nerfacc_dense_weights_parity():
    """nerfacc's weights and transmittance against ours, and the gradients of a loss on both with
    respect to the densities and to the interval ends (what a training step uses)."""
    if not (nerfacc_available() and torch.cuda.is_available()):
        pytest.skip("nerfacc with CUDA not available")
    import nerfacc

    g = torch.Generator().manual_seed(0)
    sig = (torch.rand(256, 64, generator=g) * 20).cuda()
    t = torch.sort(torch.rand(256, 65, generator=g) * 3, dim=-1).values.cuda()
    upstream = [torch.randn(256, 64, generator=g).cuda() for _ in range(2)]

    def values_and_grads(weights_and_trans):
        s, ends = sig.clone().requires_grad_(True), t.clone().requires_grad_(True)
        w, trans = weights_and_trans(s, ends)
        loss = (w * upstream[0]).sum() + (trans * upstream[1]).sum()
        grad_sigma, grad_t = torch.autograd.grad(loss, (s, ends))
        return {"weights": w, "transmittance": trans, "d/dsigma": grad_sigma, "d/dt": grad_t}

    ref = values_and_grads(lambda s, ends: render_weights(s, ends[:, 1:] - ends[:, :-1])[:2])
    fast = values_and_grads(lambda s, ends: nerfacc.render_weight_from_density(ends[:, :-1], ends[:, 1:], s)[:2])
    for name in ref:
        scale = max(1.0, ref[name].abs().max().item())
        torch.testing.assert_close(fast[name], ref[name], rtol=1e-4, atol=1e-5 * scale, msg=lambda m: f"{name}: {m}")
