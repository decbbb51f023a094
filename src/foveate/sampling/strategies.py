"""Strategies: how per-unit statistics become a sampling distribution.

Each strategy is a dataclass of its own arguments, bound to a population by the
:class:`~foveate.sampling.Sampler`, with explicit state for ``state_dict``. The dataclasses are
also the sampling section of every pipeline's config (their docstrings are its help text, so
they are written in plain words). Binding never changes the arguments: a strategy instance can
be copied, saved as config and bound again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F

from .categorical import BlockCategorical
from .layout import Layout
from .proposals import CategoricalProposal, MixtureProposal, Proposal, UniformProposal
from .statistics import BatchReduction, UnitStatistics, reduce_duplicates

__all__ = [
    "STRATEGIES",
    "Adaptive",
    "ErrorWeighted",
    "FailureBins",
    "Shaping",
    "Spatial",
    "Strategy",
    "Uniform",
    "make_strategy",
]


@dataclass(frozen=True)
class Shaping:
    """How raw errors become weights, shared by the error-driven strategies.

    A unit's weight is its error, floored at ``min_error_weight`` times the mean error, and
    the normalised result is mixed with ``uniform_fraction`` of the uniform distribution.
    """

    min_error_weight: float = 0.1
    uniform_fraction: float = 0.25

    def weights(self, score: torch.Tensor) -> torch.Tensor:
        """Weights from a float32 score per unit; ``score`` is consumed (modified in place).

        Negative scores (errors with the targets' noise subtracted) count as 0."""
        return self.weights_and_map(score)[0]

    def weights_and_map(self, score: torch.Tensor) -> tuple[torch.Tensor, WeightMap]:
        """``weights(score)``, and the map that took each score to its weight (to re-weight units alike later)."""
        peak = _peak(score.clamp_(min=0.0))
        score = score.div_(peak)  # in [0, 1]: the floor below stays exact for tiny errors
        mean = score.mean(dtype=torch.float64).to(torch.float32)
        # All-zero errors carry no information: a floor of 1 then makes every weight 1 (uniform).
        floor = torch.where(mean > 0, self.min_error_weight * mean, torch.ones_like(mean))
        weights, top, scale, share = self._mixed(score.clamp_(min=floor))
        return weights, WeightMap(peak, floor, top, scale, share)

    def mix(self, weights: torch.Tensor) -> torch.Tensor:
        """Normalise non-negative ``weights`` (in place) and mix in the uniform share."""
        return self._mixed(weights)[0]

    def _mixed(self, weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
        n = weights.numel()
        # Scaling by the peak first keeps the sum finite and its reciprocal representable,
        # whether the errors are subnormal or huge.
        top = _peak(weights)
        weights = weights.div_(top)
        scale = ((1.0 - self.uniform_fraction) / weights.sum(dtype=torch.float64)).to(torch.float32)
        # A positive uniform share must leave every unit drawable, even when it is below float32's range.
        share = self.uniform_fraction / n
        if share > 0:
            share = max(share, torch.finfo(torch.float32).tiny)
        return weights.mul_(scale).add_(share), top, scale, share


@dataclass(frozen=True)
class WeightMap:
    """What a rebuild did to each unit's score: ``max(max(score, 0) / peak, floor) / top * scale + share``.

    Units observed between rebuilds are re-weighted by the same map (the same operations, so a
    score that did not change gets the weight it has, bit for bit)."""

    peak: torch.Tensor
    floor: torch.Tensor
    top: torch.Tensor
    scale: torch.Tensor
    share: float

    def __call__(self, score: torch.Tensor) -> torch.Tensor:
        weights = score.clamp(min=0.0).div_(self.peak).clamp_(min=self.floor).div_(self.top)
        return weights.mul_(self.scale).add_(self.share)

    def state_dict(self) -> dict:
        return {"peak": self.peak, "floor": self.floor, "top": self.top, "scale": self.scale, "share": self.share}


@dataclass
class Strategy:
    """Base class: generic EMA statistics, a distribution rebuilt from them."""

    name: ClassVar[str] = ""

    def bind(self, layout: Layout, shaping: Shaping, device: torch.device) -> None:
        self.layout, self.shaping, self.device = layout, shaping, device

    def observe(
        self,
        stats: UnitStatistics,
        ids: torch.Tensor,
        errors: torch.Tensor,
        labels: torch.Tensor | None,
        *,
        ascending: bool = False,
    ) -> None:
        """Fold one update into the statistics; ``labels`` name the mixture component per id.

        ``ascending`` promises that ``ids`` are already sorted (an error-guided draw), which
        spares the duplicate reduction its sort."""
        stats.observe(reduce_duplicates(ids, errors, ascending=ascending))
        self.note_visits(ids)

    def note_visits(self, ids: torch.Tensor) -> None:
        """``ids`` were just drawn and measured (strategies that track recency reset their age)."""

    def observed(self, stats: UnitStatistics, batch: BatchReduction) -> None:
        """``stats`` just took ``batch`` (sorted, distinct ids): strategies that refresh re-weight its units."""

    @property
    def refreshes(self) -> bool:
        """Whether ``observe`` changes the current distribution in place (between rebuilds)."""
        return False

    def adopt(self, proposal: Proposal) -> None:
        """Take ``proposal`` (restored from a state dict) as the distribution to refresh."""

    def build(self, stats: UnitStatistics) -> Proposal:
        raise NotImplementedError

    def mixture(self) -> dict[str, float]:
        return {self.name: 1.0}

    def nbytes(self) -> int:
        """Bytes of per-unit state the strategy keeps itself (besides the statistics)."""
        return 0

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass

    @classmethod
    def arguments(cls) -> list[str]:
        return [f.name for f in fields(cls) if f.init]

    def options(self) -> dict:
        """The strategy's arguments by name (tuples as lists, as they are saved)."""
        values = {name: getattr(self, name) for name in self.arguments()}
        return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}


@dataclass
class Uniform(Strategy):
    """Every unit equally likely: the baseline."""

    name: ClassVar[str] = "uniform"

    def build(self, stats: UnitStatistics) -> Proposal:
        return UniformProposal(self.layout.num_units, self.device)


@dataclass
class ErrorWeighted(Strategy):
    """Probability proportional to each unit's running error, floored and mixed with uniform.

    With pool_visits above 0 a unit seen n times weighs its own error by n / (n + pool_visits)
    and its neighbourhood's by the rest (tiles of 2, 4, 8, ... units a side on image layouts,
    then its image and the whole population); never-seen units take their neighbourhood's error.
    """

    name: ClassVar[str] = "error_weighted"
    prior: float | str = "max"
    """Error assumed for units never drawn yet: 'max' (the worst error seen so far) or a number."""
    pool_visits: float = 0.0
    """Pull each unit's error toward its neighbourhood's (tiles, image, all) with this many visits' weight; 0: off."""
    staleness: float = 0.0
    """Share of each draw that goes to units by how long ago they were last drawn (PLR's staleness); 0: off."""
    refresh: bool = False
    """Re-weight the units of every update at once (their blocks of the distribution), not only at rebuilds."""

    def __post_init__(self) -> None:
        _check_prior(self.prior)
        _check_pool_visits(self.pool_visits)
        if not isinstance(self.staleness, (int, float)) or not 0.0 <= self.staleness <= 1.0:
            raise ValueError(f"staleness must be a share in [0, 1], got {self.staleness!r}")
        if self.refresh and (self.pool_visits > 0 or self.staleness > 0):
            raise ValueError(
                "refresh re-weights each unit by its own error: it cannot be combined with pool_visits or "
                "staleness, which weigh units by their neighbours or their age"
            )

    def bind(self, layout: Layout, shaping: Shaping, device: torch.device) -> None:
        super().bind(layout, shaping, device)
        if self.staleness > 0 and self.staleness + shaping.uniform_fraction > 1:
            raise ValueError(
                f"staleness ({self.staleness}) and uniform_fraction ({shaping.uniform_fraction}) leave "
                "nothing for the errors: their sum must be at most 1"
            )
        # Rebuilds since each unit was last drawn, saturating at 255: one byte a unit, only when asked for.
        self.age = torch.zeros(layout.num_units, dtype=torch.uint8, device=device) if self.staleness > 0 else None
        # With refresh: the latest rebuild's map from scores to weights, its prior, and its distribution.
        self.weight_map: WeightMap | None = None
        self.prior_value: torch.Tensor | None = None
        self.categorical: BlockCategorical | None = None

    @property
    def refreshes(self) -> bool:
        return self.refresh

    def observe(self, stats, ids, errors, labels, *, ascending=False) -> None:
        batch = reduce_duplicates(ids, errors, ascending=ascending)
        stats.observe(batch)
        self.note_visits(ids)
        self.observed(stats, batch)

    def observed(self, stats: UnitStatistics, batch: BatchReduction) -> None:
        if self.categorical is not None and self.weight_map is not None:
            weights = self.weight_map(stats.filled_error_of(batch.ids, self.prior_value))
            self.categorical.refresh(batch.ids, weights, ascending=True)

    def adopt(self, proposal: Proposal) -> None:
        if self.refresh and isinstance(proposal, CategoricalProposal):
            self.categorical = proposal.categorical

    def note_visits(self, ids: torch.Tensor) -> None:
        if self.age is not None:
            self.age.index_fill_(0, ids, 0)

    def score(self, stats: UnitStatistics) -> torch.Tensor:
        """The float32 error per unit the distribution follows: the unit's own, or pooled."""
        if self.pool_visits > 0:
            return pooled_error(stats, self.layout, self.pool_visits)
        return stats.filled_error(self.prior)

    def build(self, stats: UnitStatistics) -> Proposal:
        if self.refresh:
            self.prior_value = stats.prior_value(self.prior)
            weights, self.weight_map = self.shaping.weights_and_map(self.score(stats))
            proposal = CategoricalProposal(weights)
            self.adopt(proposal)
            return proposal
        weights = self.shaping.weights(self.score(stats))
        if self.age is None:
            return CategoricalProposal(weights)
        self.age.add_(self.age < 255)
        stale = self.age.to(torch.float32)
        # (1 - staleness) of the error-driven distribution, staleness in proportion to age.
        weights.mul_(1.0 - self.staleness).add_(stale.mul_(self.staleness / stale.sum(dtype=torch.float64)))
        return CategoricalProposal(weights)

    def nbytes(self) -> int:
        return 0 if self.age is None else self.age.numel()

    def state_dict(self) -> dict:
        state = {} if self.age is None else {"age": self.age}
        if self.weight_map is not None:
            state.update(weight_map=self.weight_map.state_dict(), prior_value=self.prior_value)
        return state

    def load_state_dict(self, state: dict) -> None:
        if self.age is not None and "age" in state:
            self.age.copy_(state["age"])
        if self.refresh and "weight_map" in state:
            saved = state["weight_map"]
            tensors = {key: saved[key].to(self.device) for key in ("peak", "floor", "top", "scale")}
            self.weight_map = WeightMap(**tensors, share=float(saved["share"]))
            self.prior_value = state["prior_value"].to(self.device)


@dataclass
class Spatial(Strategy):
    """Tiles of an (images, H, W) layout drawn by their mean error, then units inside a tile."""

    name: ClassVar[str] = "spatial"
    patch_size: int = 16
    """Tile side in units (pixels)."""
    within: Literal["uniform", "proportional"] = "uniform"
    """How units are drawn inside a tile: uniformly, or in proportion to their own error."""
    prior: float | str = "max"
    """Error assumed for units never drawn yet: 'max' or a number."""
    pool_visits: float = 0.0
    """Pull each unit's error toward its neighbourhood's with this many visits' weight; 0: off."""

    def __post_init__(self) -> None:
        _check_pool_visits(self.pool_visits)
        if not isinstance(self.patch_size, int) or self.patch_size < 1:
            raise ValueError(f"patch_size must be a positive int, got {self.patch_size!r}")
        if self.within not in ("uniform", "proportional"):
            raise ValueError(f"within must be 'uniform' or 'proportional', got {self.within!r}")
        _check_prior(self.prior)

    def bind(self, layout: Layout, shaping: Shaping, device: torch.device) -> None:
        if not layout.is_grid:
            raise ValueError(
                f"strategy 'spatial' needs shape=(images, H, W); got shape={layout.shape}. "
                "Use 'error_weighted' for a flat population."
            )
        super().bind(layout, shaping, device)

    def tile_map(self, error: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-tile error sums and unit counts, shaped (images, tiles_y, tiles_x)."""
        images, height, width = self.layout.shape
        p = self.patch_size
        pad_y, pad_x = -height % p, -width % p
        grid = F.pad(error.view(images, height, width), (0, pad_x, 0, pad_y))
        ones = F.pad(torch.ones_like(error).view(images, height, width), (0, pad_x, 0, pad_y))
        ty, tx = grid.shape[1] // p, grid.shape[2] // p
        sums = grid.view(images, ty, p, tx, p).sum(dim=(2, 4))
        counts = ones.view(images, ty, p, tx, p).sum(dim=(2, 4))
        return sums, counts

    def _per_unit(self, tiles: torch.Tensor) -> torch.Tensor:
        images, height, width = self.layout.shape
        p = self.patch_size
        full = tiles[:, :, None, :, None].expand(-1, -1, p, -1, p)
        return full.reshape(images, tiles.shape[1] * p, tiles.shape[2] * p)[:, :height, :width].reshape(-1)

    def build(self, stats: UnitStatistics) -> Proposal:
        error = pooled_error(stats, self.layout, self.pool_visits) if self.pool_visits > 0 else None
        error = (stats.filled_error(self.prior) if error is None else error).clamp_(min=0.0)
        sums, counts = self.tile_map(error)
        tile_mean = sums / counts
        tile_mean = torch.maximum(tile_mean, self.shaping.min_error_weight * tile_mean.mean())
        tile_mean = torch.where(tile_mean.mean() > 0, tile_mean, torch.ones_like(tile_mean))
        tile_mass = tile_mean * counts
        if self.within == "uniform":
            weights = self._per_unit(tile_mass / counts)
        else:
            tile_sums = self._per_unit(sums)
            share = torch.where(tile_sums > 0, error / tile_sums, 1.0 / self._per_unit(counts))
            weights = self._per_unit(tile_mass) * share
        weights = weights.contiguous()  # the uniform-within map may be a broadcast view
        return CategoricalProposal(self.shaping.mix(weights))


DEFAULT_COMPONENTS = ("uniform", "error_weighted")
"""What adaptive mixes unless told otherwise."""


_HARM_KEPT = 0.5
"""Share of a fall back's weight on the other components' confidence still held at the next rebuild."""


@dataclass
class Adaptive(Strategy):
    """A mixture of strategies whose shares follow each one's measured progress, shown beyond noise.

    Every draw is split across the components by their shares, and each id remembers which
    component drew it. When the update for that draw arrives, a component's progress on the
    units it drew (among those seen before) is the geometric mean of the relative drop
    sum(previous - new) / sum(previous) and the drop per draw sum(previous - new) / count, that
    is sum(previous - new) / sqrt(sum(previous) * count). The per-draw drop rewards draws that
    remove much error (concentrated errors); the relative drop refuses credit for large errors
    that do not fall (noise floors, what the model cannot fit). The sums, and the sum of squared
    drops, decay by progress_decay at every update, so a component's score and its standard error
    cover the recent draws.

    At every rebuild a target split is softmax(sharpness * score / max|score|). The first
    component (uniform by default) is the fallback: another component takes its target share
    only as far as its lead over the fallback is shown, in proportion to (z / evidence - 1)
    clipped to [0, 1] for the lead's z-score z; the rest stays with the fallback. So a component
    needs a lead of evidence standard errors before it draws more than min_share, and its full
    target at twice that; where few units are seen twice or the errors are noisy (radiance
    fields early on), adaptive stays close to uniform. And where the fallback's own draws, a fair
    sample of the population, show errors rising by more than evidence standard errors (score
    below -evidence times its standard error), the mixture is losing ground overall, whatever the
    others gain on their draws (a memorising model, whose fit of some units costs the rest): every
    share goes back to the fallback, and the others' confidence returns by halves over the next
    rebuilds, not at once. The shares are min_share + (1 - K min_share) * split for K components.
    """

    name: ClassVar[str] = "adaptive"
    components: tuple[Literal["uniform", "error_weighted", "spatial"], ...] | None = None
    """Strategies to mix; default uniform and error_weighted (spatial may be added on (images, H, W) layouts)."""
    min_share: float = 0.1
    """The least share a component keeps."""
    progress_decay: float = 0.9
    """Decay, at every update, of the sums behind each component's score (0.9: about the last 10 updates)."""
    sharpness: float = 6.0
    """How strongly the target split follows the scores (0: equal targets)."""
    evidence: float = 2.0
    """Standard errors by which a component must lead the first one to earn share (full at twice); 0: trust scores."""
    patch_size: int = 16
    """Tile side of the spatial component."""
    within: Literal["uniform", "proportional"] = "uniform"
    """How the spatial component draws inside a tile."""
    prior: float | str = "max"
    """Error assumed for never-drawn units, for the error-driven components."""
    pool_visits: float = 0.0
    """Neighbourhood pooling of the error-driven components (as error_weighted's); 0: off."""
    staleness: float = 0.0
    """Share of the error_weighted component's draws that goes by time since a unit was last drawn; 0: off."""
    refresh: bool = False
    """Re-weight the error_weighted component's units at every update (as error_weighted's refresh)."""
    children: list[Strategy] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        if not 0.0 <= self.progress_decay < 1.0:
            raise ValueError(f"progress_decay must be in [0, 1), got {self.progress_decay!r}")
        if not (math.isfinite(self.sharpness) and self.sharpness >= 0.0):
            raise ValueError(f"sharpness must be finite and >= 0, got {self.sharpness!r}")
        if not (math.isfinite(self.evidence) and self.evidence >= 0.0):
            raise ValueError(f"evidence must be finite and >= 0, got {self.evidence!r}")
        _check_prior(self.prior)
        _check_pool_visits(self.pool_visits)

    def bind(self, layout: Layout, shaping: Shaping, device: torch.device) -> None:
        super().bind(layout, shaping, device)
        # spatial is not a default: on photos and rays it scored within a few percent of uniform, never
        # rose above its floor, and cost about half of adaptive's kernel launches (BENCHMARKS.md).
        names = tuple(self.components or DEFAULT_COMPONENTS)
        allowed = ("uniform", "error_weighted", "spatial")
        unknown = [n for n in names if n not in allowed]
        if unknown or len(set(names)) != len(names) or not names:
            raise ValueError(f"components must be distinct names from {allowed}, got {names!r}")
        if not 0.0 <= self.min_share * len(names) <= 1.0:
            raise ValueError(f"min_share must be in [0, 1/{len(names)}] for {len(names)} components")
        self.names = names
        options = {
            "patch_size": self.patch_size,
            "within": self.within,
            "prior": self.prior,
            "pool_visits": self.pool_visits,
            "staleness": self.staleness,
            "refresh": self.refresh,
        }
        self.children = []
        for name in names:
            cls = STRATEGIES[name]
            child = cls(**{k: v for k, v in options.items() if k in cls.arguments()})
            child.bind(layout, shaping, device)
            self.children.append(child)
        self.progress = torch.zeros(4, len(names), dtype=torch.float32, device=device)
        self.shares = [1.0 / len(names)] * len(names)
        self.harm = torch.zeros((), dtype=torch.float32, device=device)

    @property
    def scores(self) -> torch.Tensor:
        """Each component's progress score, sum(drop) / sqrt(sum(previous) * count) over its recent draws."""
        drops, _, previous, counts = self.progress
        return drops / (previous.sqrt() * counts.sqrt()).clamp(min=torch.finfo(torch.float32).tiny)

    def standard_errors(self) -> torch.Tensor:
        """The standard error of each score (infinite for a component with fewer than two measured draws)."""
        drops, squares, previous, counts = self.progress
        mean = drops / counts.clamp(min=1.0)
        variance = (squares / counts.clamp(min=1.0) - mean.square()).clamp(min=0.0)
        spread = (variance / counts.clamp(min=1.0)).sqrt() / (previous / counts.clamp(min=1.0)).sqrt().clamp(
            min=torch.finfo(torch.float32).tiny
        )
        return torch.where(counts >= 2.0, spread, torch.full_like(spread, math.inf))

    def observe(self, stats, ids, errors, labels, *, ascending=False) -> None:
        if labels is not None:
            previous = stats.error.index_select(0, ids).to(torch.float32)
            errors = errors.to(torch.float32)
            usable = (stats.visits.index_select(0, ids) > 0) & torch.isfinite(errors)
            drop = torch.where(usable, previous - errors, 0.0)
            base = torch.where(usable, previous, 0.0)
            measured = torch.stack((drop, drop.square(), base, usable.to(torch.float32)))
            sums = measured.new_zeros(4, len(self.children)).index_add_(1, labels.long(), measured)
            self.progress = torch.add(sums, self.progress, alpha=self.progress_decay)
        batch = reduce_duplicates(ids, errors, ascending=ascending)
        stats.observe(batch)
        for child in self.children:
            child.note_visits(ids)
            child.observed(stats, batch)

    @property
    def refreshes(self) -> bool:
        return any(child.refreshes for child in self.children)

    def adopt(self, proposal: Proposal) -> None:
        if isinstance(proposal, MixtureProposal):
            for child, component in zip(self.children, proposal.components, strict=True):
                child.adopt(component)

    def split(self) -> torch.Tensor:
        """The fraction of the free share each component gets: the target split, gated by evidence."""
        scores = self.scores
        peak = scores.abs().max().clamp(min=torch.finfo(torch.float32).tiny)
        target = torch.softmax(self.sharpness * scores / peak, dim=0)
        if self.evidence == 0.0:
            return target
        errors = self.standard_errors()
        lead = scores - scores[0]
        spread = (errors.square() + errors[0].square()).sqrt()
        z = torch.where(torch.isfinite(spread), lead / spread.clamp(min=torch.finfo(torch.float32).tiny), 0.0)
        confidence = (z / self.evidence - 1.0).clamp(0.0, 1.0)
        confidence[0] = 0.0
        # The first component draws a fair sample of the population: its errors rising beyond
        # evidence standard errors mean the mixture is losing ground overall, whatever the
        # others gain on their own draws. Then every share goes back to it.
        # The fall back is remembered, halving at each rebuild, so the shares climb back
        # gradually instead of flipping between the extremes at every rebuild.
        rising = torch.isfinite(errors[0]) & (scores[0] < -self.evidence * errors[0])
        self.harm = torch.where(rising, 1.0, self.harm * _HARM_KEPT)
        confidence = confidence * (1.0 - self.harm)
        gated = confidence * target
        gated[0] = 1.0 - gated[1:].sum()
        return gated

    def build(self, stats: UnitStatistics) -> Proposal:
        free = 1.0 - len(self.children) * self.min_share
        self.shares = [self.min_share + free * float(p) for p in self.split().tolist()]
        return MixtureProposal([c.build(stats) for c in self.children], self.shares)

    def mixture(self) -> dict[str, float]:
        return dict(zip(self.names, self.shares, strict=True))

    def nbytes(self) -> int:
        return sum(child.nbytes() for child in self.children)

    def state_dict(self) -> dict:
        return {
            "progress": self.progress,
            "shares": list(self.shares),
            "harm": self.harm,
            "children": [child.state_dict() for child in self.children],
        }

    def load_state_dict(self, state: dict) -> None:
        saved = len(state["shares"])
        if saved != len(self.children):
            raise ValueError(
                f"this adaptive state mixes {saved} components, the strategy {len(self.children)} "
                f"({', '.join(self.names)}): pass the components it was saved with"
            )
        if "progress" in state:
            self.progress = state["progress"].to(self.device, torch.float32)
        self.shares = list(state["shares"])
        self.harm = torch.as_tensor(state.get("harm", 0.0), dtype=torch.float32).to(self.device)
        for child, child_state in zip(self.children, state.get("children", []), strict=False):
            child.load_state_dict(child_state)


_FAILURE_FORMS = {
    # BeyondMimic, arXiv 2508.08241 Sec. III-F (defaults from the seed's planning document).
    "paper": {"kernel_size": 5, "kernel_decay": 0.9, "uniform_ratio": 0.1, "alpha": 0.1},
    # HybridRobotics/whole_body_tracking MotionCommand._adaptive_sampling, at HEAD.
    "official": {"kernel_size": 1, "kernel_decay": 0.8, "uniform_ratio": 0.1, "alpha": 0.001},
}


@dataclass
class FailureBins(Strategy):
    """BeyondMimic's adaptive sampling of motion-timeline bins, in two named forms.

    paper: each update carries finished episodes: ids are their START bins, errors 1 for a
    failure and 0 otherwise. Bins with episodes in the update move their failure-rate EMA
    r <- (1 - alpha) r + alpha F/N; then p_s is proportional to sum over u < K (s + u < S) of
    kernel_decay^u r_(s+u) (non-causal), mixed as uniform_ratio / S + (1 - uniform_ratio) p.

    official: update is called every control step with ids the bins where episodes FAILED at
    this step (terminations, not time-outs; errors are per-failure counts, usually ones, and may
    be empty). Every call moves c <- alpha * bincount + (1 - alpha) c; then q = c + uniform_ratio / S
    is right-padded by replication, convolved with the kernel kernel_decay^u / sum, and normalised.

    Arguments left unset take the form's defaults (paper: 5, 0.9, 0.1, 0.1; official: 1, 0.8,
    0.1, 0.001); binding resolves them without changing the fields.
    """

    name: ClassVar[str] = "failure_bins"
    form: Literal["official", "paper"] = "official"
    """Which BeyondMimic: the released code's (official) or the paper's (Sec. III-F)."""
    kernel_size: int | None = None
    """Bins the smoothing kernel spans (K); unset: the form's default."""
    kernel_decay: float | None = None
    """Decay of the kernel's taps (gamma, lambda); unset: the form's default."""
    uniform_ratio: float | None = None
    """Uniform share mixed in; unset: the form's default."""
    alpha: float | None = None
    """EMA rate of the failure statistics; unset: the form's default."""

    def __post_init__(self) -> None:
        if self.form not in _FAILURE_FORMS:
            raise ValueError(f"form must be one of {sorted(_FAILURE_FORMS)}, got {self.form!r}")
        settings = self.resolved()
        kernel_size = settings["kernel_size"]
        if not isinstance(kernel_size, int) or isinstance(kernel_size, bool) or kernel_size < 1:
            raise ValueError(f"kernel_size must be a positive int, got {kernel_size!r}")
        for key in ("kernel_decay", "uniform_ratio", "alpha"):
            value = settings[key]
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{key} must be in [0, 1], got {value!r}")

    def resolved(self) -> dict[str, float | int]:
        """kernel_size, kernel_decay, uniform_ratio and alpha, unset ones taken from the form."""
        return {
            key: default if getattr(self, key) is None else getattr(self, key)
            for key, default in _FAILURE_FORMS[self.form].items()
        }

    def bind(self, layout: Layout, shaping: Shaping, device: torch.device) -> None:
        if layout.is_grid:
            raise ValueError(f"strategy 'failure_bins' needs a flat shape (number of bins), got {layout.shape}")
        super().bind(layout, shaping, device)
        settings = self.resolved()
        self._kernel_size = int(settings["kernel_size"])
        self._uniform_ratio = float(settings["uniform_ratio"])
        self._alpha = float(settings["alpha"])
        self.score = torch.zeros(layout.num_units, dtype=torch.float32, device=device)
        kernel = settings["kernel_decay"] ** torch.arange(self._kernel_size, dtype=torch.float32, device=device)
        self.kernel = kernel / kernel.sum() if self.form == "official" else kernel

    def observe(self, stats, ids, errors, labels, *, ascending=False) -> None:
        bins = self.layout.num_units
        errors = errors.to(torch.float32)
        finite = torch.isfinite(errors)
        values = torch.where(finite, errors, torch.zeros_like(errors))
        if self.form == "official":
            current = torch.bincount(ids, weights=values, minlength=bins)
            self.score = self._alpha * current + (1.0 - self._alpha) * self.score
        else:
            episodes = torch.bincount(ids, weights=finite.to(torch.float32), minlength=bins)
            failures = torch.bincount(ids, weights=values, minlength=bins)
            rate = failures / episodes.clamp(min=1.0)
            blended = (1.0 - self._alpha) * self.score + self._alpha * rate
            self.score = torch.where(episodes > 0, blended, self.score)
        if ids.numel():
            stats.observe(reduce_duplicates(ids, errors, ascending=ascending))

    def probabilities_from_score(self) -> torch.Tensor:
        """The form's bin distribution for the current scores, float32, summing to 1."""
        bins, k = self.layout.num_units, self._kernel_size
        if self.form == "official":
            q = self.score + self._uniform_ratio / bins
            p = self._correlate(torch.cat([q, q[-1:].expand(k - 1)]))
            return p / p.sum()
        p = self._correlate(F.pad(self.score, (0, k - 1)))
        total = p.sum()
        p = torch.where(total > 0, p / total.clamp(min=torch.finfo(torch.float32).tiny), 1.0 / bins)
        return self._uniform_ratio / bins + (1.0 - self._uniform_ratio) * p

    def _correlate(self, padded: torch.Tensor) -> torch.Tensor:
        """``out[s] = sum_u kernel[u] * padded[s + u]``: a sum of shifted copies, one per kernel tap.

        Cheaper than ``conv1d`` for a few hundred bins, which pays thread start-up on every call.
        """
        bins = self.layout.num_units
        out = self.kernel[0] * padded[:bins]
        for u in range(1, self._kernel_size):
            out = out + self.kernel[u] * padded[u : u + bins]
        return out

    def build(self, stats: UnitStatistics) -> Proposal:
        return CategoricalProposal(self.probabilities_from_score())

    def state_dict(self) -> dict:
        return {"score": self.score}

    def load_state_dict(self, state: dict) -> None:
        self.score = state["score"].to(self.device, torch.float32)


STRATEGIES: dict[str, type[Strategy]] = {
    cls.name: cls for cls in (Uniform, ErrorWeighted, Spatial, Adaptive, FailureBins)
}


def make_strategy(name: str, **arguments) -> Strategy:
    """Instantiate a strategy by name, rejecting unknown names and arguments by name."""
    if name not in STRATEGIES:
        raise ValueError(f"strategy must be one of {sorted(STRATEGIES)}, got {name!r}")
    cls = STRATEGIES[name]
    allowed = cls.arguments()
    unknown = sorted(set(arguments) - set(allowed))
    if unknown:
        raise ValueError(f"unknown argument(s) {unknown} for strategy {name!r}; allowed: {allowed or 'none'}")
    return cls(**arguments)


def _peak(values: torch.Tensor) -> torch.Tensor:
    """The maximum of non-negative ``values``, or 1 when all are zero (a divisor that keeps zeros zeros)."""
    peak = values.amax()
    return torch.where(peak > 0, peak, torch.ones_like(peak))


def _check_prior(prior: float | str) -> None:
    if prior == "max":
        return
    if isinstance(prior, str) or not math.isfinite(prior) or prior < 0:
        raise ValueError(f"prior must be 'max' or a finite number >= 0, got {prior!r}")


def _check_pool_visits(value: object) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value < math.inf:
        raise ValueError(f"pool_visits must be a number >= 0, got {value!r}")


def pooled_error(stats: UnitStatistics, layout: Layout, strength: float) -> torch.Tensor:
    """Each unit's error shrunk toward its neighbourhood's, coarse to fine (hierarchical empirical Bayes).

    A region's estimate is ``(sum of visits x error + strength x parent's estimate) / (visits +
    strength)``: the population's visited mean at the top, then each image, then tiles of
    2^k, ..., 2 units a side and the unit itself (image layouts; flat populations go from the
    population straight to the unit). A unit visited ``n`` times thus weighs its own error by
    ``n / (n + strength)``. Returns float32 per unit; besides the result the pyramid takes about a
    third of the population.
    """
    weighted = stats.error.to(torch.float32, copy=True)
    visits = stats.visits.to(torch.float32)
    weighted.mul_(visits)  # the EMA error counted once per visit
    total_visits = visits.sum(dtype=torch.float64)
    top = weighted.sum(dtype=torch.float64) / total_visits.clamp(min=1.0)
    top = torch.where(total_visits > 0, top, torch.ones_like(top)).to(torch.float32)
    if not layout.is_grid:
        return weighted.add_(strength * top).div_(visits.add_(strength))
    images, height, width = layout.shape
    levels = [(weighted.view(images, height, width), visits.view(images, height, width))]
    while max(levels[-1][0].shape[1:]) > 1:
        levels.append(tuple(_halved(x) for x in levels[-1]))
    *finer, (sums, counts) = levels
    estimate = (sums + strength * top) / (counts + strength)  # each image, (images, 1, 1)
    for index in range(len(finer) - 1, -1, -1):
        sums, counts = finer[index]
        h, w = sums.shape[1:]
        parent = estimate.repeat_interleave(2, 1).repeat_interleave(2, 2)[:, :h, :w]
        if index == 0:  # the units: reuse the buffers
            return sums.add_(parent, alpha=strength).div_(counts.add_(strength)).view(-1)
        estimate = (sums + strength * parent) / (counts + strength)
    return estimate.view(-1)  # one unit per image: the image's estimate is the unit's


def _halved(grid: torch.Tensor) -> torch.Tensor:
    """Sums over 2 x 2 blocks of ``(images, h, w)`` (odd sides padded with zeros)."""
    images, h, w = grid.shape
    padded = F.pad(grid, (0, w % 2, 0, h % 2))
    return padded.view(images, (h + 1) // 2, 2, (w + 1) // 2, 2).sum(dim=(2, 4))
