"""Signed-distance fields and the networks NeuS renders them with.

NeuS (Wang et al., NeurIPS 2021) represents a surface as the zero level of a signed distance
``f`` (negative inside) in the unit sphere around the object, and renders it with weights
derived from ``sigmoid(-s f)``. Its networks, as the paper's code and IDR define them:

- :class:`SDFNetwork`: an MLP with softplus (beta 100) activations, a skip connection, weight
  normalisation and IDR's geometric initialisation, so that training starts from a sphere of
  radius ``bias``; it returns ``f`` and a feature vector for the colour network. Its input is
  a positional encoding (:class:`FrequencyEncoding`, NeuS) or a hash grid (:class:`GridEncoding`,
  as instant-nsr-pl and NeuS2 do); normals come from autograd or, for hash grids, from finite
  differences (:func:`tetrahedron_gradient`: four evaluations give the value and the gradient).
- :class:`VarianceNetwork`: the single learned sharpness, ``s = exp(10 * variance)``.
- :class:`ColorNetwork`: IDR's rendering network from point, normal, view direction and
  features (mode ``idr``), or without the view direction (``no_view_dir``: an albedo, RNb-NeuS).
- :class:`BackgroundField`: NeRF++'s field outside the unit sphere, fed ``(x / r, 1 / r)``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm as apply_weight_norm

from .hash_grid import HashGrid
from .nerf import spherical_harmonics

__all__ = [
    "BackgroundField",
    "ColorNetwork",
    "FrequencyEncoding",
    "GridEncoding",
    "SDFNetwork",
    "VarianceNetwork",
    "frequency_encode",
    "tetrahedron_gradient",
]

TETRAHEDRON = ((1.0, -1.0, -1.0), (-1.0, -1.0, 1.0), (-1.0, 1.0, -1.0), (1.0, 1.0, 1.0))
"""Corners of a regular tetrahedron: ``sum v = 0`` and ``sum v v^T = 4 I``."""


def frequency_encode(points: torch.Tensor, frequencies: int) -> torch.Tensor:
    """NeRF's positional encoding: ``[x, sin(x), cos(x), sin(2x), cos(2x), ..., cos(2^(L-1) x)]``.

    ``(B, d)`` -> ``(B, d (1 + 2 L))``, the input first (NeuS's geometric initialisation relies on it).
    """
    if frequencies == 0:
        return points
    scales = 2.0 ** torch.arange(frequencies, device=points.device, dtype=points.dtype)
    angles = points[:, None, :] * scales[:, None]  # (B, L, d)
    waves = torch.stack((angles.sin(), angles.cos()), dim=2)  # (B, L, 2, d)
    return torch.cat((points, waves.flatten(1)), dim=1)


class FrequencyEncoding(nn.Module):
    """:func:`frequency_encode` as a module; ``output_dim`` includes the raw input."""

    def __init__(self, frequencies: int, dims: int = 3) -> None:
        super().__init__()
        if frequencies < 0:
            raise ValueError(f"frequencies must be >= 0, got {frequencies}")
        self.frequencies = frequencies
        self.output_dim = dims * (1 + 2 * frequencies)

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        return frequency_encode(points, self.frequencies)


class GridEncoding(nn.Module):
    """``[x, hash_grid(x)]`` for points in ``[-bound, bound]^3`` (the raw input first, as above)."""

    def __init__(self, grid: HashGrid, bound: float = 1.0) -> None:
        super().__init__()
        if grid.dims != 3:
            raise ValueError(f"an SDF's grid must be 3-D, got dims={grid.dims}")
        self.grid = grid
        self.bound = bound
        self.output_dim = 3 + grid.output_dim

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        unit = ((points / self.bound + 1.0) / 2.0).clamp(0.0, 1.0)
        return torch.cat((points, self.grid(unit).to(points.dtype)), dim=1)


def tetrahedron_gradient(
    function: Callable[[torch.Tensor], torch.Tensor], points: torch.Tensor, epsilon: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Value and gradient of a scalar field from four evaluations at ``points + epsilon * v``.

    ``function`` maps ``(M, 3)`` points to ``(M, C)`` outputs whose first column is the field.
    With the tetrahedron's corners ``v``, ``sum_v v f(x + e v) / (4 e)`` is the gradient and the
    mean of the four outputs the value, both exact for linear fields and accurate to ``O(e^2)``.

    Returns:
        ``outputs (M, C)`` (the mean of the four) and ``gradient (M, 3)``.
    """
    corners = torch.tensor(TETRAHEDRON, device=points.device, dtype=points.dtype)
    shifted = (points[None] + epsilon * corners[:, None, :]).reshape(-1, 3)
    flat = function(shifted)
    outputs = flat.reshape(4, points.shape[0], flat.shape[-1])
    gradient = torch.einsum("km,kd->md", outputs[..., 0], corners) / (4.0 * epsilon)
    return outputs.mean(dim=0), gradient


class SDFNetwork(nn.Module):
    """NeuS / IDR's signed-distance MLP: ``points (M, 3) -> sdf (M,), features (M, F)``.

    Args:
        encoding: maps points to ``encoding.output_dim`` inputs whose first three are the point
            itself (:class:`FrequencyEncoding`, :class:`GridEncoding`); None feeds the raw point.
        hidden: width of the hidden layers.
        layers: hidden layers (NeuS: 8).
        skip_in: layers whose input is concatenated with the encoding again (divided by sqrt 2).
        features: feature vector passed to the colour network (NeuS: 256).
        bias: radius of the sphere the geometric initialisation starts from.
        scale: points are multiplied by it before encoding (and the SDF divided by it after).
        geometric_init: IDR's initialisation towards a sphere of radius ``bias``.
        weight_norm: weight-normalised linear layers.
        inside_outside: the initial sphere's inside is positive (scenes seen from inside).
        gradient: ``autograd`` (exact, differentiable twice) or ``finite_difference``
            (:func:`tetrahedron_gradient`; for hash grids, whose lookups have no second derivative here).
        epsilon: the finite-difference step, in the space of the points.
        activation: ``softplus`` (beta 100: smooth, so autograd normals are too) or ``relu``
            (cheaper; enough with finite differences, as instant-nsr-pl's hash SDFs use).
    """

    def __init__(
        self,
        encoding: nn.Module | None = None,
        hidden: int = 256,
        layers: int = 8,
        skip_in: Sequence[int] = (4,),
        features: int = 256,
        bias: float = 0.5,
        scale: float = 1.0,
        geometric_init: bool = True,
        weight_norm: bool = True,
        inside_outside: bool = False,
        gradient: Literal["autograd", "finite_difference"] = "autograd",
        epsilon: float = 1e-3,
        activation: Literal["softplus", "relu"] = "softplus",
    ) -> None:
        super().__init__()
        if activation not in ("softplus", "relu"):
            raise ValueError(f"activation must be 'softplus' or 'relu', got {activation!r}")
        if layers < 1 or hidden < 1:
            raise ValueError(f"need layers >= 1 and hidden >= 1, got {layers} and {hidden}")
        if gradient not in ("autograd", "finite_difference"):
            raise ValueError(f"gradient must be 'autograd' or 'finite_difference', got {gradient!r}")
        if any(not 0 < index < layers for index in skip_in):
            raise ValueError(f"skip_in layers must be in [1, {layers}), got {list(skip_in)}")
        self.encoding = encoding
        self.scale = scale
        self.skip_in = tuple(skip_in)
        self.gradient_mode = gradient
        self.epsilon = epsilon
        self.activation = nn.Softplus(beta=100) if activation == "softplus" else nn.ReLU()
        input_dim = 3 if encoding is None else encoding.output_dim
        if self.skip_in and hidden <= input_dim:
            raise ValueError(
                f"a skip connection needs hidden > the encoding's width ({input_dim}), got hidden={hidden}"
            )
        widths = [input_dim] + [hidden] * layers + [1 + features]
        linears = []
        for index in range(len(widths) - 1):
            out_dim = widths[index + 1] - (input_dim if index + 1 in self.skip_in else 0)
            linear = nn.Linear(widths[index], out_dim)
            if geometric_init:
                _geometric_init(linear, index, len(widths) - 2, input_dim, index in self.skip_in, bias, inside_outside)
            linears.append(apply_weight_norm(linear) if weight_norm else linear)
        self.linears = nn.ModuleList(linears)

    @property
    def feature_dim(self) -> int:
        return self.linears[-1].out_features - 1

    def forward(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``sdf (M,)`` and ``features (M, F)`` at ``points (M, 3)``."""
        outputs = self.outputs(points)
        return outputs[:, 0], outputs[:, 1:]

    def outputs(self, points: torch.Tensor) -> torch.Tensor:
        """``(M, 1 + F)``: the SDF, then the features."""
        inputs = points * self.scale
        if self.encoding is not None:
            inputs = self.encoding(inputs)
        x = inputs
        last = len(self.linears) - 1
        for index, linear in enumerate(self.linears):
            if index in self.skip_in:
                x = torch.cat((x, inputs), dim=1) / math.sqrt(2.0)
            x = linear(x)
            if index < last:
                x = self.activation(x)
        return torch.cat((x[:, :1] / self.scale, x[:, 1:]), dim=1)

    def sdf(self, points: torch.Tensor) -> torch.Tensor:
        """``(M,)`` signed distances."""
        return self.outputs(points)[:, 0]

    def sdf_and_gradient(
        self, points: torch.Tensor, create_graph: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``sdf (M,)``, ``features (M, F)`` and the spatial gradient ``(M, 3)`` (the unnormalised normal).

        ``create_graph`` keeps the autograd gradient differentiable (training: the eikonal term
        and shading depend on it); finite differences are differentiable either way.
        """
        if self.gradient_mode == "finite_difference":
            outputs, gradient = tetrahedron_gradient(self.outputs, points, self.epsilon)
            return outputs[:, 0], outputs[:, 1:], gradient
        with torch.enable_grad():
            inputs = points if points.requires_grad else points.detach().requires_grad_(True)
            outputs = self.outputs(inputs)
            (gradient,) = torch.autograd.grad(
                outputs[:, 0], inputs, torch.ones_like(outputs[:, 0]), create_graph=create_graph
            )
        if not create_graph:
            outputs, gradient = outputs.detach(), gradient.detach()
        return outputs[:, 0], outputs[:, 1:], gradient


def _geometric_init(
    linear: nn.Linear, index: int, last: int, input_dim: int, is_skip: bool, radius: float, inside_outside: bool
) -> None:
    """IDR's initialisation: the network starts as ``|x| - radius`` (ReLU-like layers, then a mean layer)."""
    with torch.no_grad():
        if index == last:
            mean = math.sqrt(math.pi) / math.sqrt(linear.in_features)
            linear.weight.normal_(-mean if inside_outside else mean, 1e-4)
            linear.bias.fill_(radius if inside_outside else -radius)
            return
        linear.bias.zero_()
        linear.weight.normal_(0.0, math.sqrt(2.0) / math.sqrt(linear.out_features))
        if index == 0 and input_dim > 3:
            linear.weight[:, 3:] = 0.0  # only the raw point at first: the encoding's terms start silent
        elif is_skip and input_dim > 3:
            linear.weight[:, -(input_dim - 3) :] = 0.0


class VarianceNetwork(nn.Module):
    """NeuS's single learned parameter: the sharpness ``s = exp(10 * variance)`` of ``sigmoid(s f)``."""

    def __init__(self, init: float = 0.3) -> None:
        super().__init__()
        self.variance = nn.Parameter(torch.tensor(float(init)))

    def forward(self) -> torch.Tensor:
        """``s`` (a 0-d tensor), clipped to [1e-6, 1e6] as NeuS does."""
        return torch.exp(self.variance * 10.0).clamp(1e-6, 1e6)


class ColorNetwork(nn.Module):
    """IDR's rendering network: colour (or albedo) from point, normal, view direction and SDF features.

    Args:
        feature_dim: the SDF network's feature width.
        mode: ``idr`` (point, view direction, normal, features) or ``no_view_dir`` (an albedo).
        hidden, layers: width and number of hidden layers (ReLU).
        view_encoding: ``frequency`` (NeuS: ``view_degree`` octaves) or ``harmonics``
            (spherical harmonics of ``view_degree`` bands, instant-nsr-pl).
        view_degree: octaves or bands of the view-direction encoding (0: the raw direction).
        weight_norm: weight-normalised linear layers.
    """

    def __init__(
        self,
        feature_dim: int,
        mode: Literal["idr", "no_view_dir"] = "idr",
        hidden: int = 256,
        layers: int = 4,
        view_encoding: Literal["frequency", "harmonics"] = "frequency",
        view_degree: int = 4,
        weight_norm: bool = True,
    ) -> None:
        super().__init__()
        if mode not in ("idr", "no_view_dir"):
            raise ValueError(f"mode must be 'idr' or 'no_view_dir', got {mode!r}")
        if view_encoding not in ("frequency", "harmonics"):
            raise ValueError(f"view_encoding must be 'frequency' or 'harmonics', got {view_encoding!r}")
        self.mode = mode
        self.view_encoding = view_encoding
        self.view_degree = view_degree
        if mode == "no_view_dir":
            view_dim = 0
        elif view_encoding == "harmonics":
            view_dim = max(view_degree, 1) ** 2
        else:
            view_dim = 3 * (1 + 2 * view_degree)
        widths = [6 + view_dim + feature_dim] + [hidden] * layers + [3]
        linears = [nn.Linear(a, b) for a, b in itertools.pairwise(widths)]
        self.linears = nn.ModuleList(apply_weight_norm(linear) if weight_norm else linear for linear in linears)

    def encode_view(self, directions: torch.Tensor) -> torch.Tensor:
        if self.view_encoding == "harmonics":
            return spherical_harmonics(directions, max(self.view_degree, 1))
        return frequency_encode(directions, self.view_degree)

    def forward(
        self, points: torch.Tensor, normals: torch.Tensor, directions: torch.Tensor | None, features: torch.Tensor
    ) -> torch.Tensor:
        """``(M, 3)`` colours in (0, 1); ``directions`` are ignored (and may be None) in ``no_view_dir`` mode."""
        if self.mode == "idr":
            if directions is None:
                raise ValueError("the 'idr' colour network needs view directions")
            x = torch.cat((points, self.encode_view(directions), normals, features), dim=1)
        else:
            x = torch.cat((points, normals, features), dim=1)
        last = len(self.linears) - 1
        for index, linear in enumerate(self.linears):
            x = linear(x)
            if index < last:
                x = F.relu(x)
        return torch.sigmoid(x)


class BackgroundField(nn.Module):
    """NeRF++'s outside field: density and colour from ``(x / r, 1 / r)`` and the view direction.

    Args:
        hidden, layers: the trunk's width and depth (NeRF: 256 x 8).
        skips: trunk layers after which the encoded input is concatenated again.
        frequencies: octaves of the 4-D position encoding (NeuS: 10).
        view_frequencies: octaves of the view-direction encoding (NeuS: 4).
    """

    def __init__(
        self,
        hidden: int = 256,
        layers: int = 8,
        skips: Sequence[int] = (4,),
        frequencies: int = 10,
        view_frequencies: int = 4,
    ) -> None:
        super().__init__()
        self.frequencies = frequencies
        self.view_frequencies = view_frequencies
        self.skips = tuple(skips)
        input_dim = 4 * (1 + 2 * frequencies)
        view_dim = 3 * (1 + 2 * view_frequencies)
        trunk = [nn.Linear(input_dim, hidden)]
        trunk += [nn.Linear(hidden + (input_dim if i in self.skips else 0), hidden) for i in range(layers - 1)]
        self.trunk = nn.ModuleList(trunk)
        self.density = nn.Linear(hidden, 1)
        self.feature = nn.Linear(hidden, hidden)
        self.view = nn.Linear(hidden + view_dim, hidden // 2)
        self.rgb = nn.Linear(hidden // 2, 3)

    def forward(self, points: torch.Tensor, directions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``density (M,)`` (softplus) and ``rgb (M, 3)`` (sigmoid) at points outside the unit sphere."""
        radius = points.norm(dim=1, keepdim=True).clamp(min=1.0)
        inputs = frequency_encode(torch.cat((points / radius, 1.0 / radius), dim=1), self.frequencies)
        x = inputs
        for index, linear in enumerate(self.trunk):
            x = F.relu(linear(x))
            if index in self.skips:
                x = torch.cat((inputs, x), dim=1)
        density = F.softplus(self.density(x)[:, 0])
        x = F.relu(self.view(torch.cat((self.feature(x), frequency_encode(directions, self.view_frequencies)), dim=1)))
        return density, torch.sigmoid(self.rgb(x))
