"""The contract between a pipeline and the training loop: a task owns its step, the loop owns the rest.

A task is a model with everything that differs between systems: its optimizers and schedules,
what one training step does, what it measures and which way is better, what it writes when
training ends. The loop (:class:`~foveate.train.loop.Trainer`) keeps what every system shares:
the sampler's draws and their feedback, mixed precision and clipping (through
:class:`Optimization`), checkpoints and resume, signals, logging, progress and seeding.

One step, as the loop runs it::

    for hook in task.hooks(): hook.run_if_due(step)          # occupancy grids, densification, warm-ups
    batch = sampler.sample(task.draw_size(batch_size), step)  # skipped if task.draws_units is False
    out = task.training_step(batch, step, optimization)      # the task steps its own optimizers
    sampler.update(batch.ids, out.per_unit, step)             # feedback, no host sync
    for scheduler in task.schedulers.values(): scheduler.step()

The simplest task gives a model and ``per_unit_loss(ids)``; the default ``training_step``
minimises ``mean(weights * per_unit) + sum(regularisers)`` with one Adam over the model.
A GAN overrides ``configure_optimizers`` (two optimizers) and ``training_step`` (alternating
``optimization.minimize`` calls); a splatting task replaces parameters and their optimizer
state in a hook and overrides ``load_state_dict`` to resize before loading.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from foveate.sampling import Draw, Sampler

from .checkpoint import CheckpointLayout
from .config import RESUME_EXEMPT, OptimConfig
from .distributed import ALONE, Ranks
from .schedules import Scheduler, make_scheduler

__all__ = ["Hook", "Metric", "Optimization", "StepOutput", "Task", "Validation", "make_adam"]


@dataclass(frozen=True)
class Metric:
    """The number a task is judged by, and which way is better.

    Attributes:
        name: the key of ``Validation.metrics`` (``psnr``, ``chamfer``, ``completion``).
        higher_is_better: PSNR and success rates go up, Chamfer distances and errors go down.
        label: axis label for plots, e.g. ``PSNR (dB)``.
        target: an absolute goal (a motion is complete at 1.0); comparisons then measure the
            steps to reach it instead of the steps to reach uniform's final value.
    """

    name: str
    higher_is_better: bool = True
    label: str = ""
    target: float | None = None

    @property
    def mode(self) -> str:
        """``max`` or ``min``, as learning-rate schedulers name a direction."""
        return "max" if self.higher_is_better else "min"

    def better(self, value: float, than: float | None) -> bool:
        """Whether ``value`` improves on ``than`` (anything improves on None)."""
        if than is None:
            return True
        return value > than if self.higher_is_better else value < than

    def reached(self, value: float, target: float) -> bool:
        """Whether ``value`` is at least as good as ``target``."""
        return value >= target if self.higher_is_better else value <= target


@dataclass
class Validation:
    """What a validation returns.

    Attributes:
        metrics: scalars by name; every validation of a task returns its metric's key.
        images: ``(H, W, C)`` float pictures in [0, 1] for logs and reports (``target``,
            ``prediction``, ``error``).
        maps: non-negative quantities to draw as heatmaps: ``(H, W)`` (a per-pixel error) or
            ``(N,)`` (a per-bin success rate).
    """

    metrics: dict[str, float]
    images: dict[str, torch.Tensor] = field(default_factory=dict)
    maps: dict[str, torch.Tensor] = field(default_factory=dict)


@dataclass
class StepOutput:
    """What one training step hands back to the loop.

    Attributes:
        loss: the scalar that was minimised (a device tensor; the loop checks it is finite
            without a host sync).
        per_unit: ``(B,)`` one error per drawn unit, fed to the sampler; None when the task
            feeds the sampler itself (``draws_units = False``) or has nothing to feed.
        terms: named parts of the loss, or other scalars worth logging (device tensors or floats),
            averaged over the logging window.
        noise: ``(B,)`` the irreducible part of each ``per_unit`` error (the targets' own noise),
            which the sampler subtracts; None when the data has no estimate.
    """

    loss: torch.Tensor
    per_unit: torch.Tensor | None = None
    terms: Mapping[str, torch.Tensor | float] = field(default_factory=dict)
    noise: torch.Tensor | None = None


@dataclass(frozen=True)
class Hook:
    """Something a task does on a cadence of training steps, before the step runs.

    ``run`` is called with the step at ``start, start + every, ...`` (before ``stop``). The cadence
    comes from the loop's step, which a resume restores, so it survives a resume; whatever the
    hook changes must live in the task's ``state_dict``.
    """

    every: int
    run: Callable[[int], None]
    start: int = 0
    stop: int | None = None

    def __post_init__(self) -> None:
        if self.every < 1 or self.start < 0:
            raise ValueError(f"a hook needs every >= 1 and start >= 0, got every={self.every}, start={self.start}")

    def due(self, step: int) -> bool:
        if step < self.start or (self.stop is not None and step >= self.stop):
            return False
        return (step - self.start) % self.every == 0


class Optimization:
    """What the loop lends a task's ``training_step``: mixed precision, backward, clipping, steps.

    Args:
        optimizers: the task's optimizers by name.
        device: where training runs; autocast is used on CUDA only.
        amp_dtype: bfloat16 or float16 under autocast, or None for full precision.
        clip_grad_norm: default gradient-norm clip per optimizer step (0: none).
        scaler: loss scaling for float16 (a no-op otherwise).
        ranks: the ranks of a distributed run; every step first averages the gradients over them.
    """

    def __init__(
        self,
        optimizers: Mapping[str, torch.optim.Optimizer],
        device: torch.device,
        amp_dtype: torch.dtype | None,
        clip_grad_norm: float,
        scaler: torch.amp.GradScaler,
        ranks: Ranks = ALONE,
    ) -> None:
        self.optimizers = optimizers
        self.device = device
        self.amp_dtype = amp_dtype
        self.clip_grad_norm = clip_grad_norm
        self.scaler = scaler
        self.ranks = ranks

    def autocast(self) -> AbstractContextManager:
        """Mixed precision for the forward pass (CUDA with ``amp``; a no-op elsewhere)."""
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def zero_grad(self, *names: str) -> None:
        for optimizer in self._named(names):
            optimizer.zero_grad(set_to_none=True)

    def backward(self, loss: torch.Tensor, retain_graph: bool = False) -> None:
        """``loss.backward()``, scaled when float16 mixed precision needs it."""
        self.scaler.scale(loss).backward(retain_graph=retain_graph)

    def step(self, *names: str, clip: float | None = None) -> None:
        """Average the gradients over the ranks, clip and step the named optimizers (all when none are
        named), then update the loss scale."""
        clip = self.clip_grad_norm if clip is None else clip
        for optimizer in self._named(names):
            parameters = [p for group in optimizer.param_groups for p in group["params"]]
            self.ranks.average_gradients(parameters)
            if clip > 0:
                self.scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(parameters, clip)
            self.scaler.step(optimizer)
        self.scaler.update()

    def minimize(self, loss: torch.Tensor, *names: str, clip: float | None = None) -> None:
        """Zero, backward and step: one optimisation of ``loss`` by the named optimizers (default all)."""
        self.zero_grad(*names)
        self.backward(loss)
        self.step(*names, clip=clip)

    def _named(self, names: Sequence[str]) -> Iterator[torch.optim.Optimizer]:
        if not names:
            yield from self.optimizers.values()
            return
        for name in names:
            if name not in self.optimizers:
                raise KeyError(f"no optimizer named {name!r}; the task has {sorted(self.optimizers)}")
            yield self.optimizers[name]


class Task:
    """Base class of a pipeline's task: override what differs, inherit the rest.

    Subclasses set ``name``, ``model`` and ``unit_shape`` (the sampler's shape: N, or
    (images, H, W)) and implement ``validate``; plus ``per_unit_loss`` when they keep the
    default ``training_step``.

    Class attributes:
        name: the registered pipeline name (recorded in checkpoints).
        metric: what validation is judged by, with its direction. An instance may judge by another
            when its data lacks what this one needs (a scene without a true mesh); comparisons,
            which report the class's metric, then refuse it.
        unit_noun: what one unit is, for reports: pixels, rays, bins, views.
        step_noun: what one training step is, for reports: steps, iterations.
        draws_units: whether the loop draws a batch of ``batch_size`` units each step. A task
            whose units are drawn inside its step (start bins of episodes that reset) sets it
            False and uses ``self.sampler`` itself.
        quick_validation: whether ``validate(full=False)`` is cheaper than ``validate(full=True)``;
            when False every validation is a full one.
        resume_exempt: config keys (dotted) a resume may change: they do not alter what is computed
            at a given step (the loop's cadence, the device, the run's length).
        checkpoint_names: where a run's checkpoints are and their names (an instance's
            :meth:`checkpoint_layout` may number them by epochs).
        distributable: whether ranks under ``torchrun`` can train one run of it together (a motion's
            episodes reset on their own clocks, so its ranks run separate seeds instead).
        cost_label: what a full validation's ``cost_per_unit`` metric measures, for tasks whose units
            cost unequal work (a radiance field: field queries per drawn ray); None when it has none.
    """

    name: ClassVar[str] = ""
    metric: ClassVar[Metric] = Metric("psnr", True, "PSNR (dB)")
    unit_noun: ClassVar[str] = "units"
    step_noun: ClassVar[str] = "steps"
    draws_units: ClassVar[bool] = True
    quick_validation: ClassVar[bool] = True
    resume_exempt: ClassVar[frozenset[str]] = RESUME_EXEMPT
    checkpoint_names: ClassVar[CheckpointLayout] = CheckpointLayout()
    distributable: ClassVar[bool] = True
    cost_label: ClassVar[str | None] = None

    model: nn.Module
    unit_shape: int | tuple[int, ...]
    sampler: Sampler | None = None
    ranks: Ranks = ALONE
    """The ranks of a distributed run (set by the loop before :meth:`bind`): a task that draws its own
    units takes its slice of each global batch with ``self.ranks.local``."""
    optimizers: dict[str, torch.optim.Optimizer]
    schedulers: dict[str, Scheduler]

    @classmethod
    def from_config(cls, config: Any, device: torch.device) -> Task:
        """Build the task a pipeline config describes (load its data, make its model) on ``device``."""
        raise NotImplementedError(f"{cls.__name__} must implement from_config")

    @classmethod
    def run_name(cls, config: Any) -> str:
        """The default name of a run of ``config`` (a date is appended): the pipeline and strategy."""
        return f"{cls.name}-{config.sampling.strategy}"

    @classmethod
    def batch_words(cls, config: Any) -> str | None:
        """A step's batch in words for reports ("1024 rays"); None when the loop draws no units."""
        return f"{config.train.batch_size} {cls.unit_noun}" if cls.draws_units else None

    def bind(self, sampler: Sampler) -> None:
        """Receive the loop's sampler (called once, before training and before any state is loaded)."""
        self.sampler = sampler

    def configure_optimizers(self, config: OptimConfig, total_steps: int) -> None:
        """Build ``self.optimizers`` and ``self.schedulers``; default: one Adam over the model."""
        optimizer = make_adam(self.model.parameters(), config)
        self.optimizers = {"model": optimizer}
        self.schedulers = {"model": make_scheduler(optimizer, config, total_steps, self.metric.mode)}

    def checkpoint_layout(self) -> CheckpointLayout:
        """Where this run's checkpoints go and their names; default: ``checkpoint_names``."""
        return self.checkpoint_names

    def hooks(self) -> list[Hook]:
        """Work to do on a cadence of steps, before the step.

        The loop collects them once, before any checkpoint is loaded: let them call the task's
        methods rather than hold objects a resume replaces.
        """
        return []

    def draw_size(self, batch_size: int) -> int:
        """Units the loop draws for the next step; default: the configured ``batch_size``.

        A task whose units cost unequal work (rays that march through more or less occupied
        space) may size each step's batch to a fixed budget of work instead.
        """
        return batch_size

    def per_unit_loss(self, ids: torch.Tensor) -> torch.Tensor:
        """``(B,)`` non-negative loss per unit id, differentiable w.r.t. the model."""
        raise NotImplementedError(f"{type(self).__name__} must implement per_unit_loss or training_step")

    def unit_noise(self, ids: torch.Tensor) -> torch.Tensor | None:
        """``(B,)`` the part of each unit's loss no model can remove (its target's noise), or None."""
        return None

    def regularizers(self, step: int) -> dict[str, torch.Tensor]:
        """Loss terms that belong to no unit (eikonal, sparsity); added to the weighted mean."""
        return {}

    def training_step(self, batch: Draw | None, step: int, optimization: Optimization) -> StepOutput:
        """One step; default: minimise ``mean(weights * per_unit_loss(ids)) + sum(regularizers)``."""
        if batch is None:
            raise ValueError(f"{type(self).__name__} draws no units itself: it needs the loop's batch")
        self.model.train()
        with optimization.autocast():
            per_unit = self.per_unit_loss(batch.ids).float()
            terms = self.regularizers(step)
        loss = (batch.weights * per_unit).mean()
        for term in terms.values():
            loss = loss + term.float()
        optimization.minimize(loss)
        terms = {k: v.detach() for k, v in terms.items()}
        return StepOutput(loss.detach(), per_unit.detach(), terms, self.unit_noise(batch.ids))

    def validate(self, full: bool) -> Validation:
        """Measure the model (the loop calls it under ``torch.no_grad`` in eval mode).

        ``full=False`` is the cheap validation behind the curves (the same fixed subset every
        time); ``full=True`` also returns images and maps, and extra metrics.
        """
        raise NotImplementedError

    def record(self, run_dir: Path) -> list[Path]:
        """Keep files for the record when a run starts or resumes (NeuS backs up the code of its model).

        Called after ``config.yaml`` is written; returns the files written (default: none).
        """
        return []

    def export(self, run_dir: Path) -> list[Path]:
        """Write the run's products (renders, meshes, policies) when training ends; returns the files."""
        return []

    def render(self, options: Any, out: Path, progress: bool = False) -> list[Path]:
        """``foveate render NAME --run DIR``: write renders of the trained model into ``out``.

        ``options`` holds the pipeline's render flags (its spec's ``render_options``).
        """
        raise NotImplementedError(f"{type(self).__name__} renders nothing")

    def describe(self) -> str:
        """What is being fitted, in a few words for reports (a photo and its size, a scene)."""
        return self.name

    def state_dict(self) -> dict[str, Any]:
        """Everything of the task a resume needs: model, optimizers, schedulers."""
        return {
            "model": self.model.state_dict(),
            "optimizers": {name: opt.state_dict() for name, opt in self.optimizers.items()},
            "schedulers": {name: scheduler.state_dict() for name, scheduler in self.schedulers.items()},
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Undo :meth:`state_dict`."""
        self.model.load_state_dict(state["model"])
        _load_named("optimizer", self.optimizers, state["optimizers"])
        _load_named("scheduler", self.schedulers, state["schedulers"])


def make_adam(parameters: Iterable[nn.Parameter] | Iterable[dict[str, Any]], config: OptimConfig) -> torch.optim.Adam:
    """Adam with the config's learning rate, betas, epsilon and weight decay; fused when all is on CUDA.

    ``parameters`` are tensors (those that need no gradient are left out) or parameter groups.
    """
    parameters = list(parameters)
    if parameters and isinstance(parameters[0], dict):
        tensors = [p for group in parameters for p in group["params"]]
    else:
        parameters = tensors = [p for p in parameters if p.requires_grad]
    return torch.optim.Adam(
        parameters,
        lr=config.lr,
        betas=tuple(config.betas),
        eps=config.eps,
        weight_decay=config.weight_decay,
        fused=bool(tensors) and all(p.is_cuda for p in tensors),
    )


def _load_named(kind: str, targets: Mapping[str, Any], states: Mapping[str, Any]) -> None:
    if set(targets) != set(states):
        raise ValueError(f"checkpoint has {kind}s {sorted(states)}, this task has {sorted(targets)}")
    for name, target in targets.items():
        target.load_state_dict(states[name])
