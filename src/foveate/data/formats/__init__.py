"""Scene formats, one module per format; :func:`foveate.data.scenes.load_scene` picks among them.

- :mod:`.blender`: NeRF-synthetic ``transforms_{train,val,test}.json`` (read and write);
- :mod:`.transforms`: a single instant-ngp / nerfstudio ``transforms.json`` (read);
- :mod:`.neus`: NeuS / IDR ``image/``, ``mask/``, ``cameras_sphere.npz`` (read and write);
- :mod:`.rnb`: RNb-NeuS ``normal/``, ``albedo/``, ``mask/``, ``cameras.npz`` (read and write);
- :mod:`.colmap`: ``images/`` and a COLMAP sparse model, text or binary (read and write),
  its files handled by :mod:`.colmap_model`.

Every reader returns a :class:`~foveate.data.scenes.Scene` in foveate's camera conventions
(:mod:`foveate.data.cameras`) and raises :class:`~foveate.data.scenes.SceneFormatError`,
naming the file and the frame, on malformed input.
"""

from .blender import load_blender, save_blender
from .colmap import load_colmap, save_colmap
from .neus import load_neus, save_neus
from .rnb import load_rnb, save_rnb
from .transforms import load_transforms

__all__ = [
    "load_blender",
    "load_colmap",
    "load_neus",
    "load_rnb",
    "load_transforms",
    "save_blender",
    "save_colmap",
    "save_neus",
    "save_rnb",
]
