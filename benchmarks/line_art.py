"""Write the line-art and document images the image benchmarks add to the suite's photos.

Images of flat regions and sharp edges, where errors concentrate on the edges and uniform settles at
54-68 dB (each pixel drawn hundreds of times): scikit-image's ``binary_blobs`` (384 x 384), its page
and phantom, its horse silhouette and chessboard, and Matplotlib's logo. Transparent backgrounds are
flattened onto white (the image pipeline refuses alpha channels).

    python benchmarks/line_art.py --out runs/line-art
    python benchmarks/suite.py --only image-mpl_logo --images runs/line-art/mpl_logo.png --size preset
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib
import numpy as np
import skimage
from PIL import Image
from skimage import data


def _flattened(path: Path) -> np.ndarray:
    """An RGBA image composited onto white, as 8-bit RGB."""
    rgba = np.asarray(Image.open(path).convert("RGBA"), dtype=np.float64) / 255.0
    rgb = rgba[..., :3] * rgba[..., 3:] + (1.0 - rgba[..., 3:])
    return np.round(rgb * 255.0).astype(np.uint8)


def images() -> dict[str, np.ndarray]:
    """Each image by the name its suite case takes (``image-NAME``)."""
    shipped = Path(skimage.__file__).parent / "data"
    blobs = data.binary_blobs(384, blob_size_fraction=0.08, volume_fraction=0.4, rng=1)
    return {
        "blobs": blobs.astype(np.uint8) * 255,
        "page": data.page(),
        "phantom": np.asarray(Image.open(shipped / "phantom.png")),
        "horse": _flattened(shipped / "horse.png"),
        "chessboard": data.checkerboard(),
        "mpl_logo": _flattened(Path(matplotlib.get_data_path()) / "sample_data" / "logo2.png"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/line-art"), help="folder for the PNGs")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for name, pixels in images().items():
        Image.fromarray(pixels).save(args.out / f"{name}.png")
        print(args.out / f"{name}.png", "x".join(map(str, pixels.shape)))


if __name__ == "__main__":
    main()
