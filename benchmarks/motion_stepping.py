"""Side-by-side cost of stepping the tracking testbed: a loop over MjData vs ``mujoco.rollout``.

Prints ratios measured in one run (absolute CPU timings are not comparable across machines).
Run: ``python benchmarks/motion_stepping.py --robot humanoid --envs 64 --steps 100``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from foveate.pipelines.motion.env import MotionTrackingEnv
from foveate.pipelines.motion.ppo import ActorCritic, PPOConfig
from foveate.pipelines.motion.reference import generate_reference


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--robot", default="humanoid", choices=["humanoid", "walker2d"])
    parser.add_argument("--envs", type=int, default=64)
    parser.add_argument("--steps", type=int, default=100)
    args = parser.parse_args()
    torch.set_num_threads(1)
    import mujoco
    from mujoco import rollout

    reference = generate_reference(args.robot)
    env = MotionTrackingEnv(reference, args.envs, episode_frames=10**9)
    starts = np.random.default_rng(0).integers(0, env.num_frames // 2, args.envs)
    policy = ActorCritic(env.observation_size, env.action_size, PPOConfig())
    zeros = np.zeros((args.envs, env.action_size))

    env.reset_envs(np.arange(args.envs), starts)
    begin = time.perf_counter()
    for _ in range(args.steps):
        env.step(zeros)
    loop = time.perf_counter() - begin

    env.reset_envs(np.arange(args.envs), starts)
    begin = time.perf_counter()
    for _ in range(args.steps):
        policy.act(torch.from_numpy(env.observations()))
    policy_time = time.perf_counter() - begin

    model, spec = env.model, env.spec
    env.reset_envs(np.arange(args.envs), starts)
    targets = env.reference.qpos[starts][:, env.joint_qpos]
    begin = time.perf_counter()
    for _ in range(args.steps):
        for i, data in enumerate(env.datas):
            data.ctrl[:] = targets[i]
            mujoco.mj_step(model, data, nstep=spec.frame_skip)
    physics_loop = time.perf_counter() - begin

    env.reset_envs(np.arange(args.envs), starts)
    kind = mujoco.mjtState.mjSTATE_FULLPHYSICS
    state = np.zeros((args.envs, mujoco.mj_stateSize(model, kind)))
    for i, data in enumerate(env.datas):
        mujoco.mj_getState(model, data, state[i], kind)
    controls = np.repeat(env.reference.qpos[starts][:, None, env.joint_qpos], spec.frame_skip, axis=1)
    scratch = [mujoco.MjData(model)]
    begin = time.perf_counter()
    for _ in range(args.steps):
        states, _ = rollout.rollout(model, scratch, state, controls)
        state = states[:, -1]
    batched = time.perf_counter() - begin

    env_steps = args.envs * args.steps
    print(f"{args.robot}, {args.envs} envs x {args.steps} control steps ({spec.frame_skip} physics steps each)")
    print(f"  env.step (loop of MjData + kinematics + rewards): {env_steps / loop:,.0f} env steps/s")
    print(f"  loop of mj_step over MjData (physics only):       {env_steps / physics_loop:,.0f} env steps/s")
    print(f"  mujoco.rollout, one thread (physics only):        {env_steps / batched:,.0f} env steps/s")
    print(
        f"  time ratios: rollout / physics loop {batched / physics_loop:.2f}, env.step / physics loop "
        f"{loop / physics_loop:.2f}"
    )
    print(f"  policy forward + observations / env step time: {policy_time / loop:.2f}")


if __name__ == "__main__":
    main()
