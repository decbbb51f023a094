"""What a run writes while it trains: stats.jsonl, TensorBoard, error_sampling_stats.json."""

from __future__ import annotations

import json
import math
import secrets
from pathlib import Path
from typing import Any

import torch

from foveate.files import atomic_write_json, atomic_write_text

__all__ = ["RunLog"]


class RunLog:
    """The run directory's logs; every method is a no-op without a run directory.

    On resume, lines and snapshots later than the resumed step are dropped, so the files
    describe one consistent history.

    Args:
        run_dir: the run directory, or None to log nothing.
        resume_step: the step a resumed run continues from (None for a fresh run).
        tensorboard: write TensorBoard event files under ``tb/``.
        wandb_project: also log scalars and images to Weights & Biases in this project (files under
            ``wandb/``; a resume continues the same W&B run, whose id is kept in ``wandb_id.txt``).
        wandb_name: the W&B run's name (default: the run directory's).
    """

    def __init__(
        self,
        run_dir: Path | None,
        resume_step: int | None = None,
        tensorboard: bool = True,
        wandb_project: str | None = None,
        wandb_name: str | None = None,
    ) -> None:
        self.run_dir = run_dir
        self.sampler_history: list[dict[str, Any]] = []
        self.sampler_config: dict[str, Any] = {}
        self.writer = None
        self.wandb = None
        self._stats = None
        if run_dir is None:
            return
        run_dir.mkdir(parents=True, exist_ok=True)
        stats_path = run_dir / "stats.jsonl"
        if resume_step is not None:
            _truncate_jsonl(stats_path, resume_step)
            self.sampler_history = [
                entry
                for entry in _read_json(run_dir / "error_sampling_stats.json").get("history", [])
                if entry.get("step", 0) <= resume_step
            ]
        elif stats_path.exists():
            stats_path.unlink()
        self._stats = stats_path.open("a")
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as error:
                raise ImportError(
                    "TensorBoard logging needs tensorboard: pip install 'foveate[train]' (or --no-tensorboard)"
                ) from error
            self.writer = SummaryWriter(str(run_dir / "tb"), purge_step=resume_step)
        if wandb_project:
            self.wandb = _start_wandb(run_dir, wandb_project, wandb_name or run_dir.name, resume_step is not None)

    def scalars(self, step: int, kind: str, values: dict[str, float]) -> None:
        """One stats.jsonl line ``{"kind", "step", **values}`` and TensorBoard scalars ``kind/name``."""
        if self._stats is not None:
            record = {"kind": kind, "step": step, **{k: _finite_or_none(v) for k, v in values.items()}}
            self._stats.write(json.dumps(record) + "\n")
            self._stats.flush()
        if self.writer is not None:
            for name, value in values.items():
                if isinstance(value, (int, float)) and math.isfinite(value):
                    self.writer.add_scalar(f"{kind}/{name}", value, step)
        if self.wandb is not None:
            finite = {f"{kind}/{k}": v for k, v in values.items() if isinstance(v, (int, float)) and math.isfinite(v)}
            self.wandb.log(finite, step=step)

    def images(self, step: int, images: dict[str, torch.Tensor]) -> None:
        """TensorBoard (and W&B) images from (H, W, C) float tensors in [0, 1]."""
        pictures = {name: image.detach().float().clamp(0, 1).cpu() for name, image in images.items()}
        if self.writer is not None:
            for name, image in pictures.items():
                self.writer.add_image(name, image, step, dataformats="HWC")
        if self.wandb is not None and pictures:
            import wandb

            self.wandb.log({name: wandb.Image(image.numpy()) for name, image in pictures.items()}, step=step)

    def sampler_stats(self, step: int, stats: dict[str, Any], config: dict[str, Any]) -> None:
        """Keep a snapshot of ``Sampler.stats()``; numeric fields also go to TensorBoard."""
        self.sampler_config = config
        self.sampler_history.append({**stats, "step": step})
        if self.writer is None:
            return
        for name, value in stats.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                self.writer.add_scalar(f"error_sampling/{name}", value, step)
        for component, share in stats.get("mixture", {}).items():
            self.writer.add_scalar(f"error_sampling/share_{component}", share, step)

    def write_sampler_stats(self) -> None:
        """Rewrite error_sampling_stats.json (atomically) with every snapshot so far."""
        if self.run_dir is None:
            return
        atomic_write_json(
            self.run_dir / "error_sampling_stats.json", {"config": self.sampler_config, "history": self.sampler_history}
        )

    def flush(self) -> None:
        if self.writer is not None:
            self.writer.flush()

    def close(self) -> None:
        self.write_sampler_stats()
        if self._stats is not None:
            self._stats.close()
            self._stats = None
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        if self.wandb is not None:
            self.wandb.finish()
            self.wandb = None


def _start_wandb(run_dir: Path, project: str, name: str, resumed: bool) -> Any:
    """A W&B run logging into ``run_dir/wandb``; the same one again when the run resumes."""
    try:
        import wandb
    except ImportError as error:
        raise ImportError("W&B logging needs wandb: pip install wandb (or leave the W&B project unset)") from error
    id_file = run_dir / "wandb_id.txt"
    run_id = id_file.read_text().strip() if resumed and id_file.is_file() else secrets.token_hex(4)
    atomic_write_text(id_file, run_id)
    return wandb.init(project=project, name=name, id=run_id, dir=str(run_dir), resume="allow")


def _finite_or_none(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _truncate_jsonl(path: Path, last_step: int) -> None:
    if not path.exists():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line).get("step", 0) <= last_step:
                kept.append(line)
        except ValueError:
            continue
    atomic_write_text(path, "".join(f"{line}\n" for line in kept))
