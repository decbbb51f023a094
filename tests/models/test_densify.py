import copy
import math

import pytest
import torch

from foveate.models.densify import (
    DefaultStrategy,
    MCMCStrategy,
    duplicate,
    relocation,
    remove,
    reset_opacities,
    split,
)
from foveate.models.gaussians import rasterize


def make(count: int = 3, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    params = torch.nn.ParameterDict(
        {
            "means": torch.randn(count, 3, generator=generator),
            "scales": torch.randn(count, 3, generator=generator) - 3,
            "quats": torch.randn(count, 4, generator=generator),
            "opacities": torch.randn(count, generator=generator),
            "sh0": torch.randn(count, 1, 3, generator=generator),
            "shN": torch.randn(count, 3, 3, generator=generator),
        }
    )
    optimizers = {name: torch.optim.Adam([p], lr=1e-2) for name, p in params.items()}
    for name, p in params.items():  # one step so that every parameter has Adam moments
        p.grad = torch.ones_like(p)
        optimizers[name].step()
    return params, optimizers


def moments(optimizers, name):
    optimizer = optimizers[name]
    return optimizer.state[optimizer.param_groups[0]["params"][0]]["exp_avg"]


def test_duplicate_appends_copies_with_zero_moments_and_the_optimizer_follows():
    params, optimizers = make()
    before = {k: v.detach().clone() for k, v in params.items()}
    old_moments = moments(optimizers, "means").clone()
    state = {"grad2d": torch.tensor([1.0, 2.0, 3.0])}
    duplicate(params, optimizers, state, torch.tensor([False, True, False]))
    assert len(params["means"]) == 4
    for name, value in before.items():
        assert torch.equal(params[name][:3], value) and torch.equal(params[name][3], value[1])
    assert optimizers["means"].param_groups[0]["params"][0] is params["means"]
    assert torch.equal(moments(optimizers, "means")[:3], old_moments)
    assert not moments(optimizers, "means")[3].any()
    assert torch.equal(state["grad2d"], torch.tensor([1.0, 2.0, 3.0, 2.0]))


def test_split_replaces_a_splat_by_two_smaller_ones_drawn_from_it():
    params, optimizers = make(2)
    before = {k: v.detach().clone() for k, v in params.items()}
    split(params, optimizers, {}, torch.tensor([True, False]), torch.Generator().manual_seed(0))
    assert len(params["means"]) == 3
    for name, value in before.items():
        assert torch.equal(params[name][0], value[1]), name  # the kept splat comes first
    assert torch.allclose(params["scales"][1:], (before["scales"][0] - math.log(1.6)).expand(2, 3))
    assert torch.equal(params["quats"][1:], before["quats"][0].expand(2, 4))
    spread = (params["means"][1:] - before["means"][0]).norm(dim=-1)
    assert (spread < 5 * before["scales"][0].exp().max()).all() and (spread > 0).all()
    assert not moments(optimizers, "means")[1:].any()


def test_remove_and_reset():
    params, optimizers = make()
    kept_moment = moments(optimizers, "scales")[2].clone()
    remove(params, optimizers, {}, torch.tensor([True, True, False]))
    assert len(params["scales"]) == 1 and torch.equal(moments(optimizers, "scales")[0], kept_moment)
    params["opacities"].data.fill_(3.0)
    reset_opacities(params, optimizers, 0.01)
    assert torch.allclose(torch.sigmoid(params["opacities"]), torch.tensor([0.01]))
    assert not moments(optimizers, "opacities").any()


def test_the_strategy_duplicates_small_splits_large_and_prunes_transparent_splats():
    params, optimizers = make(4)
    with torch.no_grad():
        params["scales"][:] = math.log(0.005)  # small against scene scale 1 (grow_scale3d 0.01)
        params["scales"][1] = math.log(0.5)  # large: split
        params["opacities"][:] = 2.0
        params["opacities"][2] = -8.0  # sigmoid < 0.005: pruned
    strategy = DefaultStrategy(refine_start_iter=0, refine_every=1, reset_every=10_000)
    state = strategy.initialize_state(scene_scale=1.0)
    means2d = torch.zeros(1, 4, 2, requires_grad=True)
    means2d.grad = torch.tensor([[[1e-3, 0.0], [1e-3, 0.0], [0.0, 0.0], [1e-9, 0.0]]])
    info = {"means2d": means2d, "radii": torch.ones(1, 4, dtype=torch.int32), "width": 2, "height": 2}
    done = strategy.step_post_backward(params, optimizers, state, 1, info, torch.Generator().manual_seed(0))
    assert done == {"duplicated": 1, "split": 1, "pruned": 1, "reset": 0}
    assert len(params["means"]) == 4 + 1 + 1 - 1
    assert len(state["grad2d"]) == 5 and not state["grad2d"].any()


def train(params, optimizers, strategy, state, steps, start, generator):
    viewmats = torch.eye(4)[None]
    Ks = torch.tensor([[[16.0, 0.0, 8.0], [0.0, 16.0, 8.0], [0.0, 0.0, 1.0]]])
    target = torch.linspace(0, 1, 16 * 16 * 3).reshape(1, 16, 16, 3)
    for step in range(start, start + steps):
        colors = torch.cat((params["sh0"], params["shN"]), dim=1)
        rgb, _, info = rasterize(
            params["means"],
            params["quats"],
            params["scales"].exp(),
            params["opacities"].sigmoid(),
            colors,
            viewmats,
            Ks,
            16,
            16,
            sh_degree=1,
        )
        (rgb - target).abs().mean().backward()
        strategy.step_post_backward(params, optimizers, state, step, info, generator)
        for optimizer in optimizers.values():
            optimizer.step()
            optimizer.zero_grad()


def test_training_across_refinements_resumes_exactly():
    def fresh():
        params, _ = make(40, seed=1)
        with torch.no_grad():
            params["means"][:, 2] += 4
            params["scales"][:] = math.log(0.05)
        optimizers = {name: torch.optim.Adam([p], lr=1e-2) for name, p in params.items()}
        return params, optimizers

    strategy = DefaultStrategy(refine_start_iter=2, refine_every=3, reset_every=7, grow_grad2d=1e-5)
    params, optimizers = fresh()
    state, generator = strategy.initialize_state(), torch.Generator().manual_seed(0)
    train(params, optimizers, strategy, state, 8, 0, generator)
    saved = (
        {k: v.detach().clone() for k, v in params.items()},
        {k: copy.deepcopy(o.state_dict()) for k, o in optimizers.items()},
        copy.deepcopy(state),
        generator.get_state(),
    )
    train(params, optimizers, strategy, state, 8, 8, generator)
    assert len(params["means"]) != 40, "the run must change the number of splats"

    tensors, optimizer_states, resumed_state, generator_state = saved
    resumed = torch.nn.ParameterDict({k: torch.nn.Parameter(v.clone()) for k, v in tensors.items()})
    resumed_optimizers = {name: torch.optim.Adam([p], lr=1e-2) for name, p in resumed.items()}
    for name, optimizer in resumed_optimizers.items():
        optimizer.load_state_dict(optimizer_states[name])
    resumed_generator = torch.Generator().set_state(generator_state)
    train(resumed, resumed_optimizers, strategy, resumed_state, 8, 8, resumed_generator)
    for name in params:
        assert torch.equal(resumed[name], params[name]), name


def test_relocation_keeps_one_copy_as_is_and_n_copies_composite_to_the_original_opacity():
    opacity, scale = torch.tensor([0.3, 0.9]), torch.tensor([[0.1, 0.2, 0.3], [1.0, 1.0, 1.0]])
    same_o, same_s = relocation(opacity, scale, torch.tensor([1, 1]))
    assert torch.allclose(same_o, opacity) and torch.allclose(same_s, scale)
    for copies in (2, 3, 7):
        new_o, new_s = relocation(opacity, scale, torch.tensor([copies, copies]))
        assert torch.allclose(1 - (1 - new_o) ** copies, opacity, atol=1e-6)
        assert (new_s < scale).all() and (new_s > 0).all()
    # Two copies, by hand: o' = 1 - sqrt(1 - o); denominator o' + (o' - o'^2 / sqrt 2).
    o2 = 1 - math.sqrt(1 - 0.3)
    expected = 0.3 / (o2 + o2 - o2**2 / math.sqrt(2)) * 0.1
    assert relocation(opacity[:1], scale[:1], torch.tensor([2]))[1][0, 0].item() == pytest.approx(expected, rel=1e-6)


def test_mcmc_moves_dead_splats_onto_live_ones_and_grows_by_five_percent_up_to_the_cap():
    params, optimizers = make(40)
    with torch.no_grad():
        params["opacities"][:] = 2.0
        params["opacities"][:6] = -10.0  # dead
    strategy = MCMCStrategy(refine_start_iter=0, refine_every=1, cap_max=41)
    done = strategy.step_post_backward(params, optimizers, {}, 1, {}, lr=0.0, generator=torch.Generator())
    assert done == {"relocated": 6, "added": 1}
    assert len(params["means"]) == 41
    assert (torch.sigmoid(params["opacities"]) > strategy.min_opacity).all()
    # Every former dead splat now sits exactly on a live one.
    for index in range(6):
        assert (params["means"][6:40] == params["means"][index]).all(-1).any()
    assert not moments(optimizers, "means")[:6].any() and not moments(optimizers, "means")[40].any()


def test_mcmc_noise_moves_transparent_splats_and_leaves_opaque_ones():
    params, optimizers = make(4)
    with torch.no_grad():
        params["opacities"][:] = torch.tensor([5.0, 5.0, -8.0, -8.0])
    before = params["means"].detach().clone()
    strategy = MCMCStrategy(refine_start_iter=10)
    strategy.step_post_backward(params, optimizers, {}, 1, {}, lr=1e-4, generator=torch.Generator().manual_seed(0))
    moved = (params["means"] - before).norm(dim=-1)
    assert (moved[:2] < 1e-12).all() and (moved[2:] > 0).all()
