"""How noisy are path-traced targets? PSNR of a scene's renders against the same views at higher spp.

Both directories must hold the same views rendered by ``foveate data render`` with the same
options but ``--spp``; the high-spp one stands in for the noise-free image. The result bounds
what a model can score against the noisy targets and says how much of the per-ray error an
error map sees is Monte Carlo noise rather than model error.

    foveate data render --out scenes/bunny64 --scene bunny --views 48 --val-views 4 --test-views 0 \
        --width 64 --height 64 --spp 32
    foveate data render --out scenes/bunny64_clean ... --spp 1024
    python benchmarks/render_noise.py scenes/bunny64 scenes/bunny64_clean
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch

from foveate.data import load_scene


def noise_psnr(noisy_dir: Path, clean_dir: Path) -> tuple[float, float, int]:
    """(PSNR of the noisy renders against the clean ones, noise MSE, views), over RGB premultiplied by alpha."""
    noisy, clean = load_scene(noisy_dir), load_scene(clean_dir)
    if noisy.images.shape != clean.images.shape:
        raise ValueError(
            f"{noisy_dir} and {clean_dir} hold different views: "
            f"{tuple(noisy.images.shape)} vs {tuple(clean.images.shape)}"
        )
    if not torch.allclose(noisy.cameras.camera_to_world, clean.cameras.camera_to_world, atol=1e-5):
        raise ValueError(f"{noisy_dir} and {clean_dir} were rendered from different cameras")
    mse = (noisy.images.double() - clean.images.double()).div(255.0).square().mean().item()
    return -10.0 * math.log10(mse), mse, noisy.num_views


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("noisy", type=Path, help="scene rendered at the training spp")
    parser.add_argument("clean", type=Path, help="the same views at a much higher spp")
    args = parser.parse_args()
    psnr, mse, views = noise_psnr(args.noisy, args.clean)
    print(f"{args.noisy} against {args.clean}: {psnr:.2f} dB (noise MSE {mse:.2e}) over {views} views")


if __name__ == "__main__":
    main()
