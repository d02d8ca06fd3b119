"""The object library's contact sheet: views are checked before anything renders."""

import pytest

from ui3d.errors import UserError
from ui3d.world.preview import render_object_grid


def test_an_unknown_view_is_a_user_error_and_nothing_is_written(tmp_path):
    with pytest.raises(UserError, match=r"views: unknown view 'top'; expected some of front, side, back"):
        render_object_grid(tmp_path / "grid.png", objects=["cube"], views=("front", "top"))
    assert not (tmp_path / "grid.png").exists()

