"""Renderers and the types they share."""

from ui3d.render.types import RenderOutput

__all__ = ["RenderOutput"]
