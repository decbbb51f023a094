import math

import pytest
import torch

from foveate.models.gaussians import (
    ALPHA_MAX,
    ALPHA_MIN,
    footprint_extents,
    gsplat_available,
    num_sh_bases,
    quat_scale_to_covar,
    rasterize,
    rasterize_dense,
    sh_basis,
    spherical_harmonics,
)


def camera(focal: float, width: int, height: int, dtype=torch.float32):
    Ks = torch.tensor([[[focal, 0.0, width / 2], [0.0, focal, height / 2], [0.0, 0.0, 1.0]]], dtype=dtype)
    return torch.eye(4, dtype=dtype)[None], Ks


def random_splats(count: int, seed: int = 0, dtype=torch.float32, sh_degree: int | None = None):
    generator = torch.Generator().manual_seed(seed)
    means = torch.randn(count, 3, generator=generator, dtype=dtype) * 0.6
    means[:, 2] += 4.0
    quats = torch.randn(count, 4, generator=generator, dtype=dtype)
    scales = torch.exp(torch.randn(count, 3, generator=generator, dtype=dtype) * 0.4 - 2.0)
    opacities = torch.rand(count, generator=generator, dtype=dtype) * 0.9 + 0.05
    if sh_degree is None:
        colors = torch.rand(count, 3, generator=generator, dtype=dtype)
    else:
        colors = torch.randn(count, num_sh_bases(sh_degree), 3, generator=generator, dtype=dtype) * 0.3
    return means, quats, scales, opacities, colors


def two_cameras(width: int, height: int, dtype=torch.float32):
    viewmats, Ks = camera(40.0, width, height, dtype)
    turn = torch.eye(4, dtype=dtype)
    angle = 0.2
    turn[0, 0], turn[0, 2], turn[2, 0], turn[2, 2] = math.cos(angle), math.sin(angle), -math.sin(angle), math.cos(angle)
    turn[0, 3] = -0.5
    return torch.cat((viewmats, turn[None])), torch.cat((Ks, Ks * torch.tensor([1.1, 1.1, 1.0], dtype=dtype)[:, None]))


@pytest.mark.parametrize("sh_degree", [None, 3])
def test_packed_pairs_give_the_dense_reference_images_and_gradients(sh_degree):
    width, height = 37, 29  # neither square nor a multiple of 16
    splats = random_splats(60, sh_degree=sh_degree)
    # A wide, opaque splat at the left edge, still above 1/255 beyond its square: the square rule must hold.
    splats[0][0], splats[2][0], splats[3][0] = torch.tensor([-2.3, 0.0, 4.0]), 0.8, 0.95
    splats = [t.requires_grad_() for t in splats]
    viewmats, Ks = two_cameras(width, height)
    backgrounds = torch.tensor([[0.1, 0.2, 0.3], [0.0, 0.0, 1.0]])
    kwargs = {"sh_degree": sh_degree, "backgrounds": backgrounds}
    packed = rasterize(*splats, viewmats, Ks, width, height, **kwargs)
    dense = rasterize_dense(*splats, viewmats, Ks, width, height, **kwargs)
    assert packed[0].shape == (2, height, width, 3) and packed[1].shape == (2, height, width, 1)
    assert torch.allclose(packed[0], dense[0], atol=1e-5)
    assert torch.allclose(packed[1], dense[1], atol=1e-5)
    assert packed[1].max() > 0.5, "the splats are on screen"
    weights = torch.rand(2, height, width, 3, generator=torch.Generator().manual_seed(1))
    grads_packed = torch.autograd.grad((packed[0] * weights).sum(), splats)
    grads_dense = torch.autograd.grad((dense[0] * weights).sum(), splats)
    for packed_grad, dense_grad in zip(grads_packed, grads_dense, strict=True):
        assert torch.allclose(packed_grad, dense_grad, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("backend", [rasterize, rasterize_dense])
def test_gradients_match_finite_differences_in_float64(backend):
    width, height = 12, 10
    splats = [t.requires_grad_() for t in random_splats(4, seed=3, dtype=torch.float64, sh_degree=1)]
    viewmats, Ks = camera(12.0, width, height, torch.float64)

    def image(*tensors):
        rgb, alpha, _ = backend(*tensors, viewmats, Ks, width, height, sh_degree=1)
        return rgb.sum(-1) + alpha[..., 0]

    assert torch.autograd.gradcheck(image, splats, eps=1e-6, atol=1e-5)


def test_a_single_splat_matches_its_closed_form_footprint():
    width, height, focal, sigma, depth, opacity = 32, 24, 30.0, 0.15, 3.0, 0.8
    viewmats, Ks = camera(focal, width, height)
    means = torch.tensor([[0.0, 0.0, depth]])
    rgb, alpha, meta = rasterize(
        means,
        torch.tensor([[1.0, 0.0, 0.0, 0.0]]),
        torch.full((1, 3), sigma),
        torch.tensor([opacity]),
        torch.tensor([[1.0, 0.5, 0.25]]),
        viewmats,
        Ks,
        width,
        height,
    )
    variance = (focal * sigma / depth) ** 2 + 0.3
    ys, xs = torch.meshgrid(torch.arange(height) + 0.5, torch.arange(width) + 0.5, indexing="ij")
    squared = (xs - width / 2) ** 2 + (ys - height / 2) ** 2
    expected = opacity * torch.exp(-0.5 * squared / variance)
    # 3DGS bounds the larger eigenvalue by mid + sqrt(max(0.1, mid^2 - det)): here variance + sqrt(0.1).
    radius = math.ceil(3 * math.sqrt(variance + math.sqrt(0.1)))
    covered = ((xs - width / 2).abs() <= radius) & ((ys - height / 2).abs() <= radius) & (expected >= 1 / 255)
    expected = torch.where(covered, expected, torch.zeros_like(expected))
    assert int(meta["radii"][0, 0]) == radius
    assert torch.allclose(alpha[0, ..., 0], expected, atol=1e-6)
    assert torch.allclose(rgb[0], expected[..., None] * torch.tensor([1.0, 0.5, 0.25]), atol=1e-6)


def test_the_nearer_splat_covers_the_farther_one():
    viewmats, Ks = camera(20.0, 8, 8)
    means = torch.tensor([[0.0, 0.0, 5.0], [0.0, 0.0, 3.0]])  # blue behind, red in front
    rgb, alpha, _ = rasterize(
        means,
        torch.tensor([[1.0, 0.0, 0.0, 0.0]]).repeat(2, 1),
        torch.full((2, 3), 1.0),  # wide: flat over the centre pixels
        torch.tensor([0.5, 0.6]),
        torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]),
        viewmats,
        Ks,
        8,
        8,
        backgrounds=torch.tensor([[0.0, 1.0, 0.0]]),
    )
    centre = rgb[0, 3:5, 3:5].reshape(-1, 3)
    front = 0.6 * torch.exp(torch.tensor(-0.5 * 0.5**2 * 2 / ((20 * 1.0 / 3) ** 2 + 0.3)))
    back = 0.5 * torch.exp(torch.tensor(-0.5 * 0.5**2 * 2 / ((20 * 1.0 / 5) ** 2 + 0.3)))
    expected = torch.stack((front, (1 - front) * (1 - back), (1 - front) * back))  # red, green background, blue
    assert torch.allclose(centre, expected.expand_as(centre), atol=1e-6)
    assert torch.allclose(alpha[0, 3:5, 3:5], 1 - (1 - front) * (1 - back), atol=1e-6)


