"""A scene whose views differ in difficulty: distant views of an object and a few close-ups of it.

Two renders of the same object, one from the preset's distance and one from nearer, are merged
into one Blender-format scene (their train and val splits concatenated, the distant ones first),
where the close-ups show detail the distant views do not. Error-guided views are expected to pay
on such a scene, if anywhere among splats:

    foveate data render --out scenes/mixed/far --scene bunny --views 24 --val-views 6 --test-views 0 \\
        --width 64 --height 64 --spp 256 --seed 0
    foveate data render --out scenes/mixed/close --scene bunny --views 8 --val-views 2 --test-views 0 \\
        --width 64 --height 64 --spp 256 --radius 1.6 --seed 100
    python benchmarks/closeups_scene.py scenes/mixed/far scenes/mixed/close scenes/mixed/bunny-closeups
    foveate compare splat --scene scenes/mixed/bunny-closeups --preset cpu --steps 500 \\
        --train.validate-every 25 --val-views 8 --strategies uniform error_weighted adaptive --seeds 6

(``--val-views 8`` scores every held-out view, the two close-ups included.)
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from foveate.data import Cameras
from foveate.data.formats.blender import save_blender
from foveate.data.scenes import Scene, load_scene


def merged(far: Scene, close: Scene) -> Scene:
    """One scene of ``far``'s views then ``close``'s, each split holding both parts' views of it."""
    if (far.width, far.height) != (close.width, close.height):
        raise ValueError(f"the renders differ in size: {far.width} x {far.height} and {close.width} x {close.height}")
    parts = (far, close)
    cameras = Cameras(
        torch.cat([part.cameras.camera_to_world for part in parts]),
        torch.cat([part.cameras.intrinsics for part in parts]),
        far.width,
        far.height,
    )
    masks = None if far.masks is None or close.masks is None else torch.cat([far.masks, close.masks])
    offset = far.num_views
    splits = {
        split: [*far.splits.get(split, []), *(offset + i for i in close.splits.get(split, []))]
        for split in sorted(set(far.splits) | set(close.splits))
    }
    names = [f"far_{name}" for name in far.names] + [f"close_{name}" for name in close.names]
    images = torch.cat([far.images, close.images])
    return Scene(images, cameras, names, masks=masks, splits=splits, normalization=far.normalization)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("far", type=Path, help="the render from the preset's distance")
    parser.add_argument("close", type=Path, help="the render of the same object from nearer")
    parser.add_argument("out", type=Path, help="where the merged scene is written (Blender format)")
    args = parser.parse_args()
    scene = merged(load_scene(args.far), load_scene(args.close))
    save_blender(scene, args.out, geometry=False)
    counts = ", ".join(f"{len(ids)} {split}" for split, ids in scene.splits.items())
    print(f"{args.out}: {scene.num_views} views ({counts}) of {scene.width} x {scene.height}")


if __name__ == "__main__":
    main()
