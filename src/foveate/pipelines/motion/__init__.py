"""Motion-tracking RL on MuJoCo with BeyondMimic's adaptive start sampling (seed 001).

Modules (imported on use; MuJoCo and gymnasium come with ``pip install 'foveate[motion]'``):

- ``robots``: gymnasium's humanoid and walker2d, their motors turned into PD position servos;
- ``reference``: scripted reference motions played through physics (reproducible, no mocap);
- ``env``: the batched tracking environment; ``vec_env``: its gymnasium vector env with
  start frames from :class:`foveate.data.timeline.MotionCommandSampler`;
- ``ppo``: a compact vectorised PPO; ``train``: ``foveate motion train``; ``ablate``:
  ``foveate motion ablate``; ``report``: Table-II-style reports;
- ``simulator``: a synthetic per-bin difficulty simulator for tests and defaults.
"""
