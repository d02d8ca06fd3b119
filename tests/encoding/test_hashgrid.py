import math

import pytest
import torch

from ui3d.encoding import HashGrid, HashGridConfig, hash_grid_encode, hash_grid_reference, level_layout, tcnn_available
from ui3d.encoding.hashgrid import PRIMES


def test_dense_level_hand_computed():
    # one level, scale 1, resolution 2: 8 dense entries; table row i holds the value i
    cfg = HashGridConfig(levels=1, features_per_level=1, log2_table_size=4, base_resolution=2, max_resolution=2)
    layout = level_layout(cfg)
    assert layout.resolutions == (2,) and layout.sizes == (8,) and layout.dense == (True,)
    table = torch.arange(8, dtype=torch.float32)[:, None]
    # p = x * 1 + 0.5 -> (0.75, 0.5, 0.5): corners' rows x + 2y + 4z, trilinear weights
    out = hash_grid_encode(torch.tensor([[0.25, 0.0, 0.0]]), table, cfg)
    assert out.item() == pytest.approx(0.75 + 2 * 0.5 + 4 * 0.5)


def test_hashed_level_uses_the_prime_hash():
    cfg = HashGridConfig(levels=1, features_per_level=1, log2_table_size=4, base_resolution=64, max_resolution=64)
    layout = level_layout(cfg)
    assert not layout.dense[0] and layout.sizes[0] == 16
    table = torch.randn(16, 1, generator=torch.Generator().manual_seed(0))
    s = layout.scales[0]
    # a point exactly on grid vertex (3, 5, 7): all weight on that corner
    x = torch.tensor([[(3 - 0.5) / s, (5 - 0.5) / s, (7 - 0.5) / s]], dtype=torch.float64)
    row = ((3 * PRIMES[0]) ^ (5 * PRIMES[1]) ^ (7 * PRIMES[2])) % (1 << 32) % 16
    out = hash_grid_encode(x, table.double(), cfg)
    assert out.item() == pytest.approx(table[row].item(), abs=1e-9)


