"""The task contract carries every system: each test trains a toy task the way one pipeline will."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from foveate.train import Hook, Metric, StepOutput, Task, Trainer, Validation, make_adam, make_scheduler

from .toy import ToyConfig


def run(task_type, tmp_path, name="run", steps=None, stop_at=None, resume=None, **config_changes):
    """Train a fresh ``task_type()`` (seeded) under the toy config; returns the trainer."""
    torch.manual_seed(0)
    config = ToyConfig()
    config.sampling.strategy = "error_weighted"
    if steps is not None:
        config.train.steps = steps
    for key, value in config_changes.items():
        section, field = key.split("__")
        setattr(getattr(config, section), field, value)
    trainer = Trainer(task_type(), config, device=torch.device("cpu"), run_dir=tmp_path / name, resume_from=resume)
    trainer.result = trainer.fit(stop_at=stop_at)
    return trainer


def straight_and_resumed(task_type, tmp_path, stop_at=13, **changes):
    straight = run(task_type, tmp_path, "straight", **changes)
    run(task_type, tmp_path, "split", stop_at=stop_at, **changes)
    latest = tmp_path / "split" / "checkpoints" / "latest.pt"
    return straight, run(task_type, tmp_path, "split", resume=latest, **changes)


def assert_same_state(a: dict, b: dict, where: str = "state") -> None:
    assert a.keys() == b.keys(), where
    for key in a:
        x, y = a[key], b[key]
        if isinstance(x, dict):
            assert_same_state(x, y, f"{where}.{key}")
        elif isinstance(x, torch.Tensor):
            assert x.shape == y.shape and x.equal(y), f"{where}.{key} differs"
        else:
            assert x == y, f"{where}.{key}: {x!r} != {y!r}"


class Gan(Task):
    """A generator per unit against a discriminator: two optimizers, alternating steps, an adversarial term."""

    name = "gan"

    def __init__(self) -> None:
        self.unit_shape = 64
        self.codes = torch.randn(64, 4)
        self.targets = torch.randn(64, 3)
        self.model = nn.ModuleDict({"generator": nn.Linear(4, 3), "discriminator": nn.Linear(3, 1)})

    def configure_optimizers(self, config, total_steps):
        self.optimizers = {name: make_adam(self.model[name].parameters(), config) for name in self.model}
        self.schedulers = {name: make_scheduler(opt, config, total_steps) for name, opt in self.optimizers.items()}

    def training_step(self, batch, step, optimization):
        generator, discriminator = self.model["generator"], self.model["discriminator"]
        fake = generator(self.codes[batch.ids])
        real = self.targets[batch.ids]
        d_loss = F.softplus(-discriminator(real)).mean() + F.softplus(discriminator(fake.detach())).mean()
        optimization.minimize(d_loss, "discriminator")
        per_unit = (fake - real).abs().mean(dim=1)
        adversarial = F.softplus(-discriminator(fake)).mean()
        loss = (batch.weights * per_unit).mean() + 0.1 * adversarial
        optimization.minimize(loss, "generator")
        return StepOutput(loss.detach(), per_unit.detach(), {"d_loss": d_loss.detach(), "adversarial": adversarial})

    def validate(self, full):
        error = (self.model["generator"](self.codes) - self.targets).abs().mean()
        return Validation({"l1": float(error)})

    metric = Metric("l1", higher_is_better=False)


def test_a_gan_steps_two_optimizers_and_resumes_exactly(tmp_path):
    straight, resumed = straight_and_resumed(Gan, tmp_path)
    assert straight.result.status == "completed"
    for name in ("generator", "discriminator"):
        assert straight.task.optimizers[name].state_dict()["state"][0]["step"] == 40
    assert_same_state(straight.task.state_dict(), resumed.task.state_dict())
    lines = [json.loads(line) for line in (tmp_path / "straight" / "stats.jsonl").read_text().splitlines()]
    train = [line for line in lines if line["kind"] == "train"]
    assert {"loss", "d_loss", "adversarial", "lr_generator", "lr_discriminator"} <= set(train[-1])


class Growing(Task):
    """Points that split where their gradient is largest and are pruned when faint: a densifying model."""

    name = "growing"

    def __init__(self) -> None:
        self.unit_shape = 32
        self.targets = torch.linspace(-1, 1, 32)[:, None].repeat(1, 2)
        self.model = nn.ParameterDict(
            {"points": nn.Parameter(torch.randn(4, 2)), "weights": nn.Parameter(torch.ones(4))}
        )

    def per_unit_loss(self, ids):
        points, weights = self.model["points"], self.model["weights"]
        distance = torch.cdist(self.targets[ids], points)
        return (torch.softmax(-distance, dim=1) * weights).sum(dim=1).sub(1.0).square() + distance.min(dim=1).values

    def hooks(self):
        return [Hook(5, self.densify, start=5), Hook(7, self.prune, start=14)]

    def densify(self, step):
        """Clone the two points that moved most, with zeroed optimizer moments (as gsplat does)."""
        moments = self.optimizers["model"].state[self.model["points"]]["exp_avg"].norm(dim=1)
        chosen = moments.topk(min(2, moments.numel())).indices
        self._replace(lambda p: torch.cat([p, p[chosen]]), lambda s: torch.cat([s, torch.zeros_like(s[chosen])]))

    def prune(self, step):
        keep = self.model["weights"].detach().abs().argsort(descending=True)[: max(2, len(self.model["weights"]) - 1)]
        keep = keep.sort().values
        self._replace(lambda p: p[keep], lambda s: s[keep])

    def _replace(self, change, change_state):
        optimizer = self.optimizers["model"]
        for name in ("points", "weights"):
            old = self.model[name]
            state = optimizer.state.pop(old)
            new = nn.Parameter(change(old.detach()))
            optimizer.state[new] = {
                k: change_state(v) if k in ("exp_avg", "exp_avg_sq") else v for k, v in state.items()
            }
            optimizer.param_groups[0]["params"] = [new if p is old else p for p in optimizer.param_groups[0]["params"]]
            self.model[name] = new

    def load_state_dict(self, state):
        for name, saved in state["model"].items():
            self._replace_shape(name, saved.shape)
        super().load_state_dict(state)

    def _replace_shape(self, name, shape):
        old = self.model[name]
        new = nn.Parameter(torch.empty(shape))
        group = self.optimizers["model"].param_groups[0]
        group["params"] = [new if p is old else p for p in group["params"]]
        self.model[name] = new

    def validate(self, full):
        return Validation({"psnr": float(-10 * torch.log10(self.per_unit_loss(torch.arange(32)).mean()))})


def test_parameters_that_grow_and_shrink_resume_exactly(tmp_path):
    straight, resumed = straight_and_resumed(Growing, tmp_path, stop_at=17)
    sizes = len(straight.task.model["points"])
    assert sizes == 4 + 2 * 7 - 4, "seven densifications of two and four prunings of one"
    assert_same_state(straight.task.state_dict(), resumed.task.state_dict())
    assert_same_state(straight.sampler.state_dict(), resumed.sampler.state_dict())


class Regularised(Task):
    """A per-unit loss, a term of no unit, a lower-is-better metric under a plateau schedule, images, maps, export."""

    name = "regularised"
    metric = Metric("error", higher_is_better=False, label="mean error")

    def __init__(self) -> None:
        self.unit_shape = (1, 4, 8)
        self.model = nn.Embedding(32, 1)
        self.seen: list[int] = []

    def per_unit_loss(self, ids):
        return (self.model(ids)[:, 0] - 0.5).square()

    def regularizers(self, step):
        return {"sparsity": 1e-3 * self.model.weight.abs().mean()}

    def hooks(self):
        return [Hook(3, self.note, start=2)]

    def note(self, step):
        self.seen.append(step)

    def validate(self, full):
        error = (self.model.weight[:, 0] - 0.5).abs()
        if not full:
            return Validation({"error": float(error.mean())})
        picture = error.view(4, 8, 1).clamp(0, 1)
        return Validation(
            {"error": float(error.mean()), "worst": float(error.max())}, {"error": picture}, {"error": error.view(4, 8)}
        )

    def export(self, run_dir):
        path = run_dir / "values.txt"
        path.write_text(" ".join(f"{v:.3f}" for v in self.model.weight[:, 0].tolist()))
        return [path]

    def state_dict(self):
        return {**super().state_dict(), "seen": list(self.seen)}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.seen = list(state["seen"])


def test_regularisers_metric_direction_hooks_validation_and_export(tmp_path):
    straight, resumed = straight_and_resumed(Regularised, tmp_path, stop_at=10, optim__schedule="plateau")
    result = straight.result
    assert straight.task.seen == resumed.task.seen == list(range(2, 40, 3))
    assert result.best["error"] == min(record["error"] for record in result.history if record["step"] > 0)
    assert result.history[-1]["error"] < result.history[0]["error"]
    assert [r["step"] for r in result.full_history] == [40] and "worst" in result.full_history[-1]
    assert result.final.images["error"].shape == (4, 8, 1) and result.final.maps["error"].shape == (4, 8)
    assert (tmp_path / "straight" / "values.txt").is_file()
    train = [json.loads(line) for line in (tmp_path / "straight" / "stats.jsonl").read_text().splitlines()]
    assert "sparsity" in next(line for line in train if line["kind"] == "train")
    plateau = straight.task.schedulers["model"]
    assert plateau.mode == "min"


def test_a_validation_without_the_metric_is_a_clear_error(tmp_path):
    class Forgetful(Regularised):
        def validate(self, full):
            return Validation({"something_else": 1.0})

    with pytest.raises(KeyError, match="no 'error'"):
        run(Forgetful, tmp_path)


def test_stop_at_target_ends_the_run_at_the_first_validation_that_reaches_it(tmp_path):
    class Reaching(Regularised):
        metric = Metric("error", higher_is_better=False, target=0.2)

    trainer = run(Reaching, tmp_path, train__stop_at_target=True, train__steps=400, optim__lr=0.05)
    result = trainer.result
    assert result.status == "target" and result.step < 400
    assert result.history[-1]["error"] <= 0.2 < result.history[-2]["error"]
