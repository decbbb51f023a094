"""Freed host memory kept in the process: fewer page faults per step, the user's own settings respected."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from foveate.allocator import keep_freed_memory

_FAULTS = """
import ctypes, resource, sys
ctypes.CDLL(None).prctl(41, 1, 0, 0, 0)  # PR_SET_THP_DISABLE: faults counted in base pages, whatever the kernel's THP
import torch
from foveate.allocator import keep_freed_memory
from foveate.sampling import BlockCategorical, sorted_uniforms
applied = keep_freed_memory() if sys.argv[1] == "keep" else False
g = torch.Generator().manual_seed(0)
dist = BlockCategorical(torch.rand(2**20, generator=g))
u = sorted_uniforms(65536, generator=g, device=torch.device("cpu"))
weights = torch.rand(65536, generator=g)
def step():  # a sampler's step: a draw and a refresh, megabyte temporaries of several sizes freed together
    dist.refresh(dist.sample_from_uniforms(u), weights)
for _ in range(3):  # the heap reaches its working size
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(30):
    step()
print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(mode: str, env: dict | None = None) -> tuple[bool, int]:
    out = subprocess.run([sys.executable, "-c", _FAULTS, mode], capture_output=True, text=True, check=True, env=env)
    applied, faults = out.stdout.split()
    return applied == "True", int(faults)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc settings")
def test_freed_temporaries_are_reused_not_faulted_in_again():
    applied, kept = _faults("keep")
    if not applied:
        pytest.skip("not glibc, or glibc's malloc is tuned by the environment")
    # glibc at its starting settings maps each block over 128 KiB afresh and unmaps it when freed. By
    # default it raises that threshold as it goes, how far depends on the order of frees (here 64 to
    # 139,200 faults from run to run), so the reference pins it.
    _, mapped = _faults("default", env={**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"})
    assert kept * 10 < mapped, (kept, mapped)


def test_the_users_own_malloc_settings_win(monkeypatch):
    monkeypatch.setenv("MALLOC_ARENA_MAX", "2")
    assert keep_freed_memory() is False
    monkeypatch.delenv("MALLOC_ARENA_MAX")
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.trim_threshold=1")
    assert keep_freed_memory() is False
