"""Freed host memory kept in the process: fewer page faults per step, the user's own settings respected."""

from __future__ import annotations

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
dist = BlockCategorical(torch.rand(2**18, generator=g))
ids = dist.sample_from_uniforms(sorted_uniforms(8192, generator=g, device=torch.device("cpu")))
weights = torch.rand(len(ids), generator=g)
dist.refresh(ids, weights)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(30):  # a sampler's step: megabyte temporaries of several sizes, freed together
    dist.refresh(ids, weights)
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
    _, default = _faults("default")
    # By default glibc hands the freed heap top back to the kernel after each step, to fault it in again.
    assert kept * 10 < default, (kept, default)


def test_the_users_own_malloc_settings_win(monkeypatch):
    monkeypatch.setenv("MALLOC_ARENA_MAX", "2")
    assert keep_freed_memory() is False
    monkeypatch.delenv("MALLOC_ARENA_MAX")
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.trim_threshold=1")
    assert keep_freed_memory() is False
