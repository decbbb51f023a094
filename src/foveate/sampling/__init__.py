"""foveate.sampling: keep a running error per training unit and draw the next batch from it.

Depends on torch alone. The one class most code needs is :class:`Sampler`::

    s = Sampler((images, H, W), strategy="error_weighted", seed=0)
    ids, weights = s.sample(65536, step)
    s.update(ids, per_unit_loss.detach(), step)
"""

from .aliases import AdaptiveSampler, ErrorBasedRaySampler
from .categorical import BLOCK, BlockCategorical, sorted_uniforms
from .layout import Layout
from .proposals import CategoricalProposal, MixtureProposal, UniformProposal
from .sampler import Draw, Sampler, available_strategies
from .statistics import UnitStatistics, reduce_duplicates
from .strategies import (
    STRATEGIES,
    Adaptive,
    ErrorWeighted,
    FailureBins,
    Shaping,
    Spatial,
    Strategy,
    Uniform,
    make_strategy,
)

__all__ = [
    "BLOCK",
    "STRATEGIES",
    "Adaptive",
    "AdaptiveSampler",
    "BlockCategorical",
    "CategoricalProposal",
    "Draw",
    "ErrorBasedRaySampler",
    "ErrorWeighted",
    "FailureBins",
    "Layout",
    "MixtureProposal",
    "Sampler",
    "Shaping",
    "Spatial",
    "Strategy",
    "Uniform",
    "UniformProposal",
    "UnitStatistics",
    "available_strategies",
    "make_strategy",
    "reduce_duplicates",
    "sorted_uniforms",
]