def test_alpha_is_capped_below_one_and_splats_behind_the_camera_are_culled():
    viewmats, Ks = camera(20.0, 8, 8)
    means = torch.tensor([[0.0, 0.0, 3.0], [0.0, 0.0, -3.0]])
    _, alpha, meta = rasterize(
        means,
        torch.tensor([[1.0, 0.0, 0.0, 0.0]]).repeat(2, 1),
        torch.full((2, 3), 1.0),
        torch.ones(2),
        torch.ones(2, 3),
        viewmats,
        Ks,
        8,
        8,
    )
    assert meta["radii"][0, 1] == 0 and meta["radii"][0, 0] > 0
    assert alpha.max() <= ALPHA_MAX + 1e-7


def test_covariances_follow_the_rotation_and_ignore_the_quaternions_norm():
    scales = torch.tensor([[1.0, 2.0, 3.0]])
    assert torch.allclose(quat_scale_to_covar(torch.tensor([[2.0, 0.0, 0.0, 0.0]]), scales), torch.diag(scales[0] ** 2))
    quarter_turn_about_z = torch.tensor([[math.cos(math.pi / 4), 0.0, 0.0, math.sin(math.pi / 4)]])
    covar = quat_scale_to_covar(quarter_turn_about_z * 3, scales)[0]
    assert torch.allclose(covar, torch.diag(torch.tensor([4.0, 1.0, 9.0])), atol=1e-6)


def test_the_sh_basis_is_orthonormal_over_the_sphere():
    dirs = torch.nn.functional.normalize(torch.randn(400_000, 3, generator=torch.Generator().manual_seed(0)), dim=1)
    basis = sh_basis(3, dirs.double())
    gram = 4 * math.pi * basis.T @ basis / len(dirs)
    assert torch.allclose(gram, torch.eye(16, dtype=torch.float64), atol=0.02)


