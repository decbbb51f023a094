import math

import pytest
import torch

from foveate.models import HashGrid
from foveate.models.sdf import (
    BackgroundField,
    ColorNetwork,
    FrequencyEncoding,
    GridEncoding,
    SDFNetwork,
    VarianceNetwork,
    frequency_encode,
    tetrahedron_gradient,
)


def test_frequency_encoding_puts_the_input_first_then_sines_and_cosines_per_octave():
    x = torch.tensor([[0.3, -0.2]])
    encoded = frequency_encode(x, 2)
    expected = [0.3, -0.2]
    for scale in (1.0, 2.0):
        expected += [math.sin(0.3 * scale), math.sin(-0.2 * scale), math.cos(0.3 * scale), math.cos(-0.2 * scale)]
    assert torch.allclose(encoded, torch.tensor([expected]))
    assert FrequencyEncoding(6).output_dim == 39 == frequency_encode(torch.zeros(1, 3), 6).shape[1]


def test_tetrahedron_differences_are_exact_for_quadratics():
    points = torch.tensor([[0.2, -0.4, 0.7], [1.0, 2.0, 3.0]])
    epsilon = 0.01

    def field(p):
        return torch.stack((p.square().sum(-1), p[:, 0]), dim=-1)

    outputs, gradient = tetrahedron_gradient(field, points, epsilon)
    assert torch.allclose(gradient, 2 * points, atol=1e-4)
    # The mean of the four values is off by 3 e^2 for |x|^2 (sum of |v|^2 / 4 = 3).
    assert torch.allclose(outputs[:, 0], points.square().sum(-1) + 3 * epsilon**2, atol=1e-5)
    assert torch.allclose(outputs[:, 1], points[:, 0], atol=1e-6)


@pytest.mark.parametrize("kind", ["mlp", "hash"])
def test_geometric_init_starts_near_a_sphere(kind):
    torch.manual_seed(0)
    if kind == "mlp":
        network = SDFNetwork(FrequencyEncoding(6), hidden=64, layers=4, skip_in=(2,), features=8, bias=0.5)
    else:
        grid = HashGrid(3, 4, 12, 2, 4, 32)
        network = SDFNetwork(
            GridEncoding(grid),
            hidden=32,
            layers=1,
            skip_in=(),
            features=8,
            bias=0.5,
            gradient="finite_difference",
            activation="relu",
        )
    inside, outside = network.sdf(torch.zeros(1, 3)), network.sdf(torch.tensor([[0.0, 0.95, 0.0]]))
    assert inside.item() < 0 < outside.item()
    _, features, gradient = network.sdf_and_gradient(torch.tensor([[0.0, 0.0, 0.8]]), create_graph=False)
    assert features.shape == (1, 8)
    assert gradient[0, 2] > 0.5  # pointing outwards


def test_autograd_and_finite_difference_normals_agree_on_a_smooth_network():
    torch.manual_seed(1)
    exact = SDFNetwork(FrequencyEncoding(2), hidden=32, layers=3, skip_in=(), features=4)
    approximate = SDFNetwork(
        FrequencyEncoding(2), hidden=32, layers=3, skip_in=(), features=4, gradient="finite_difference", epsilon=1e-3
    )
    approximate.load_state_dict(exact.state_dict())
    points = torch.rand(64, 3) * 1.6 - 0.8
    _, _, g_exact = exact.sdf_and_gradient(points, create_graph=False)
    _, _, g_approx = approximate.sdf_and_gradient(points, create_graph=False)
    # Softplus(beta=100) bends sharply, so a few points differ by up to ~1e-2; the typical one by ~1e-3.
    assert (g_exact - g_approx).abs().mean() < 2e-3
    assert torch.nn.functional.cosine_similarity(g_exact, g_approx).min() > 0.999


def test_autograd_normals_are_differentiable_for_the_eikonal_term():
    network = SDFNetwork(FrequencyEncoding(2), hidden=16, layers=2, skip_in=(), features=2)
    _, _, gradient = network.sdf_and_gradient(torch.rand(8, 3))
    (gradient.norm(dim=-1) - 1).square().mean().backward()
    first = list(network.linears[0].parameters())
    assert first and all(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in first)


def test_sdf_network_rejects_bad_shapes():
    with pytest.raises(ValueError, match="skip_in"):
        SDFNetwork(hidden=8, layers=2, skip_in=(4,))
    with pytest.raises(ValueError, match="hidden > the encoding's width"):
        SDFNetwork(FrequencyEncoding(6), hidden=32, layers=4, skip_in=(2,))
    with pytest.raises(ValueError, match="gradient"):
        SDFNetwork(gradient="spectral")
    with pytest.raises(ValueError, match="activation"):
        SDFNetwork(activation="tanh")


def test_variance_is_exp_of_ten_times_the_parameter():
    assert VarianceNetwork(0.3)().item() == pytest.approx(math.exp(3.0), rel=1e-6)


def test_color_network_modes():
    torch.manual_seed(0)
    points, normals, features = torch.rand(5, 3), torch.rand(5, 3), torch.rand(5, 4)
    idr = ColorNetwork(4, "idr", hidden=8, layers=2)
    colors = idr(points, normals, torch.rand(5, 3), features)
    assert colors.shape == (5, 3) and bool(((colors > 0) & (colors < 1)).all())
    with pytest.raises(ValueError, match="view directions"):
        idr(points, normals, None, features)
    albedo = ColorNetwork(4, "no_view_dir", hidden=8, layers=2)
    assert torch.equal(albedo(points, normals, torch.rand(5, 3), features), albedo(points, normals, None, features))
    harmonics = ColorNetwork(4, "idr", hidden=8, layers=1, view_encoding="harmonics", view_degree=3, weight_norm=False)
    assert harmonics(points, normals, torch.nn.functional.normalize(torch.rand(5, 3), dim=1), features).shape == (5, 3)


def test_background_field_sees_points_outside_the_sphere_through_x_over_r_and_one_over_r():
    field = BackgroundField(hidden=16, layers=3, skips=(1,), frequencies=2, view_frequencies=1)
    density, rgb = field(torch.tensor([[3.0, 0.0, 0.0], [0.0, 0.0, 10.0]]), torch.eye(3)[:2])
    assert density.shape == (2,) and bool((density >= 0).all()) and rgb.shape == (2, 3)
