"""``foveate universe serve``: a universe in the splat viewer, flying from the Sun to its landmarks.

The universe's splats (from its pack when there is one, else its cells) go to the browser viewer
of :mod:`foveate.viewer` in parsecs from the Sun, which float32 holds to a thousandth of a parsec
out to ten thousand; the landmarks go with them. The page starts at the Sun looking at the first
landmark; its list flies the camera to any landmark, and ``?landmark=NAME`` starts there.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .catalog import PARSEC
from .cells import CellFile, read_cell, read_index, read_pack

__all__ = ["universe_viewer_data"]

SH_C0 = 0.28209479177387814


def universe_splats(cells: list[CellFile]) -> dict[str, torch.Tensor]:
    """Every cell's splats in gsplat's stored forms, positions and scales in parsecs."""
    positions = np.concatenate([c.positions for c in cells]) / PARSEC
    splats = np.concatenate([c.splats for c in cells]).astype(np.float64)
    rotations = splats[:, [9, 6, 7, 8]]
    rotations[np.linalg.norm(rotations, axis=1) == 0] = [1.0, 0.0, 0.0, 0.0]
    opacity = splats[:, 13].clip(1e-6, 1 - 1e-6)
    return {
        "means": torch.from_numpy(positions).float(),
        "scales": torch.from_numpy(np.log(np.maximum(splats[:, 3:6] / PARSEC, 1e-12))).float(),
        "quats": torch.from_numpy(rotations).float(),
        "opacities": torch.from_numpy(np.log(opacity / (1 - opacity))).float(),
        "sh0": torch.from_numpy((splats[:, 10:13] - 0.5) / SH_C0).float()[:, None],
    }


def universe_viewer_data(folder: Path) -> Any:
    """The viewer's data for a universe folder: its splats and its landmarks, in parsecs."""
    from foveate.viewer import pack_splats

    folder = Path(folder)
    if (folder / "cells.pack.json").is_file():
        cells = read_pack(folder)
    else:
        index = read_index(folder)
        cells = [read_cell(folder / "cells" / e["file_name"]) for e in index.cells]
    if not cells:
        raise ValueError(f"{folder}: a universe without cells")
    data = pack_splats(universe_splats(cells), folder.name, [])
    landmarks_path = folder / "landmarks.json"
    landmarks = json.loads(landmarks_path.read_text()) if landmarks_path.is_file() else []
    data.meta["landmarks"] = [
        {"name": entry["name"], "position": [entry["pos_meters"][a] / PARSEC for a in "xyz"]} for entry in landmarks
    ]
    data.meta["center"] = [0.0, 0.0, 0.0]
    data.meta["units"] = "parsec"
    data.meta["radius"] = float(
        np.median([math.dist(p["position"], (0, 0, 0)) for p in data.meta["landmarks"]] or [10.0])
    )
    return data
