"""The §2 table: closed forms against autograd, and every derived column against the spec."""

import pytest
import torch

from ui3d.divergence import DIVERGENCES, alpha_divergence, get_divergence

R = torch.tensor([0.05, 0.3, 0.9, 1.0, 1.7, 4.0, 11.0], dtype=torch.float64)
ALL = [*DIVERGENCES.values(), alpha_divergence(0.5), alpha_divergence(2.0), alpha_divergence(-0.7)]

# The §2 columns, written out independently of the implementation: name -> (k, r·k', 2r·h').
SPEC = {
    "rkl": (lambda r: 1 + 0 * r, lambda r: 0 * r, lambda r: 0 * r),
    "fkl": (lambda r: 0 * r, lambda r: 0 * r, lambda r: 2 * r),
    "jeffreys": (lambda r: 1 + 0 * r, lambda r: 0 * r, lambda r: 2 * r),
    "jkl": (lambda r: 0.6 + 0 * r, lambda r: 0 * r, lambda r: 0.8 * r),
    "js": (lambda r: r**2 / (r + 1) ** 2, lambda r: 2 * r**2 / (r + 1) ** 3, lambda r: 2 * r / (r + 1) ** 2),
    "chi2": (lambda r: -2 * r**2, lambda r: -4 * r**2, lambda r: 8 * r**2),
    "hellinger": (lambda r: r.sqrt() / 4, lambda r: r.sqrt() / 8, lambda r: r.sqrt() / 2),
    "softened_rkl": (lambda r: (2 * r + 1) / (r + 1) ** 2, lambda r: -2 * r**2 / (r + 1) ** 3,
                     lambda r: -2 * r / (r + 1) ** 2),
}


def _derivative(fn, r):
    r = r if r.requires_grad else r.detach().requires_grad_(True)
    y = fn(r)
    if not y.requires_grad:  # a derivative that is already constant in r
        return torch.zeros_like(r)
    (g,) = torch.autograd.grad(y.sum(), r, create_graph=True, allow_unused=True)
    return torch.zeros_like(r) if g is None else g


@pytest.mark.parametrize("div", ALL, ids=lambda d: d.name)
def test_h_is_f_second_derivative_times_r_squared(div):
    f2 = _derivative(lambda r: _derivative(div.f, r), R)
    torch.testing.assert_close(div.h(R), f2 * R**2, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("div", ALL, ids=lambda d: d.name)
def test_closed_form_derivatives_of_h(div):
    torch.testing.assert_close(div.dh(R), _derivative(div.h, R), rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(div.d2h(R), _derivative(lambda r: _derivative(div.h, r), R), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("div", ALL, ids=lambda d: d.name)
def test_f_vanishes_at_one_and_is_convex(div):
    one = torch.ones(1, dtype=torch.float64)
    assert abs(float(div.f(one))) < 1e-12
    assert (div.h(R) > 0).all()


@pytest.mark.parametrize("name", sorted(SPEC))
def test_derived_columns_match_spec_table(name):
    div = DIVERGENCES[name]
    k, r_dk, two_r_dh = SPEC[name]
    torch.testing.assert_close(div.k(R), k(R), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(div.r_dk(R), r_dk(R), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(div.two_r_dh(R), two_r_dh(R), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("a", [0.5, 2.0, 3.0])
def test_alpha_divergence_columns(a):
    div = alpha_divergence(a)
    torch.testing.assert_close(div.k(R), (1 - a) * R**a)
    torch.testing.assert_close(div.r_dk(R), a * (1 - a) * R**a)
    torch.testing.assert_close(div.two_r_dh(R), 2 * a * R**a)


def test_alpha_two_is_half_chi2_and_half_is_twice_hellinger():
    chi2, hel = DIVERGENCES["chi2"], DIVERGENCES["hellinger"]
    torch.testing.assert_close(alpha_divergence(2.0).f(R), chi2.f(R) / 2)
    torch.testing.assert_close(alpha_divergence(0.5).f(R), 2 * hel.f(R))


def test_lookup_by_name_and_errors():
    assert get_divergence("FKL") is DIVERGENCES["fkl"]
    assert get_divergence("alpha:0.5").name == "alpha0.5"
    with pytest.raises(ValueError, match="did you mean 'fkl'"):
        get_divergence("fkll")
    with pytest.raises(ValueError, match="alpha must be a number"):
        get_divergence("alpha:x")
    with pytest.raises(ValueError, match="use divergence 'rkl'"):
        get_divergence("alpha:0")


def test_only_reverse_kl_needs_no_density_ratio():
    from ui3d.divergence.table import depends_on_ratio

    assert not depends_on_ratio(DIVERGENCES["rkl"])
    assert all(depends_on_ratio(d) for n, d in DIVERGENCES.items() if n != "rkl")
    assert depends_on_ratio(alpha_divergence(0.5))


PRODUCTS = {
    "k": lambda div, r: div.h(r) - r * div.dh(r),
    "r_dk": lambda div, r: -(r * r) * div.d2h(r),
    "two_r_dh": lambda div, r: 2.0 * r * div.dh(r),
}


@pytest.mark.parametrize("name", ["alpha:0.5", "alpha:-1", "alpha:1.5", "alpha:3", "hellinger"])
@pytest.mark.parametrize("dtype,tiny", [(torch.float32, 1e-40), (torch.float64, 1e-250)])
def test_derived_columns_are_never_nan_for_a_tiny_ratio(name, dtype, tiny):
    """The derived columns agree with their defining products where those are finite, and are never NaN
    at a tiny r, where a product can be 0·∞."""
    div = get_divergence(name)
    ordinary = torch.tensor([0.3, 1.0, 2.5], dtype=torch.float64)
    r = torch.tensor([tiny], dtype=dtype)
    for column, product in PRODUCTS.items():
        torch.testing.assert_close(getattr(div, column)(ordinary), product(div, ordinary))
        assert not torch.isnan(getattr(div, column)(r)).any(), column


@pytest.mark.parametrize("name,dtype,tiny", [("hellinger", torch.float32, 1e-30), ("alpha:0.5", torch.float64, 1e-250)])
def test_the_products_would_be_nan_there(name, dtype, tiny):
    """The case the closed forms exist for: −r²·h'' is 0·∞ = NaN, the closed form is ≈ 0."""
    div = get_divergence(name)
    r = torch.tensor([tiny], dtype=dtype)
    assert torch.isnan(PRODUCTS["r_dk"](div, r)).all()
    assert 0.0 <= abs(float(div.r_dk(r))) < 1e-10
