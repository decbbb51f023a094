import math

import pytest
import torch

from foveate.data import look_at
from foveate.pipelines.neus.lighting import OPTIMAL_SLANT, optimal_lights, orthonormal_frame, shade, warmup_lights


def random_normals(count: int = 500) -> torch.Tensor:
    normals = torch.nn.functional.normalize(torch.randn(count, 3, generator=torch.Generator().manual_seed(0)), dim=1)
    # Include the poles, where frame constructions break.
    poles = torch.nn.functional.normalize(torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, -1.0], [1e-4, 0.0, -1.0]]), dim=1)
    return torch.cat((normals, poles))


def test_frames_are_orthonormal_and_right_handed():
    normals = random_normals()
    tangent, bitangent = orthonormal_frame(normals)
    frame = torch.stack((tangent, bitangent, normals), dim=-1)
    assert torch.allclose(frame.transpose(1, 2) @ frame, torch.eye(3).expand_as(frame), atol=1e-5)
    assert torch.allclose(torch.linalg.det(frame), torch.ones(len(normals)), atol=1e-5)


def test_the_optimal_triplet_is_orthonormal_and_equally_lit_by_its_normal():
    normals = random_normals()
    lights = optimal_lights(normals, fallback=torch.zeros_like(normals))  # (3, B, 3)
    per_pixel = lights.permute(1, 0, 2)  # rows are the lights
    gram = per_pixel @ per_pixel.transpose(1, 2)
    assert torch.allclose(gram, torch.eye(3).expand_as(gram), atol=1e-5)
    cosines = torch.einsum("lbd,bd->lb", lights, normals)
    assert torch.allclose(cosines, torch.full_like(cosines, 1 / math.sqrt(3)), atol=1e-5)
    assert math.degrees(OPTIMAL_SLANT) == pytest.approx(54.7356, abs=1e-4)
    # With orthonormal lights the three intensities are the normal's coordinates: n = L^T I.
    other = torch.nn.functional.normalize(normals + 0.3, dim=1)
    intensities = torch.einsum("lbd,bd->lb", lights, other)
    assert torch.allclose(torch.einsum("lbd,lb->bd", lights, intensities), other, atol=1e-5)


def test_pixels_without_a_normal_use_the_fallback_axis():
    fallback = torch.tensor([[0.0, 1.0, 0.0]])
    lights = optimal_lights(torch.zeros(1, 3), fallback)
    assert torch.allclose(lights[:, 0, 1], torch.full((3,), 1 / math.sqrt(3)), atol=1e-6)


def test_warmup_lights_sit_30_degrees_from_the_axis_back_to_each_camera():
    c2w = look_at(torch.tensor([[0.0, 0.0, -3.0], [2.0, 1.0, 0.5]]), (0.0, 0.0, 0.0), (0.0, 1.0, 0.0))
    lights = warmup_lights(c2w)  # (3, N, 3)
    assert lights.shape == (3, 2, 3)
    back_to_camera = -c2w[:, :3, 2]
    cosines = torch.einsum("lnd,nd->ln", lights, back_to_camera)
    assert torch.allclose(cosines, torch.full_like(cosines, math.cos(math.radians(30))), atol=1e-5)
    # Evenly spread: the three pairwise angles are equal.
    dots = [float(lights[a, 0] @ lights[b, 0]) for a, b in ((0, 1), (1, 2), (0, 2))]
    assert max(dots) - min(dots) < 1e-5
    # In the camera frame the first light is -(sin 30, 0, cos 30).
    camera = c2w[0, :3, :3].T @ lights[0, 0]
    assert torch.allclose(camera, torch.tensor([-0.5, 0.0, -math.cos(math.radians(30))]), atol=1e-5)


def test_shading_is_albedo_times_the_clamped_cosine():
    normals = torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    lights = torch.tensor([[[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0]]])  # one light, per pixel
    albedo = torch.tensor([[0.2, 0.4, 0.6], [1.0, 1.0, 1.0]])
    assert torch.allclose(shade(normals, lights, albedo), torch.tensor([[[0.2, 0.4, 0.6], [0.0, 0.0, 0.0]]]))
    assert torch.allclose(shade(normals, lights, None)[0, 0], torch.ones(3))
