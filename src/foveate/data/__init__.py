"""foveate.data: sources of training units (pixels of photos, rays of cameras, timeline bins).

Rendering with Mitsuba lives in :mod:`foveate.data.render` and is imported only when used.
"""

from .cameras import CAMERA_LAYOUTS, Cameras, DownsampleSchedule, camera_positions, look_at
from .formats import load_colmap, load_rnb, load_transforms, save_colmap, save_rnb
from .handler import ErrorAwareDataHandler, RayBatch, create_error_aware_data_handler
from .images import BUNDLED_PHOTOS, ImageError, Photo, load_photo, pixel_points
from .scenes import Scene, SceneFormatError, load_scene, save_blender, save_neus
from .timeline import MotionCommandSampler, Timeline, TimelineSampler

__all__ = [
    "BUNDLED_PHOTOS",
    "CAMERA_LAYOUTS",
    "Cameras",
    "DownsampleSchedule",
    "ErrorAwareDataHandler",
    "ImageError",
    "MotionCommandSampler",
    "Photo",
    "RayBatch",
    "Scene",
    "SceneFormatError",
    "Timeline",
    "TimelineSampler",
    "camera_positions",
    "create_error_aware_data_handler",
    "load_colmap",
    "load_photo",
    "load_rnb",
    "load_scene",
    "load_transforms",
    "look_at",
    "pixel_points",
    "save_blender",
    "save_colmap",
    "save_neus",
    "save_rnb",
]