def test_matches_loop_reference_on_many_levels():
    cfg = HashGridConfig(levels=6, features_per_level=2, log2_table_size=10, base_resolution=4, max_resolution=300)
    layout = level_layout(cfg)
    assert any(layout.dense) and not all(layout.dense)
    table = torch.randn(layout.total, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    pts = [(0.0, 0.0, 0.0), (1.0, 1.0, 1.0), (0.5, 0.25, 0.125), (0.3141, 0.2718, 0.999), (0.77, 0.01, 0.5)]
    out = hash_grid_encode(torch.tensor(pts, dtype=torch.float64), table, cfg)
    for i, p in enumerate(pts):
        torch.testing.assert_close(out[i], hash_grid_reference(p, table, cfg), rtol=0, atol=1e-12)


def test_layout_is_tinycudanns():
    cfg = HashGridConfig(levels=16, features_per_level=2, log2_table_size=19, base_resolution=16, max_resolution=2048)
    layout = level_layout(cfg)
    b = math.exp(math.log(2048 / 16) / 15)
    assert layout.scales[3] == pytest.approx(16 * b**3 - 1)
    assert layout.sizes[0] == 16**3 and layout.sizes[-1] == 1 << 19
    assert layout.offsets[1] == 16**3


def _encode_with_plain_autograd(x, table, cfg):
    """The encoding through autograd's own indexing (the fused node's reference)."""
    from ui3d.encoding.hashgrid import _corner_rows, _trilinear_weights

    layout = level_layout(cfg)
    pos = x.t()[None] * torch.tensor(layout.scales, dtype=x.dtype)[:, None, None] + 0.5
    base = torch.floor(pos)
    rows = torch.stack([_corner_rows(layout, lv, base.to(torch.int32)[lv]) for lv in range(cfg.levels)])  # [L, 8, N]
    feats = table[rows.long()]  # [L, 8, N, F]
    out = (feats * _trilinear_weights(pos - base)[..., None]).sum(1)  # [L, N, F]
    return out.permute(1, 0, 2).reshape(x.shape[0], -1)


def test_fused_gather_gradients_match_plain_autograd():
    """Table gradient, point gradient and the double backward (training normals differentiate the
    point gradient in the table) of the fused node against autograd's indexing, in float64."""
    cfg = HashGridConfig(levels=3, log2_table_size=8, base_resolution=4, max_resolution=40)
    table = torch.randn(level_layout(cfg).total, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x = torch.rand(50, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    w = torch.randn(50, cfg.output_dim, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    results = []
    for encode in (hash_grid_encode, _encode_with_plain_autograd):
        t = table.clone().requires_grad_(True)
        p = x.clone().requires_grad_(True)
        out = encode(p, t, cfg)
        (grad_t,) = torch.autograd.grad((out * w).sum(), t, retain_graph=True)
        (grad_x,) = torch.autograd.grad((out * w).sum(), p, create_graph=True)
        (grad_x_t,) = torch.autograd.grad(grad_x.square().sum(), t)
        results.append((out.detach(), grad_x.detach(), grad_t, grad_x_t))
    for ours, ref in zip(*results):
        torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-12)
    assert results[0][2].abs().sum() > 0 and results[0][3].abs().sum() > 0


def test_point_gradient_matches_finite_differences():
    cfg = HashGridConfig(levels=3, log2_table_size=8, base_resolution=4, max_resolution=40)
    table = torch.randn(level_layout(cfg).total, 2, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    x = torch.tensor([[0.31, 0.47, 0.62]], dtype=torch.float64, requires_grad=True)
    w = torch.randn(1, cfg.output_dim, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    (grad,) = torch.autograd.grad((hash_grid_encode(x, table, cfg) * w).sum(), x)
    eps = 1e-6
    for k in range(3):
        step = torch.zeros(1, 3, dtype=torch.float64)
        step[0, k] = eps
        f = lambda p: (hash_grid_encode(p, table, cfg) * w).sum().item()  # noqa: E731
        fd = (f(x.detach() + step) - f(x.detach() - step)) / (2 * eps)
        assert grad[0, k].item() == pytest.approx(fd, rel=1e-6, abs=1e-9)


def test_bad_config_is_rejected():
    with pytest.raises(ValueError, match="max_resolution"):
        HashGridConfig(base_resolution=64, max_resolution=16)
    with pytest.raises(ValueError, match="backend"):
        HashGrid(HashGridConfig(), backend="cuda")


@pytest.mark.gpu
def test_tcnn_parity():
    """tinycudann against the torch grid: the encoding, and a loss's gradients with respect to the
    points and to the shared table. The table is O(1) (not the tiny initial scale) so that every
    comparison is relative; d/dx jumps across cell faces, so it is compared away from them."""
    if not tcnn_available():
        pytest.skip("tinycudann with CUDA not available")
    cfg = HashGridConfig(levels=8, log2_table_size=15, base_resolution=16, max_resolution=512, init_scale=1.0)
    grid = HashGrid(cfg, backend="tcnn", generator=torch.Generator().manual_seed(0)).cuda()
    ref = HashGrid(cfg, backend="torch").cuda()
    ref.load_state_dict(grid.state_dict())
    g = torch.Generator().manual_seed(1)
    x = torch.rand(4096, 3, generator=g).cuda()
    upstream = torch.randn(4096, cfg.output_dim, generator=g).cuda()

    def values_and_grads(module):
        points = x.clone().requires_grad_(True)
        out = module(points)
        grad_points, grad_table = torch.autograd.grad((out * upstream).sum(), (points, module.table))
        return {"encoding": out, "d/dtable": grad_table, "d/dx": grad_points}

    fast, slow = values_and_grads(grid), values_and_grads(ref)
    assert grid.active_backend(x.device) == "tcnn"  # not a silent fall-back to the torch grid
    pos = x[None] * torch.tensor(level_layout(cfg).scales, device="cuda")[:, None, None] + 0.5  # [L, N, 3]
    frac = pos - pos.floor()
    inside = ((frac > 1e-3) & (frac < 1 - 1e-3)).all(-1).all(0)  # [N]: no level puts it on a cell face
    assert inside.float().mean() > 0.8
    fast["d/dx"], slow["d/dx"] = fast["d/dx"][inside], slow["d/dx"][inside]
    for name in fast:  # tinycudann rounds pos = scale * x + 0.5 its own way (fma, float32 scale): ~1e-4
        scale = max(1.0, slow[name].abs().max().item())
        torch.testing.assert_close(fast[name], slow[name], rtol=1e-3, atol=1e-3 * scale, msg=lambda m: f"{name}: {m}")