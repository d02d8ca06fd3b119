"""Cameras: the camera convention shared by every renderer, random and orbit samplers.

See :mod:`ui3d.cameras.cameras` for the convention.
"""

from ui3d.cameras.cameras import (
    CameraRanges,
    Cameras,
    CameraSchedule,
    camera_rays,
    cameras_from_spherical,
    focal_length_px,
    look_at,
    orbit_cameras,
    project_points,
    ranges_at,
    sample_random_cameras,
    spherical_to_cartesian,
    stratified_azimuths,
    with_turned_twins,
    wrap_degrees,
)

__all__ = [
    "CameraRanges",
    "Cameras",
    "CameraSchedule",
    "camera_rays",
    "cameras_from_spherical",
    "focal_length_px",
    "look_at",
    "orbit_cameras",
    "project_points",
    "ranges_at",
    "sample_random_cameras",
    "spherical_to_cartesian",
    "stratified_azimuths",
    "with_turned_twins",
    "wrap_degrees",
]
