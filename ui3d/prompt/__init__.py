"""Prompt handling: view-dependent suffixes (encoding and caching live beside them)."""

from ui3d.prompt.views import (
    VIEWS,
    view_ids,
    view_prompts,
    view_suffix,
    view_suffixes,
    with_view_suffix,
)

__all__ = ["VIEWS", "view_ids", "view_prompts", "view_suffix", "view_suffixes", "with_view_suffix"]
