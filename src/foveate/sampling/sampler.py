"""The sampler: per-unit error statistics in, exact weighted draws out."""

from __future__ import annotations

import copy
import math
import random
import secrets
import warnings
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import torch

from .layout import Layout
from .proposals import CategoricalProposal, MixtureProposal, Proposal, UniformProposal, proposal_from_state
from .statistics import UnitStatistics
from .strategies import STRATEGIES, Shaping, Strategy, make_strategy

__all__ = ["Draw", "Sampler"]

STATE_VERSION = 1
COMPACT_ABOVE = 2**26
"""Populations larger than this store errors in bfloat16 unless told otherwise."""


class Draw(NamedTuple):
    """One batch of unit ids and their importance weights (mean 1 under the distribution)."""

    ids: torch.Tensor
    weights: torch.Tensor


class Sampler:
    """Keeps a running error per unit and draws the next batch from it.

    Args:
        shape: population size ``N``, or ``(images, H, W)`` for pixel-like units (ids row-major).
        strategy: a name (``uniform``, ``error_weighted``, ``spatial``, ``adaptive``, ``failure_bins``)
            with its arguments in ``**strategy_args``, or a :class:`Strategy` instance (copied; a
            pipeline config holds these).
        decay: EMA decay of each unit's error (``new = decay * old + (1 - decay) * observed``).
        update_frequency: the distribution is rebuilt every this many ``update`` calls.
        warmup_iterations: draws at ``step < warmup_iterations`` are uniform.
        min_error_weight: floor of a unit's weight, as a fraction of the mean error.
        uniform_fraction: share of every draw's distribution that is uniform.
        correction: importance weights returned with each draw: ``"none"`` (all ones),
            ``"full"`` (``1 / (N p)``, unbiased) or a float alpha in [0, 1] giving weights
            proportional to ``(N p) ** -alpha``, scaled to mean 1 under ``p``.
            Weights are clipped at ``weight_cap``.
        correction_ramp: steps over which the correction grows linearly from none to
            ``correction`` (``"full"`` being alpha 1), rising at each rebuild; 0: all of it from the
            first draw. The idea: early in a run the draws' own error-weighted loss makes the
            fastest progress; late in it, with the learning rate low, it pulls the fit away from
            the population's where fitting some units costs others. (At the image ``cpu``
            preset's size a fixed correction did better; BENCHMARKS.md.)
        weight_cap: largest importance weight returned.
        stratified: draw one uniform per stratum (lower variance) instead of independently.
        check_inputs: validate ``update`` ids and errors; on CUDA this costs one host sync per call.
        error_dtype: storage of the EMA errors; ``None`` picks float32, or bfloat16 above 2^26 units.
        device: where statistics and draws live (default: CPU).
        seed: seeds the sampler's own generator, so draws repeat.
        distributed: act as one sampler across the ranks of a ``torch.distributed`` process group
            (``group``, default the whole world): ``sample(n)`` draws the global batch of ``n``
            identically on every rank and returns this rank's contiguous slice of it;
            ``update`` all-gathers every rank's ids and errors, so the statistics, the distribution
            and the state dict are the same on every rank and a checkpoint loads at any world size.
            Every rank feeds back its whole slice; ``seed`` must be the same on every rank (rank 0's
            is used when it is None).
        group: the process group of a distributed sampler (None: the default group).
        **strategy_args: the strategy's own arguments (see each strategy's docstring).

    Draws are multisets, in ascending id order (but for the ids a ``uniform_ids`` supply provides).
    """

    def __init__(
        self,
        shape: int | Sequence[int],
        strategy: str | Strategy = "error_weighted",
        *,
        decay: float = 0.9,
        update_frequency: int = 100,
        warmup_iterations: int = 1000,
        min_error_weight: float = 0.1,
        uniform_fraction: float = 0.25,
        correction: str | float = "none",
        correction_ramp: int = 0,
        weight_cap: float = 10.0,
        stratified: bool = False,
        check_inputs: bool = True,
        error_dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
        seed: int | None = None,
        distributed: bool = False,
        group: Any = None,
        **strategy_args: Any,
    ) -> None:
        self.layout = Layout.from_shape(shape)
        _check_range("decay", decay, 0.0, 1.0, upper_open=True)
        _check_int("update_frequency", update_frequency, 1)
        _check_int("warmup_iterations", warmup_iterations, 0)
        _check_range("min_error_weight", min_error_weight, 0.0, math.inf)
        _check_range("uniform_fraction", uniform_fraction, 0.0, 1.0)
        _check_range("weight_cap", weight_cap, 1.0, math.inf)
        self.correction = _check_correction(correction)
        _check_int("correction_ramp", correction_ramp, 0)
        if correction_ramp and self.correction == "none":
            raise ValueError("correction_ramp needs a correction to grow to: pass correction='full' or an alpha")
        self.correction_ramp = correction_ramp
        if error_dtype not in (None, torch.float32, torch.bfloat16, torch.float16, torch.float64):
            raise ValueError(f"error_dtype must be a floating dtype or None, got {error_dtype!r}")
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.update_frequency = update_frequency
        self.warmup_iterations = warmup_iterations
        self.weight_cap = float(weight_cap)
        self.stratified = bool(stratified)
        self.check_inputs = bool(check_inputs)
        self.group = group
        self.rank, self.world = _place_in(group) if distributed else (0, 1)
        self.seed = seed if seed is not None else secrets.randbits(31)
        if self.world > 1 and seed is None:
            self.seed = _broadcast_int(self.seed, group)

        num_units = self.layout.num_units
        if error_dtype is None:
            error_dtype = torch.bfloat16 if num_units > COMPACT_ABOVE else torch.float32
        self.statistics = UnitStatistics(num_units, decay, error_dtype, self.device)
        self.shaping = Shaping(min_error_weight, uniform_fraction)
        if isinstance(strategy, Strategy):
            if strategy_args:
                raise ValueError(f"pass a strategy instance or keyword arguments, not both: {sorted(strategy_args)}")
            self.strategy: Strategy = copy.deepcopy(strategy)
        else:
            self.strategy = make_strategy(strategy, **strategy_args)
        self.strategy.bind(self.layout, self.shaping, self.device)
        self.config = {
            "shape": list(self.layout.shape),
            "strategy": self.strategy.name,
            "decay": decay,
            "update_frequency": update_frequency,
            "warmup_iterations": warmup_iterations,
            "min_error_weight": min_error_weight,
            "uniform_fraction": uniform_fraction,
            "correction": correction,
            "correction_ramp": correction_ramp,
            "weight_cap": weight_cap,
            "stratified": stratified,
            "error_dtype": str(error_dtype).removeprefix("torch."),
            "seed": self.seed,
            **self.strategy.options(),
        }

        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(self.seed)
        self.host_rng = random.Random(self.seed)
        self.proposal: Proposal | None = None
        self._uniform = UniformProposal(num_units, self.device)
        self._soft_normaliser: torch.Tensor | None = None
        self._alpha: float | None = None
        self._stale = True
        self._labels: torch.Tensor | None = None
        self._ascending: tuple[torch.Tensor, int] | None = None
        self.updates = 0
        self.rebuilds = 0
        self.last_step = 0

    @property
    def num_units(self) -> int:
        return self.layout.num_units

    @property
    def shape(self) -> tuple[int, ...]:
        return self.layout.shape

    def in_warmup(self, step: int) -> bool:
        return step < self.warmup_iterations

    def sample(self, n: int, step: int, uniform_ids: Callable[[int], torch.Tensor] | None = None) -> Draw:
        """Draw ``n`` ids (with replacement) for training step ``step``.

        A distributed sampler draws ``n`` in all and returns this rank's ``n / world`` of them.
        ``uniform_ids``, when given, supplies the ids of the uniform part of the draw (all of it in
        warm-up or under the uniform strategy; the uniform component's under adaptive): called with
        how many are needed, it returns them, e.g. the next of shuffled epochs, so the uniform part
        visits every unit once per epoch. It costs a host sync; on every rank it must return the same.
        """
        _check_int("n", n, 1)
        _check_int("step", step, 0)
        if n % self.world:
            raise ValueError(f"a batch of {n} does not divide among {self.world} ranks")
        self.last_step = step
        self._ascending = None
        if self.in_warmup(step):
            self._labels = None
            ids, _ = self._uniform.sample(n, self.generator, self.host_rng, self.stratified)
            if uniform_ids is not None:
                ids = self._supplied(uniform_ids, n)
            elif self.world == 1:
                self._ascending = (ids, ids._version)
            return self._local(Draw(ids, torch.ones(n, dtype=torch.float32, device=self.device)))
        proposal = self._current_proposal()
        ids, self._labels = proposal.sample(n, self.generator, self.host_rng, self.stratified)
        if uniform_ids is not None:
            ids = self._with_uniform_ids(proposal, ids, self._labels, uniform_ids)
        elif isinstance(proposal, (UniformProposal, CategoricalProposal, MixtureProposal)) and self.world == 1:
            self._ascending = (ids, ids._version)
        return self._local(Draw(ids, self._importance_weights(proposal, ids, step)))

    def _supplied(self, uniform_ids: Callable[[int], torch.Tensor], count: int) -> torch.Tensor:
        ids = uniform_ids(count).to(device=self.device, dtype=torch.long)
        if ids.shape != (count,):
            raise ValueError(f"uniform_ids({count}) returned shape {tuple(ids.shape)}, expected ({count},)")
        return ids

    def _with_uniform_ids(
        self,
        proposal: Proposal,
        ids: torch.Tensor,
        labels: torch.Tensor | None,
        uniform_ids: Callable[[int], torch.Tensor],
    ) -> torch.Tensor:
        """``ids`` with the positions drawn by a uniform proposal taken from ``uniform_ids``."""
        if isinstance(proposal, UniformProposal):
            return self._supplied(uniform_ids, len(ids))
        if not isinstance(proposal, MixtureProposal) or labels is None:
            return ids
        uniform = [i for i, c in enumerate(proposal.components) if isinstance(c, UniformProposal)]
        if not uniform:
            return ids
        positions = (labels == uniform[0]).nonzero().squeeze(1)
        ids = ids.clone()
        ids[positions] = self._supplied(uniform_ids, len(positions))
        return ids

    def _local(self, draw: Draw) -> Draw:
        if self.world == 1:
            return draw
        size = len(draw.ids) // self.world
        part = slice(self.rank * size, (self.rank + 1) * size)
        return Draw(draw.ids[part], draw.weights[part])

    def update(self, ids: torch.Tensor, errors: torch.Tensor, step: int, noise: torch.Tensor | None = None) -> None:
        """Feed back one error per drawn id (duplicates are averaged, non-finite values ignored).

        Pass the ids of the latest draw in the order drawn: the adaptive strategy credits each
        id to the component that drew it, and an error-guided draw's own tensor, unchanged, is
        known to be sorted, which spares the update a sort. A distributed sampler gathers every rank's update
        first (a collective: every rank calls it, with its whole slice).

        ``noise`` is the irreducible part of each error, in the errors' units (a squared error's
        is the target's own variance: a path tracer's per-pixel variance of the mean): it is
        subtracted first, so guidance follows the model's error, not the target's. The
        differences may be negative: the running errors average them unbiased, and only the
        distribution floors them at 0.
        """
        _check_int("step", step, 0)
        # The latest draw, unchanged and error-guided, comes sorted: the reduction can skip its sort.
        ascending = self._ascending is not None and ids is self._ascending[0] and ids._version == self._ascending[1]
        self._ascending = None
        ids, errors = self._validated(ids, errors)
        if noise is not None:
            if not isinstance(noise, torch.Tensor) or noise.shape != errors.shape:
                raise ValueError(
                    f"noise must be a tensor shaped like errors {tuple(errors.shape)}, got {_describe(noise)}"
                )
            errors = errors - noise.detach().to(errors.device, errors.dtype)
        if self.world > 1:
            ids, errors = self._gathered(ids, errors)
        labels = self._labels
        if labels is not None and labels.numel() != ids.numel():
            warnings.warn(
                f"this update has {ids.numel()} ids but the latest draw had {labels.numel()}: adaptive credits no "
                "component with it (pass the ids of the latest draw, in the order drawn)",
                stacklevel=2,
            )
            labels = None
        self.strategy.observe(self.statistics, ids, errors, labels, ascending=ascending)
        if self.strategy.refreshes:
            self._soft_normaliser = None  # the distribution changed in place
        self._labels = None
        self.last_step = step
        self.updates += 1
        if self.updates % self.update_frequency == 0:
            self._stale = True

    def probabilities(self) -> torch.Tensor:
        """The current error-guided distribution over all units (float32, sums to 1).

        Draws before ``warmup_iterations`` ignore it and are uniform.
        """
        return self._current_proposal().probabilities()

    def probability(self, ids: torch.Tensor) -> torch.Tensor:
        """The current error-guided probability of drawing each of ``ids`` (float32), without
        materialising the whole distribution (for maps of populations too large to copy)."""
        return self._current_proposal().probability(ids.to(self.device, torch.int64))

    def rebuild(self) -> None:
        """Rebuild the distribution from the statistics now, whatever ``update_frequency`` says."""
        self.proposal = self.strategy.build(self.statistics)
        self._soft_normaliser = None
        self._stale = False
        self.rebuilds += 1

    def _current_proposal(self) -> Proposal:
        if self._stale or self.proposal is None:
            self.rebuild()
        return self.proposal

    def correction_at(self, step: int) -> float:
        """The exponent alpha of the importance weights drawn at ``step`` (0: none, 1: full).

        Under ``correction_ramp`` it grows with the step of the latest rebuild, so the weights'
        normaliser is computed at most once per rebuild."""
        if self.correction == "none":
            return 0.0
        alpha = 1.0 if self.correction == "full" else float(self.correction)
        if not self.correction_ramp:
            return alpha
        rebuilt_at = step - step % self.update_frequency
        return alpha * min(1.0, rebuilt_at / self.correction_ramp)

    def _importance_weights(self, proposal: Proposal, ids: torch.Tensor, step: int) -> torch.Tensor:
        alpha = self.correction_at(step)
        if alpha == 0.0 or isinstance(proposal, UniformProposal):  # uniform draws weigh 1 exactly
            return torch.ones(ids.shape, dtype=torch.float32, device=self.device)
        scaled = proposal.probability(ids) * self.num_units
        if alpha == 1.0:
            weights = scaled.reciprocal()
        else:
            if self._soft_normaliser is None or alpha != self._alpha:
                # sum_u p_u (N p_u)^-alpha: the mean of (N p)^-alpha under p.
                self._soft_normaliser = proposal.power_sum(1.0 - alpha) * float(self.num_units) ** -alpha
                self._alpha = alpha
            weights = scaled.pow(-alpha) / self._soft_normaliser
        return weights.clamp(max=self.weight_cap).to(torch.float32)

    def _validated(self, ids: torch.Tensor, errors: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not isinstance(ids, torch.Tensor) or ids.dtype.is_floating_point or ids.dtype == torch.bool:
            raise ValueError(f"ids must be an integer tensor, got {_describe(ids)}")
        if not isinstance(errors, torch.Tensor) or not errors.dtype.is_floating_point:
            raise ValueError(f"errors must be a floating-point tensor, got {_describe(errors)}")
        if ids.ndim != 1 or errors.shape != ids.shape:
            raise ValueError(
                f"ids and errors must be 1-D of the same length, got ids {tuple(ids.shape)} "
                f"and errors {tuple(errors.shape)}"
            )
        ids = ids.to(self.device, torch.int64)
        errors = errors.detach().to(self.device)
        if self.check_inputs and ids.numel():
            low, high = int(ids.min()), int(ids.max())
            if low < 0 or high >= self.num_units:
                raise ValueError(f"ids must lie in [0, {self.num_units}), got values in [{low}, {high}]")
            if bool((errors < 0).any()):
                raise ValueError("errors must be >= 0 (a loss or failure count); got negative values")
        return ids, errors

    def _gathered(self, ids: torch.Tensor, errors: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Every rank's ids and errors, in rank order: one all-gather of ``(2, b)`` float64 (ids exact below 2^53)."""
        import torch.distributed as dist

        packed = torch.stack((ids.to(torch.float64), errors.to(torch.float64)))
        parts = [torch.empty_like(packed) for _ in range(self.world)]
        dist.all_gather(parts, packed, group=self.group)
        whole = torch.cat(parts, dim=1)
        return whole[0].to(torch.int64), whole[1].to(errors.dtype)

    def stats(self) -> dict[str, Any]:
        """JSON-serialisable summary of the statistics and the current distribution."""
        stats = self.statistics
        visited = stats.visited()
        error = stats.error.to(torch.float32)
        n_visited = int(visited.sum())
        if n_visited:
            seen = error[visited]
            mean_error = float(seen.mean(dtype=torch.float64))
            error_min, error_max = float(seen.min()), float(seen.max())
        else:
            mean_error = error_min = error_max = 0.0
        warm = self.in_warmup(self.last_step)
        p = (self._uniform if warm else self._current_proposal()).probabilities().to(torch.float64)
        n = self.num_units
        entropy = float(-(p * torch.log(p.clamp(min=1e-300))).sum())
        top = max(1, n // 100)
        top_mass = float(torch.topk(p, top, sorted=False).values.sum()) if top < n else 1.0
        return {
            "strategy": self.strategy.name,
            "step": self.last_step,
            "updates": self.updates,
            "rebuilds": self.rebuilds,
            "in_warmup": warm,
            "num_units": n,
            "mean_error": mean_error,
            "error_min": error_min,
            "error_max": error_max,
            "error_range": error_max - error_min,
            "normalized_entropy": entropy / math.log(n) if n > 1 else 1.0,
            "effective_sample_size": float(1.0 / (p * p).sum()) / n,
            "top1pct_mass": top_mass,
            "coverage": n_visited / n,
            "nonfinite": int(stats.nonfinite),
            "mixture": self.strategy.mixture(),
            "bytes_per_unit": self.nbytes() / n,
        }

    def nbytes(self) -> int:
        """Bytes of per-unit state held: statistics, the strategy's own (staleness ages) and the distribution."""
        proposal = self.proposal.nbytes() if self.proposal is not None else 0
        return self.statistics.nbytes() + self.strategy.nbytes() + proposal

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly: statistics, distribution, RNG, counters."""
        return {
            "version": STATE_VERSION,
            "config": dict(self.config),
            "statistics": self.statistics.state_dict(),
            "strategy": self.strategy.state_dict(),
            "proposal": None if self.proposal is None else self.proposal.state_dict(),
            "stale": self._stale,
            "labels": self._labels,
            "updates": self.updates,
            "rebuilds": self.rebuilds,
            "last_step": self.last_step,
            "generator": {"device": self.device.type, "state": self.generator.get_state()},
            "host_rng": self.host_rng.getstate(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a ``state_dict`` (possibly saved on another device)."""
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"unsupported sampler state version {state.get('version')!r}")
        saved, mine = state["config"], self.config
        if saved.get("shape") != mine["shape"] or saved.get("strategy") != mine["strategy"]:
            raise ValueError(
                f"state_dict is for shape {saved.get('shape')} / strategy {saved.get('strategy')!r}, "
                f"this sampler has shape {mine['shape']} / strategy {mine['strategy']!r}"
            )
        self.statistics.load_state_dict(state["statistics"])
        self.strategy.load_state_dict(state["strategy"])
        proposal = state["proposal"]
        self.proposal = None if proposal is None else proposal_from_state(proposal, self.device)
        if self.proposal is not None:
            self.strategy.adopt(self.proposal)
        self._soft_normaliser = None
        self._stale = bool(state["stale"])
        labels = state["labels"]
        self._labels = None if labels is None else labels.to(self.device)
        self.updates, self.rebuilds = int(state["updates"]), int(state["rebuilds"])
        self.last_step = int(state["last_step"])
        generator = state["generator"]
        if generator["device"] == self.device.type:
            self.generator.set_state(generator["state"])
        else:
            # Generator states do not transfer between device types: continue reproducibly instead.
            self.generator.manual_seed(self.seed + self.updates)
        self.host_rng.setstate(state["host_rng"])


def _place_in(group: Any) -> tuple[int, int]:
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        raise ValueError("distributed=True needs an initialised torch.distributed process group (run under torchrun)")
    return dist.get_rank(group), dist.get_world_size(group)


def _broadcast_int(value: int, group: Any) -> int:
    import torch.distributed as dist

    box = [value]
    dist.broadcast_object_list(box, src=dist.get_global_rank(group, 0) if group is not None else 0, group=group)
    return int(box[0])


def _describe(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"a {str(value.dtype).removeprefix('torch.')} tensor of shape {tuple(value.shape)}"
    return type(value).__name__


def _check_int(name: str, value: Any, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")


def _check_range(name: str, value: Any, low: float, high: float, upper_open: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and low <= value <= high
    if ok and upper_open and value == high:
        ok = False
    if not ok:
        bracket = ")" if upper_open else "]"
        raise ValueError(f"{name} must be a number in [{low}, {high}{bracket}, got {value!r}")


def _check_correction(correction: Any) -> str | float:
    if correction in ("none", "full"):
        return correction
    if isinstance(correction, (int, float)) and not isinstance(correction, bool) and 0.0 <= correction <= 1.0:
        return float(correction)
    raise ValueError(f"correction must be 'none', 'full' or a float alpha in [0, 1], got {correction!r}")


def available_strategies() -> list[str]:
    """Names accepted by ``Sampler(strategy=...)``."""
    return sorted(STRATEGIES)
