"""Sample-based metrics and plots for the 2-D mixture benchmark (UNI_INSTRUCT.md §6.3)."""

from ui3d.metrics.distribution import ModeStats, energy_distance, mode_stats
from ui3d.metrics.plot2d import density_scatter_png

__all__ = ["ModeStats", "density_scatter_png", "energy_distance", "mode_stats"]
