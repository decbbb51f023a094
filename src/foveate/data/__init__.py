"""foveate.data: sources of training units (pixels of photos, rays of cameras, timeline bins)."""

from .images import BUNDLED_PHOTOS, ImageError, Photo, load_photo, pixel_points

__all__ = ["BUNDLED_PHOTOS", "ImageError", "Photo", "load_photo", "pixel_points"]
