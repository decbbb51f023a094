"""The PBR pipeline's config: NeuroPBR's sections and names, and the training loop's view of them.

A config has the seed's sections (``config.data``, ``config.model``, ``config.loss``,
``config.optimizer``, ``config.training``, ``config.transform``) with NeuroPBR's field names and
defaults, plus ``config.sampling`` (the engine). The training loop counts steps and reads
``config.train`` and ``config.optim``; those are views derived from ``training`` and
``optimizer`` (an epoch is ``ceil(train samples / batch size)`` steps, bound when the data is
loaded). A view is made on first use and kept, so what the loop or a comparison sets on it (a
seed, a device) stays; change the seed sections before that, not after.

Presets are NeuroPBR's ``default``, ``quick_test`` and ``lightweight``, plus ``tiny`` (seconds on
a CPU, for tests); ``configs/pbr/*.py`` ship its example files (``high_quality``,
``fast_iteration``, ``normal_focused``), each a ``get_config()`` returning a config.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib.util
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from tyro.conf import arg

from foveate.train import OptimConfig, Preset, TrainConfig, apply_changes, config_from_dict, load_config_yaml
from foveate.train.config import SamplingConfig

from .losses import LossConfig
from .networks import ModelConfig

__all__ = [
    "PRESETS",
    "DataConfig",
    "OptimizerConfig",
    "PBRConfig",
    "TrainingConfig",
    "TransformConfig",
    "read_config_file",
    "upgrade_saved_config",
]


@dataclasses.dataclass
class DataConfig:
    """The dataset: where it is, which renders, the split and the batch."""

    data_root: Annotated[Path | None, arg(prefix_name=False)] = None
    """Dataset folder holding input/ and output/ (foveate pbr data writes one)."""
    image_size: Annotated[int, arg(prefix_name=False)] = 2048
    """Side the views and maps are resized to when loaded (the model's input and output size)."""
    batch_size: Annotated[int, arg(prefix_name=False)] = 1
    """Samples per training step."""
    use_dirty_renders: bool = False
    """Train on input/dirty (renders with shadows, smudges and scratches) instead of input/clean."""
    val_ratio: float = 0.1
    """Share of the samples held out for validation (shuffled with data.split_seed, never trained on)."""
    split_seed: int = 42
    """Seeds the train/validation split; apart from --seed, so every seed validates on the same samples."""


@dataclasses.dataclass
class OptimizerConfig:
    """The generator's and the discriminator's optimizers and the learning-rate schedule (per epoch)."""

    g_optimizer: Literal["adam", "adamw", "sgd"] = "adamw"
    """Generator optimizer."""
    g_lr: float = 2e-4
    """Generator learning rate."""
    g_betas: tuple[float, float] = (0.5, 0.999)
    """Generator Adam betas (SGD: the first is the momentum)."""
    g_weight_decay: float = 1e-4
    """Generator weight decay."""
    d_optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    """Discriminator optimizer."""
    d_lr: float = 2e-4
    """Discriminator learning rate."""
    d_betas: tuple[float, float] = (0.5, 0.999)
    """Discriminator Adam betas."""
    d_weight_decay: float = 0.0
    """Discriminator weight decay."""
    scheduler: Literal["cosine", "step", "plateau", "none"] = "cosine"
    """cosine (to scheduler_min_lr after the warm-up), step, plateau (on the validation loss) or none."""
    scheduler_warmup_epochs: int = 5
    """Epochs of linear warm-up from 10% to 100% of the learning rate (cosine and step)."""
    scheduler_min_lr: float = 1e-6
    """Cosine: the learning rate at the last epoch."""
    step_size: int = 30
    """Step: epochs between decays."""
    gamma: float = 0.1
    """Step: the factor of each decay."""
    patience: int = 10
    """Plateau: validations without improvement before a decay."""
    factor: float = 0.5
    """Plateau: the factor of each decay."""


@dataclasses.dataclass
class TrainingConfig:
    """The run: epochs, the GAN's schedule, precision, checkpoints and logs."""

    epochs: Annotated[int, arg(prefix_name=False)] = 100
    """Epochs to train (an epoch: ceil(training samples / batch size) steps)."""
    seed: Annotated[int, arg(prefix_name=False)] = 42
    """Seeds the model's initialisation and the draws (the split has its own, data.split_seed)."""
    device: str = "auto"
    """'auto' (CUDA when present, else CPU), 'cpu', 'cuda' or 'cuda:N'."""
    cpu_threads: int = 1
    """torch threads on CPU (0: torch's default, every core)."""
    use_amp: bool = True
    """Mixed precision on CUDA (bfloat16 where supported, else float16); ignored on CPU."""
    grad_clip_norm: float = 1.0
    """Clip the generator's gradient norm to this (0: no clipping)."""
    gan_start_epoch: int = 5
    """First epoch with the adversarial loss and discriminator steps."""
    d_steps_per_g_step: int = 1
    """Discriminator updates per generator update."""
    val_every_n_epochs: int = 1
    """Epochs between validations."""
    save_every_n_epochs: int = 1
    """Epochs between checkpoint_epoch_XXXX.pth files (latest.pth is written with each)."""
    save_best_only: bool = False
    """Keep only best_model.pth and latest.pth, no numbered checkpoints."""
    checkpoint_dir: Annotated[Path, arg(prefix_name=False)] = Path("./checkpoints")
    """Where checkpoints, config.yaml, stats.jsonl and TensorBoard logs (tb/) go."""
    log_every_n_steps: int = 10
    """Steps between training-loss logs."""
    log_images_every_n_epochs: int = 5
    """Epochs between image grids (inputs, prediction vs target, error heatmaps)."""
    use_tensorboard: bool = True
    """Write TensorBoard event files."""
    use_wandb: bool = False
    """Also log to Weights & Biases (needs the wandb package)."""
    wandb_project: str = "neuropbr"
    """W&B project."""
    wandb_run_name: str | None = None
    """W&B run name (default: the checkpoint folder's name)."""
    resume: Annotated[str | None, arg(prefix_name=False)] = None
    """Continue a run: a checkpoint (checkpoint_epoch_XXXX.pth, latest.pth) or a checkpoint directory."""
    max_minutes: float | None = None
    """Stop (saving latest) after this much training time, in minutes."""
    progress: bool = True
    """Show a progress bar."""


@dataclasses.dataclass
class TransformConfig:
    """How views are normalised before the encoder."""

    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    """Per-channel mean subtracted from the views."""
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    """Per-channel deviation the views are divided by."""
    use_imagenet_stats: bool = False
    """Use ImageNet's mean and deviation instead (for ImageNet-trained encoder weights)."""

    def stats(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        if self.use_imagenet_stats:
            return (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
        return tuple(self.mean), tuple(self.std)


@dataclasses.dataclass
class _LoopView(TrainConfig):
    """The loop's settings derived from ``training``; remembers which were set afterwards, so those stay."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "explicit", set())

    def __setattr__(self, name: str, value: Any) -> None:
        if "explicit" in self.__dict__:
            self.explicit.add(name)
        super().__setattr__(name, value)


def _uniform_sampling() -> SamplingConfig:
    return SamplingConfig(strategy="uniform", warmup_iterations=0, update_frequency=1, decay=0.5)


@dataclasses.dataclass
class PBRConfig:
    """Multi-view PBR material estimation (NeuroPBR): three views in, albedo, roughness, metallic and normal out."""

    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    loss: LossConfig = dataclasses.field(default_factory=LossConfig)
    optimizer: OptimizerConfig = dataclasses.field(default_factory=OptimizerConfig)
    training: TrainingConfig = dataclasses.field(default_factory=TrainingConfig)
    transform: TransformConfig = dataclasses.field(default_factory=TransformConfig)
    sampling: SamplingConfig = dataclasses.field(default_factory=_uniform_sampling)

    @property
    def train(self) -> TrainConfig:
        """The loop's view of ``training`` (made on first use, then kept)."""
        view = self.__dict__.get("_train")
        if view is None:
            view = self.__dict__["_train"] = self._train_view(1)
        return view

    @property
    def optim(self) -> OptimConfig:
        """The loop's view of ``optimizer``: the generator's rate and the clipping."""
        view = self.__dict__.get("_optim")
        if view is None:
            o = self.optimizer
            view = self.__dict__["_optim"] = OptimConfig(
                lr=o.g_lr,
                betas=tuple(o.g_betas),
                eps=1e-8,
                weight_decay=o.g_weight_decay,
                clip_grad_norm=self.training.grad_clip_norm or 0.0,
                schedule=o.scheduler,
            )
        return view

    def bind_epoch_length(self, steps_per_epoch: int) -> None:
        """Turn the epoch counts into the loop's steps, once the number of training samples is known.

        Loop settings set directly on ``config.train`` (a test's ``train.steps``) are kept.
        """
        view = self.train
        fresh = self._train_view(steps_per_epoch)
        for name in ("steps", "log_every", "validate_every", "full_validate_every", "checkpoint_every"):
            if name not in view.explicit:
                object.__setattr__(view, name, getattr(fresh, name))
        if "keep_checkpoints" not in view.explicit:
            object.__setattr__(view, "keep_checkpoints", fresh.keep_checkpoints)

    def _train_view(self, steps_per_epoch: int) -> _LoopView:
        t = self.training
        epochs = max(t.epochs, 1)
        return _LoopView(
            steps=epochs * steps_per_epoch,
            batch_size=self.data.batch_size,
            seed=t.seed,
            name=Path(t.checkpoint_dir).name,
            resume=t.resume,
            device=t.device,
            cpu_threads=t.cpu_threads,
            amp=t.use_amp,
            log_every=max(1, min(t.log_every_n_steps, epochs * steps_per_epoch)),
            validate_every=max(1, t.val_every_n_epochs) * steps_per_epoch,
            full_validate_every=max(1, t.log_images_every_n_epochs) * steps_per_epoch,
            checkpoint_every=max(1, t.save_every_n_epochs) * steps_per_epoch,
            keep_checkpoints=0 if t.save_best_only else epochs,
            sampler_stats_every=steps_per_epoch,
            max_minutes=t.max_minutes,
            runs_dir=str(Path(t.checkpoint_dir).parent),
            progress=t.progress,
            tensorboard=t.use_tensorboard,
            wandb_project=t.wandb_project if t.use_wandb else None,
            wandb_run_name=t.wandb_run_name,
        )

    def check(self) -> None:
        """Refuse values no run can use, naming the flag, before anything is loaded or written."""
        rules = [
            ("data.image_size", self.data.image_size, lambda v: v >= 16, ">= 16"),
            ("data.batch_size", self.data.batch_size, lambda v: v >= 1, ">= 1"),
            ("data.val_ratio", self.data.val_ratio, lambda v: 0.0 <= v < 1.0, "in [0, 1)"),
            ("training.epochs", self.training.epochs, lambda v: v >= 1, ">= 1"),
            ("training.gan_start_epoch", self.training.gan_start_epoch, lambda v: v >= 0, ">= 0"),
            ("training.d_steps_per_g_step", self.training.d_steps_per_g_step, lambda v: v >= 1, ">= 1"),
            ("training.val_every_n_epochs", self.training.val_every_n_epochs, lambda v: v >= 1, ">= 1"),
            ("training.save_every_n_epochs", self.training.save_every_n_epochs, lambda v: v >= 1, ">= 1"),
            ("training.log_every_n_steps", self.training.log_every_n_steps, lambda v: v >= 1, ">= 1"),
            ("training.log_images_every_n_epochs", self.training.log_images_every_n_epochs, lambda v: v >= 1, ">= 1"),
            ("training.grad_clip_norm", self.training.grad_clip_norm, lambda v: v >= 0, ">= 0 (0: no clipping)"),
            ("optimizer.g_lr", self.optimizer.g_lr, lambda v: v > 0, "> 0"),
            ("optimizer.d_lr", self.optimizer.d_lr, lambda v: v > 0, "> 0"),
            ("optimizer.scheduler_warmup_epochs", self.optimizer.scheduler_warmup_epochs, lambda v: v >= 0, ">= 0"),
            ("optimizer.scheduler_min_lr", self.optimizer.scheduler_min_lr, lambda v: v >= 0, ">= 0"),
            ("optimizer.step_size", self.optimizer.step_size, lambda v: v >= 1, ">= 1"),
            ("optimizer.gamma", self.optimizer.gamma, lambda v: 0 < v <= 1, "in (0, 1]"),
            ("optimizer.factor", self.optimizer.factor, lambda v: 0 < v < 1, "in (0, 1)"),
            ("optimizer.patience", self.optimizer.patience, lambda v: v >= 0, ">= 0"),
        ]
        for name, value, valid, wanted in rules:
            numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
            if not (numeric and math.isfinite(value) and valid(value)):
                raise ValueError(f"{flag_of(name)} must be {wanted}, got {value!r}")
        if any(s <= 0 for s in self.transform.std):
            raise ValueError(f"{flag_of('transform.std')} must be positive, got {self.transform.std!r}")
        self.model.check()
        self.loss.check()


SHORT_FLAGS = frozenset(
    {"data.data_root", "data.image_size", "data.batch_size", "training.epochs", "training.seed"}
    | {"training.checkpoint_dir", "training.resume"}
)
"""Fields whose flag has no section prefix (NeuroPBR's ``--epochs``, ``--data-root``)."""


def flag_of(field: str) -> str:
    """The command-line flag of a dotted config field: ``training.epochs`` -> ``--epochs``."""
    name = field.rsplit(".", 1)[1] if field in SHORT_FLAGS else field
    return "--" + name.replace("_", "-")


def upgrade_saved_config(saved: Mapping[str, Any]) -> dict[str, Any]:
    """A checkpoint's config as this version reads it.

    Checkpoints written before ``data.split_seed`` existed shuffled the train / validation split
    with ``training.seed``: they resume on the split they trained on.
    """
    upgraded = copy.deepcopy(dict(saved))
    data = upgraded.setdefault("data", {})
    if "split_seed" not in data:
        data["split_seed"] = upgraded.get("training", {}).get("seed", DataConfig.split_seed)
    return upgraded


def read_config_file(path: Path) -> PBRConfig:
    """A config from a ``.py`` file (its ``get_config()``, NeuroPBR's way) or a ``.yaml`` file (a run's config.yaml).

    A ``.py`` file's config is normalised through its dictionary, so views made while it was
    edited are rebuilt from the final values.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    if path.suffix.lower() != ".py":
        return load_config_yaml(PBRConfig, path)
    spec = importlib.util.spec_from_file_location(f"foveate_pbr_config_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as error:  # a user's file can fail in any way; say which file
        raise ValueError(f"{path}: could not run this config file ({type(error).__name__}: {error})") from error
    get_config = getattr(module, "get_config", None)
    if not callable(get_config):
        raise ValueError(f"{path}: a .py config must define get_config() returning a PBRConfig")
    config = get_config()
    if not isinstance(config, PBRConfig):
        raise ValueError(f"{path}: get_config() returned {type(config).__name__}, not a PBRConfig")
    from foveate.train import config_to_dict

    return config_from_dict(PBRConfig, config_to_dict(config), where=str(path))


def _preset(description: str, **changes: Any) -> Preset[PBRConfig]:
    return Preset(description, apply_changes(PBRConfig(), changes))


PRESETS: dict[str, Preset[PBRConfig]] = {
    "default": _preset("NeuroPBR's: ResNet-50 encoder, 4-layer ViT fusion, GAN from epoch 5, 100 epochs."),
    "quick_test": _preset(
        "ResNet-18, 2-layer fusion with 16 heads, 20 epochs: checks that everything works.",
        model__encoder_backbone="resnet18",
        model__transformer_depth=2,
        model__transformer_num_heads=16,
        training__epochs=20,
        optimizer__scheduler_warmup_epochs=2,
    ),
    "lightweight": _preset(
        "No GAN: reconstruction losses only (L1, SSIM 0.5, normal 0.7).",
        model__use_gan=False,
        loss__w_gan=0.0,
        loss__w_ssim=0.5,
        loss__w_normal=0.7,
    ),
    "cpu": _preset(
        "ResNet-18 at a quarter width, 128-wide fusion, 128 px, batch 8, 20 epochs, GAN from epoch 5: "
        "about half a minute an epoch for 200 samples on one CPU core (benchmarks).",
        data__image_size=128,
        data__batch_size=8,
        model__encoder_backbone="resnet18",
        model__encoder_base_channels=16,
        model__transformer_dim=128,
        model__transformer_num_heads=4,
        model__transformer_depth=2,
        model__discriminator_ndf=32,
        model__discriminator_n_layers=4,
        training__epochs=20,
        training__log_images_every_n_epochs=5,
        optimizer__scheduler_warmup_epochs=2,
    ),
    "tiny": _preset(
        "A narrow ResNet-18 and fusion, 64 px, 2 epochs, GAN from epoch 1: seconds on a CPU (tests, smoke runs).",
        data__image_size=64,
        data__batch_size=2,
        model__encoder_backbone="resnet18",
        model__encoder_base_channels=8,
        model__transformer_dim=32,
        model__transformer_num_heads=4,
        model__transformer_depth=1,
        model__discriminator_ndf=8,
        model__discriminator_n_layers=3,
        training__epochs=2,
        training__gan_start_epoch=1,
        training__log_every_n_steps=2,
        training__log_images_every_n_epochs=1,
        optimizer__scheduler_warmup_epochs=1,
    ),
}


def preset_config(name: str) -> PBRConfig:
    """A fresh copy of the preset ``name``."""
    if name not in PRESETS:
        raise ValueError(f"--config: no preset {name!r}; choose from {', '.join(PRESETS)} or give a .py / .yaml file")
    return copy.deepcopy(PRESETS[name].config)
