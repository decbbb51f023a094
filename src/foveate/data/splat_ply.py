"""Gaussian splats in the standard 3DGS ``point_cloud.ply`` layout, read and written.

One binary little-endian ``vertex`` element with float32 properties, in this order (as 3DGS's
``save_ply`` writes them and splat viewers read them):

- ``x y z``: the centre; ``nx ny nz``: zeros (unused, kept for compatibility);
- ``f_dc_0..2``: the degree-0 SH coefficient per colour channel;
- ``f_rest_0..M-1``: the higher SH coefficients, channel-major (all of red's, then green's, then
  blue's), ``M = 3 * ((degree + 1)^2 - 1)``, so 0, 9, 24 or 45 of them;
- ``opacity``: the logit of the opacity; ``scale_0..2``: log standard deviations;
- ``rot_0..3``: the rotation quaternion, w first, not necessarily normalised.

Tensors use gsplat's parameter names and stored forms: ``means (N, 3)``, ``scales (N, 3)`` (log),
``quats (N, 4)``, ``opacities (N,)`` (logit), ``sh0 (N, 1, 3)``, ``shN (N, K - 1, 3)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

__all__ = ["SPLAT_KEYS", "SplatFileError", "load_splat_ply", "save_splat_ply"]

SPLAT_KEYS = ("means", "scales", "quats", "opacities", "sh0", "shN")
INSTALL_HINT = "pip install 'foveate[splat]'"
REST_COUNTS = {0: 0, 9: 1, 24: 2, 45: 3}
"""Number of ``f_rest_*`` properties -> SH degree."""


class SplatFileError(ValueError):
    """A splat PLY that cannot be read, with the file and what is wrong in the message."""


def _plyfile():
    try:
        import plyfile
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(f"reading and writing splat PLY files needs plyfile: {INSTALL_HINT}") from error
    return plyfile


def _property_names(rest: int) -> list[str]:
    return [
        *("x", "y", "z", "nx", "ny", "nz"),
        *(f"f_dc_{i}" for i in range(3)),
        *(f"f_rest_{i}" for i in range(rest)),
        "opacity",
        *(f"scale_{i}" for i in range(3)),
        *(f"rot_{i}" for i in range(4)),
    ]


def save_splat_ply(path: str | Path, splats: Mapping[str, torch.Tensor]) -> Path:
    """Write ``splats`` (gsplat's names and stored forms) to ``path`` as a 3DGS PLY; returns the path."""
    missing = [key for key in SPLAT_KEYS if key not in splats]
    if missing:
        raise KeyError(f"splats lack {', '.join(missing)} (need {', '.join(SPLAT_KEYS)})")
    count = len(splats["means"])
    arrays = {key: splats[key].detach().to("cpu", torch.float32).numpy() for key in SPLAT_KEYS}
    rest = arrays["shN"].reshape(count, -1, 3)
    if rest.shape[1] not in (0, 3, 8, 15):
        raise ValueError(f"shN must hold 0, 3, 8 or 15 coefficients per channel, got {rest.shape[1]}")
    columns = [
        arrays["means"].reshape(count, 3),
        np.zeros((count, 3), dtype=np.float32),
        arrays["sh0"].reshape(count, 3),
        rest.transpose(0, 2, 1).reshape(count, -1),
        arrays["opacities"].reshape(count, 1),
        arrays["scales"].reshape(count, 3),
        arrays["quats"].reshape(count, 4),
    ]
    table = np.concatenate(columns, axis=1)
    names = _property_names(3 * rest.shape[1])
    records = np.empty(count, dtype=[(name, "<f4") for name in names])
    for index, name in enumerate(names):
        records[name] = table[:, index]
    plyfile = _plyfile()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    plyfile.PlyData([plyfile.PlyElement.describe(records, "vertex")], text=False, byte_order="<").write(str(path))
    return path


def load_splat_ply(path: str | Path, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    """Read a 3DGS PLY into gsplat's names and stored forms; :class:`SplatFileError` names what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise SplatFileError(f"{path}: not found")
    plyfile = _plyfile()
    try:
        data = plyfile.PlyData.read(str(path))
    except (plyfile.PlyParseError, ValueError, EOFError, UnicodeDecodeError) as error:
        raise SplatFileError(f"{path}: not a readable PLY file ({error})") from error
    if "vertex" not in data:
        raise SplatFileError(f"{path}: no 'vertex' element (a 3DGS splat file has one)")
    vertex = data["vertex"]
    present = {prop.name for prop in vertex.properties}
    rest = sum(1 for name in present if name.startswith("f_rest_"))
    if rest not in REST_COUNTS:
        raise SplatFileError(f"{path}: {rest} f_rest_* properties; 3DGS files have 0, 9, 24 or 45 (SH degree 0-3)")
    needed = [name for name in _property_names(rest) if name not in ("nx", "ny", "nz")]
    missing = [name for name in needed if name not in present]
    if missing:
        raise SplatFileError(f"{path}: missing propert{'y' if len(missing) == 1 else 'ies'} {', '.join(missing)}")
    count = vertex.count

    def columns(*names: str) -> torch.Tensor:
        stacked = np.zeros((count, len(names)), dtype=np.float32)
        for index, name in enumerate(names):
            stacked[:, index] = vertex[name]
        return torch.from_numpy(stacked).to(device)

    bases = rest // 3
    shN = columns(*(f"f_rest_{i}" for i in range(rest))).reshape(count, 3, bases).transpose(1, 2).contiguous()
    splats = {
        "means": columns("x", "y", "z"),
        "scales": columns("scale_0", "scale_1", "scale_2"),
        "quats": columns("rot_0", "rot_1", "rot_2", "rot_3"),
        "opacities": columns("opacity")[:, 0],
        "sh0": columns("f_dc_0", "f_dc_1", "f_dc_2")[:, None, :],
        "shN": shN,
    }
    for key, value in splats.items():
        bad = (~torch.isfinite(value)).reshape(count, -1).any(1).nonzero()
        if len(bad):
            raise SplatFileError(f"{path}: non-finite {key} at splat {int(bad[0, 0])} ({len(bad)} splats in all)")
    return splats