def test_degree_zero_colour_is_the_dc_term_plus_a_half_and_never_negative():
    coeffs = torch.tensor([[[1.0, -4.0, 0.0]]])
    colour = spherical_harmonics(0, torch.tensor([[0.0, 0.0, 1.0]]), coeffs)
    assert torch.allclose(colour, torch.tensor([[0.28209479177387814 + 0.5, 0.0, 0.5]]))
    with pytest.raises(ValueError, match="degree 2 needs 9 SH coefficients"):
        spherical_harmonics(2, torch.zeros(1, 3), coeffs)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"means": torch.zeros(3, 2)}, r"means must be \(3, 3\)"),
        ({"opacities": torch.zeros(3, 1)}, r"opacities must be \(3,\)"),
        ({"Ks": torch.eye(3)}, r"Ks must be \(1, 3, 3\)"),
    ],
)
def test_bad_shapes_are_named(change, message):
    viewmats, Ks = camera(10.0, 4, 4)
    inputs = dict(zip(("means", "quats", "scales", "opacities", "colors"), random_splats(3), strict=True))
    inputs.update(viewmats=viewmats, Ks=Ks)
    inputs.update(change)
    with pytest.raises(ValueError, match=message):
        rasterize(**inputs, width=4, height=4)


def test_the_module_example_runs():
    import doctest

    import foveate.models.gaussians as module

    assert doctest.testmod(module).failed == 0


def test_footprint_reaches_as_far_as_alpha_reaches_one_255th():
    covars2d = torch.diag(torch.tensor([4.0, 9.0])).expand(1, 3, 2, 2)
    opacities = torch.tensor([1.0, ALPHA_MIN * math.exp(2.0), 0.5 * ALPHA_MIN])
    extents = footprint_extents(covars2d, opacities, torch.ones(1, 3, dtype=torch.int32))
    # sqrt(2 ln(255)) > 3 caps at three deviations; ln(255 o) = 2 reaches two; below 1/255 nothing.
    torch.testing.assert_close(extents[0], torch.tensor([[6.0, 9.0], [4.0, 6.0], [0.0, 0.0]]))
    culled = footprint_extents(covars2d, opacities, torch.zeros(1, 3, dtype=torch.int32))
    assert not bool(culled.any())


def test_gsplat_backend_needs_cuda_tensors():
    means, quats, scales = torch.zeros(1, 3), torch.tensor([[1.0, 0, 0, 0]]), torch.ones(1, 3)
    viewmats, Ks = torch.eye(4)[None], torch.tensor([[[8.0, 0, 4], [0, 8.0, 4], [0, 0, 1]]])
    with pytest.raises(ValueError, match="CUDA"):
        rasterize(means, quats, scales, torch.ones(1), torch.ones(1, 3), viewmats, Ks, 8, 8, backend="gsplat")
    with pytest.raises(ValueError, match="backend"):
        rasterize(means, quats, scales, torch.ones(1), torch.ones(1, 3), viewmats, Ks, 8, 8, backend="cuda")


@pytest.mark.skipif(not gsplat_available(), reason="needs CUDA and gsplat (pip install gsplat)")
def test_gsplat_and_torch_backends_agree():
    generator = torch.Generator().manual_seed(3)
    count, device = 500, torch.device("cuda")
    inputs = [
        torch.randn(count, 3, generator=generator) * 0.6,
        torch.randn(count, 4, generator=generator),
        torch.rand(count, 3, generator=generator) * 0.08 + 0.01,
        torch.rand(count, generator=generator) * 0.9 + 0.05,
        torch.randn(count, 4, 3, generator=generator) * 0.3,
    ]
    viewmats = torch.eye(4)[None].clone()
    viewmats[0, 2, 3] = 3.0
    Ks = torch.tensor([[[120.0, 0, 64], [0, 120.0, 48], [0, 0, 1]]])
    results = {}
    for backend in ("torch", "gsplat"):
        leaves = [t.to(device).requires_grad_() for t in inputs]
        rgb, alpha, _ = rasterize(*leaves, viewmats.to(device), Ks.to(device), 128, 96, sh_degree=1, backend=backend)
        (rgb.square().sum() + alpha.sum()).backward()
        results[backend] = (rgb.detach(), alpha.detach(), [leaf.grad for leaf in leaves])
    torch.testing.assert_close(results["gsplat"][0], results["torch"][0], atol=2e-3, rtol=0)
    torch.testing.assert_close(results["gsplat"][1], results["torch"][1], atol=2e-3, rtol=0)
    for ours, theirs in zip(results["torch"][2], results["gsplat"][2], strict=True):
        torch.testing.assert_close(theirs, ours, atol=1e-2 * float(ours.abs().max()), rtol=0)


@pytest.mark.parametrize("sh_degree", [None, 0])
def test_no_splats_render_the_background(sh_degree):
    viewmats, Ks = camera(8.0, 8, 8)
    colors = torch.zeros(0, 3) if sh_degree is None else torch.zeros(0, 1, 3)
    empty = (torch.zeros(0, 3), torch.zeros(0, 4), torch.zeros(0, 3), torch.zeros(0), colors)
    for render in (rasterize, rasterize_dense):
        rgb, alpha, meta = render(*empty, viewmats, Ks, 8, 8, sh_degree=sh_degree, backgrounds=torch.ones(1, 3))
        assert bool((rgb == 1).all()) and not bool(alpha.any()) and meta["radii"].shape == (1, 0)
