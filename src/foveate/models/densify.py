"""Density control for Gaussian splats: grow, split, prune and reset, with explicit state.

gsplat's design: the caller owns the parameters (a ``torch.nn.ParameterDict`` in gsplat's names and
stored forms: ``means``, ``scales`` (log), ``quats``, ``opacities`` (logit), ``sh0``, ``shN``) and
one optimizer per parameter; a strategy is a dataclass of hyper-parameters whose running state is a
plain dict of tensors, created by :meth:`DefaultStrategy.initialize_state` and passed to
:meth:`DefaultStrategy.step_post_backward` after every backward pass. Parameters change size
there, and their Adam moments with them (kept rows keep their moments, new rows start at zero), so
a checkpoint of parameters, optimizers and state resumes exactly.

Examples:
    >>> strategy = DefaultStrategy()  # doctest: +SKIP
    >>> state = strategy.initialize_state(scene_scale=1.0)  # doctest: +SKIP
    >>> for step in range(steps):  # doctest: +SKIP
    ...     rgb, alpha, info = rasterize(...)
    ...     loss.backward()
    ...     strategy.step_post_backward(params, optimizers, state, step, info)
    ...     for optimizer in optimizers.values():
    ...         optimizer.step(); optimizer.zero_grad()
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from .gaussians import quat_scale_to_covar, quat_to_rotmat

__all__ = ["DefaultStrategy", "MCMCStrategy", "duplicate", "relocation", "remove", "reset_opacities", "split"]

Params = torch.nn.ParameterDict
Optimizers = dict[str, torch.optim.Optimizer]


def _swap(
    optimizer: torch.optim.Optimizer | None,
    old: torch.Tensor,
    new: torch.Tensor,
    moment_fn: Callable[[str, torch.Tensor], torch.Tensor],
) -> None:
    """Point ``optimizer`` at ``new`` instead of ``old``, its per-row moments mapped by ``moment_fn``."""
    if optimizer is None:
        return
    for group in optimizer.param_groups:
        for index, tensor in enumerate(group["params"]):
            if tensor is not old:
                continue
            moments = optimizer.state.pop(tensor, {})
            for key, value in list(moments.items()):
                if torch.is_tensor(value) and value.dim() > 0 and len(value) == len(old):
                    moments[key] = moment_fn(key, value)
            group["params"][index] = new
            optimizer.state[new] = moments


def _update(
    params: Params,
    optimizers: Optimizers,
    state: dict[str, Any],
    param_fn: Callable[[str, torch.Tensor], torch.Tensor],
    moment_fn: Callable[[str, torch.Tensor], torch.Tensor],
    state_fn: Callable[[torch.Tensor], torch.Tensor],
) -> None:
    """Replace every parameter by ``param_fn(name, old)``, its Adam moments by ``moment_fn``, and per-splat state."""
    for name in list(params.keys()):
        old = params[name]
        new = torch.nn.Parameter(param_fn(name, old.detach()), requires_grad=old.requires_grad)
        params[name] = new
        _swap(optimizers.get(name), old, new, moment_fn)
    for key, value in list(state.items()):
        if torch.is_tensor(value) and value.dim() > 0:
            state[key] = state_fn(value)


def duplicate(params: Params, optimizers: Optimizers, state: dict[str, Any], mask: torch.Tensor) -> None:
    """Append a copy of every splat in ``mask`` (new Adam moments zero, new state copied)."""
    picked = torch.nonzero(mask).squeeze(1)
    _update(
        params,
        optimizers,
        state,
        lambda name, p: torch.cat((p, p[picked])),
        lambda key, v: torch.cat((v, torch.zeros_like(v[picked]))),
        lambda v: torch.cat((v, v[picked])),
    )


def split(
    params: Params,
    optimizers: Optimizers,
    state: dict[str, Any],
    mask: torch.Tensor,
    generator: torch.Generator | None = None,
) -> None:
    """Replace every splat in ``mask`` by two, drawn from it, 1.6x smaller (3DGS's split)."""
    picked = torch.nonzero(mask).squeeze(1)
    kept = torch.nonzero(~mask).squeeze(1)
    scales = torch.exp(params["scales"].detach()[picked])
    rotation = quat_to_rotmat(params["quats"].detach()[picked])
    noise = torch.randn(2, len(picked), 3, generator=generator, device=scales.device, dtype=scales.dtype)
    offsets = torch.einsum("nij,bnj->bni", rotation, noise * scales)  # (2, n, 3)

    def new_rows(name: str, p: torch.Tensor) -> torch.Tensor:
        if name == "means":
            fresh = (p[picked][None] + offsets).reshape(-1, 3)
        elif name == "scales":
            fresh = torch.log(scales / 1.6).repeat(2, 1)
        else:
            fresh = p[picked].repeat(2, *([1] * (p.dim() - 1)))
        return torch.cat((p[kept], fresh))

    _update(
        params,
        optimizers,
        state,
        new_rows,
        lambda key, v: torch.cat((v[kept], torch.zeros_like(v[picked]).repeat(2, *([1] * (v.dim() - 1))))),
        lambda v: torch.cat((v[kept], v[picked].repeat(2, *([1] * (v.dim() - 1))))),
    )


def remove(params: Params, optimizers: Optimizers, state: dict[str, Any], mask: torch.Tensor) -> None:
    """Drop every splat in ``mask``, with its Adam moments and state."""
    kept = torch.nonzero(~mask).squeeze(1)
    _update(params, optimizers, state, lambda name, p: p[kept], lambda key, v: v[kept], lambda v: v[kept])


def reset_opacities(params: Params, optimizers: Optimizers, value: float) -> None:
    """Clamp every opacity to at most ``value`` and zero the opacities' Adam moments (3DGS's reset)."""
    old = params["opacities"]
    ceiling = torch.logit(torch.tensor(value, dtype=old.dtype)).item()
    new = torch.nn.Parameter(old.detach().clamp_max(ceiling), requires_grad=old.requires_grad)
    params["opacities"] = new
    _swap(optimizers.get("opacities"), old, new, lambda key, v: torch.zeros_like(v))


@dataclass
class DefaultStrategy:
    """3DGS's adaptive density control with gsplat's ``DefaultStrategy`` defaults.

    Every ``refine_every`` steps between ``refine_start_iter`` and ``refine_stop_iter``: splats whose
    average screen-space gradient (in NDC-like units, as gsplat scales it) exceeds ``grow_grad2d``
    are duplicated when their largest scale is at most ``grow_scale3d`` x the scene scale, and split
    otherwise; then splats under ``prune_opa`` opacity, and (after the first reset) larger than
    ``prune_scale3d`` x the scene scale, are removed. Every ``reset_every`` steps opacities are
    clamped to twice ``prune_opa``.
    """

    prune_opa: float = 0.005
    """Splats below this opacity are pruned."""
    grow_grad2d: float = 0.0002
    """Average screen-space gradient above which a splat is duplicated or split."""
    grow_scale3d: float = 0.01
    """Splats up to this largest scale (x the scene scale) are duplicated; larger ones split."""
    prune_scale3d: float = 0.1
    """After the first opacity reset, splats larger than this (x the scene scale) are pruned."""
    refine_start_iter: int = 500
    """First step of density control."""
    refine_stop_iter: int = 15_000
    """Last step of density control."""
    reset_every: int = 3000
    """Steps between opacity resets."""
    refine_every: int = 100
    """Steps between refinements."""
    absgrad: bool = False
    """Accumulate absolute gradients (gsplat's AbsGS option; gsplat backend only)."""

    def initialize_state(self, scene_scale: float = 1.0) -> dict[str, Any]:
        """Running state: accumulated gradient norms and visibility counts per splat (created lazily)."""
        return {"grad2d": None, "count": None, "scene_scale": float(scene_scale)}

    def step_post_backward(
        self,
        params: Params,
        optimizers: Optimizers,
        state: dict[str, Any],
        step: int,
        info: dict[str, Any],
        generator: torch.Generator | None = None,
        reduce: Callable[[torch.Tensor], None] | None = None,
    ) -> dict[str, int]:
        """Accumulate this step's gradients; refine and reset on schedule. Returns what was done (counts).

        ``reduce`` sums a tensor over the ranks of a distributed run in place: the accumulated
        gradients and counts are reduced before refining, so every rank grows, splits and prunes
        the same splats.
        """
        done = {"duplicated": 0, "split": 0, "pruned": 0, "reset": 0}
        if step >= self.refine_stop_iter:
            return done
        self._accumulate(params, state, info)
        if step > self.refine_start_iter and step % self.refine_every == 0:
            if reduce is not None:
                reduce(state["grad2d"])
                reduce(state["count"])
            done.update(self._grow(params, optimizers, state, generator))
            done["pruned"] = self._prune(params, optimizers, state, step)
            state["grad2d"].zero_()
            state["count"].zero_()
        if step % self.reset_every == 0 and step > 0:
            reset_opacities(params, optimizers, 2 * self.prune_opa)
            done["reset"] = 1
        return done

    def _accumulate(self, params: Params, state: dict[str, Any], info: dict[str, Any]) -> None:
        means2d = info["means2d"]
        grads = means2d.absgrad if self.absgrad else means2d.grad
        if grads is None:
            raise ValueError("info['means2d'] has no gradient: call step_post_backward after loss.backward()")
        count = len(params["means"])
        if state["grad2d"] is None:
            state["grad2d"] = torch.zeros(count, device=grads.device)
            state["count"] = torch.zeros(count, device=grads.device)
        cameras = grads.shape[0]
        scale = torch.tensor([info["width"] / 2 * cameras, info["height"] / 2 * cameras], device=grads.device)
        visible = info["radii"] > 0  # (C, N)
        norms = torch.where(visible, (grads * scale).norm(dim=-1), torch.zeros_like(grads[..., 0]))
        state["grad2d"] += norms.sum(0)
        state["count"] += visible.sum(0).to(state["count"].dtype)

    def _grow(
        self, params: Params, optimizers: Optimizers, state: dict[str, Any], generator: torch.Generator | None
    ) -> dict[str, int]:
        average = state["grad2d"] / state["count"].clamp_min(1)
        high = average > self.grow_grad2d
        small = torch.exp(params["scales"].detach()).amax(-1) <= self.grow_scale3d * state["scene_scale"]
        to_duplicate = high & small
        to_split = high & ~small
        duplicate(params, optimizers, state, to_duplicate)
        to_split = torch.cat((to_split, torch.zeros(int(to_duplicate.sum()), dtype=torch.bool, device=high.device)))
        split(params, optimizers, state, to_split, generator)
        return {"duplicated": int(to_duplicate.sum()), "split": int(to_split.sum())}

    def _prune(self, params: Params, optimizers: Optimizers, state: dict[str, Any], step: int) -> int:
        to_prune = torch.sigmoid(params["opacities"].detach()) < self.prune_opa
        if step > self.reset_every:
            too_big = torch.exp(params["scales"].detach()).amax(-1) > self.prune_scale3d * state["scene_scale"]
            to_prune |= too_big
        remove(params, optimizers, state, to_prune)
        return int(to_prune.sum())


def _binomials(size: int = 51) -> torch.Tensor:
    """Pascal's triangle ``C(n, k)`` for ``n, k < size`` (the relocation sums need it)."""
    table = torch.zeros(size, size, dtype=torch.float64)
    for n in range(size):
        for k in range(n + 1):
            table[n, k] = math.comb(n, k)
    return table


def relocation(
    opacities: torch.Tensor, scales: torch.Tensor, copies: torch.Tensor, max_copies: int = 51
) -> tuple[torch.Tensor, torch.Tensor]:
    """Opacity and scale for each of ``copies`` splats that replace one, keeping its rendered look.

    Kheradmand et al. (3DGS as MCMC, eq. 9): ``o' = 1 - (1 - o)^(1/N)`` so that N copies composite to
    ``o``, and ``s' = o s / sum_{i=1..N} sum_{k<i} C(i-1, k) (-1)^k o'^(k+1) / sqrt(k + 1)`` so that
    their summed density matches. ``copies`` is clamped to ``max_copies``.
    """
    copies = copies.clamp(1, max_copies).to(torch.float64)
    o = opacities.to(torch.float64)
    new_o = 1 - (1 - o) ** (1 / copies)
    binomials = _binomials(max_copies).to(o.device)
    i = torch.arange(1, max_copies + 1, device=o.device, dtype=torch.float64)  # (I,)
    k = torch.arange(max_copies, device=o.device, dtype=torch.float64)  # (K,)
    terms = binomials[:, :] * (-1.0) ** k / torch.sqrt(k + 1)  # (I, K): row i - 1
    powers = new_o[:, None] ** (k + 1)  # (M, K)
    inner = powers @ terms.T  # (M, I): sum over k < i (the table is zero beyond)
    denominator = (inner * (i[None] <= copies[:, None])).sum(-1)
    new_scales = (o / denominator)[:, None] * scales.to(torch.float64)
    return new_o.to(opacities.dtype), new_scales.to(scales.dtype)


def _copy_into(
    params: Params,
    optimizers: Optimizers,
    sources: torch.Tensor,
    targets: torch.Tensor,
    append: bool,
    min_opacity: float,
) -> None:
    """Give ``sources`` their relocated opacity and scale, then copy them over ``targets`` (or append them)."""
    copies = torch.bincount(sources, minlength=len(params["means"]))[sources] + 1
    opacity, scale = relocation(
        torch.sigmoid(params["opacities"].detach()[sources]), torch.exp(params["scales"].detach()[sources]), copies
    )
    opacity = opacity.clamp(min_opacity, 1 - torch.finfo(opacity.dtype).eps)
    fresh = {"opacities": torch.logit(opacity), "scales": torch.log(scale)}

    def param_fn(name: str, p: torch.Tensor) -> torch.Tensor:
        p = p.clone()
        if name in fresh:
            p[sources] = fresh[name]
        return torch.cat((p, p[sources])) if append else p.index_copy(0, targets, p[sources])

    def moment_fn(key: str, v: torch.Tensor) -> torch.Tensor:
        v = v.clone()
        v[sources] = 0
        if append:
            return torch.cat((v, torch.zeros_like(v[sources])))
        v[targets] = 0
        return v

    _update(params, optimizers, {}, param_fn, moment_fn, lambda v: v)


@dataclass
class MCMCStrategy:
    """3DGS as Markov chain Monte Carlo (Kheradmand et al.), with gsplat's ``MCMCStrategy`` defaults.

    Every ``refine_every`` steps between ``refine_start_iter`` and ``refine_stop_iter``, splats whose
    opacity fell to ``min_opacity`` are moved onto live ones drawn in proportion to opacity (both
    sharing the old look, :func:`relocation`), then 5% more splats are added the same way, up to
    ``cap_max``. After every step, positions get noise shaped by each splat's covariance and scaled
    by the means' learning rate x ``noise_lr``, gated to transparent splats.
    """

    cap_max: int = 1_000_000
    """Most splats; growth stops here."""
    noise_lr: float = 5e5
    """Position noise, times the means' learning rate."""
    refine_start_iter: int = 500
    """First step of relocation and growth."""
    refine_stop_iter: int = 25_000
    """Last step of relocation and growth."""
    refine_every: int = 100
    """Steps between relocations."""
    min_opacity: float = 0.005
    """Splats at or below this opacity are dead and relocated."""

    def initialize_state(self, scene_scale: float = 1.0) -> dict[str, Any]:
        return {"scene_scale": float(scene_scale)}

    def step_post_backward(
        self,
        params: Params,
        optimizers: Optimizers,
        state: dict[str, Any],
        step: int,
        info: dict[str, Any],
        lr: float,
        generator: torch.Generator | None = None,
    ) -> dict[str, int]:
        """Relocate and add on schedule, then perturb positions. Returns the counts."""
        done = {"relocated": 0, "added": 0}
        if self.refine_start_iter < step < self.refine_stop_iter and step % self.refine_every == 0:
            done["relocated"] = self._relocate(params, optimizers, generator)
            done["added"] = self._add(params, optimizers, generator)
        self._perturb(params, lr * self.noise_lr, generator)
        return done

    def _relocate(self, params: Params, optimizers: Optimizers, generator: torch.Generator | None) -> int:
        opacities = torch.sigmoid(params["opacities"].detach())
        dead = opacities <= self.min_opacity
        count = int(dead.sum())
        if count == 0 or bool(dead.all()):
            return 0
        alive = torch.nonzero(~dead).squeeze(1)
        sources = alive[torch.multinomial(opacities[alive], count, replacement=True, generator=generator)]
        _copy_into(params, optimizers, sources, torch.nonzero(dead).squeeze(1), False, self.min_opacity)
        return count

    def _add(self, params: Params, optimizers: Optimizers, generator: torch.Generator | None) -> int:
        current = len(params["means"])
        count = max(0, min(self.cap_max, int(1.05 * current)) - current)
        if count == 0:
            return 0
        opacities = torch.sigmoid(params["opacities"].detach())
        sources = torch.multinomial(opacities, count, replacement=True, generator=generator)
        _copy_into(params, optimizers, sources, sources, True, self.min_opacity)
        return count

    def _perturb(self, params: Params, scale: float, generator: torch.Generator | None) -> None:
        with torch.no_grad():
            opacities = torch.sigmoid(params["opacities"])
            covars = quat_scale_to_covar(params["quats"], torch.exp(params["scales"]))
            gate = torch.sigmoid(-100 * (opacities - self.min_opacity))  # about 1 below min_opacity, 0 above
            means = params["means"]
            noise = torch.randn(means.shape, generator=generator, device=means.device, dtype=means.dtype)
            noise = noise * gate[:, None] * scale
            means.add_((covars @ noise[..., None]).squeeze(-1))
