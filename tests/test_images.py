import numpy as np
import torch
from PIL import Image

from ui3d.images import LABEL_WIDTH, save_grid


def _solid(*colours):
    """2x3 tiles [B, 3, 2, 3], one solid colour each."""
    return torch.tensor(colours, dtype=torch.float32)[:, :, None, None].expand(-1, 3, 2, 3).contiguous()


def test_tiles_fill_rows_left_to_right_on_white_and_scale_by_nearest(tmp_path):
    red, green, blue = (1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)
    path = save_grid(_solid(red, green, blue), tmp_path / "sub" / "grid.png", columns=2, scale=2)
    img = np.asarray(Image.open(path))
    assert img.shape == (2 * 2 * 2, 2 * 3 * 2, 3)  # 2 rows of 2 tiles of 2x3, doubled
    tile = lambda r, c: img[r * 4 : (r + 1) * 4, c * 6 : (c + 1) * 6].reshape(-1, 3)  # noqa: E731
    assert (tile(0, 0) == [255, 0, 0]).all() and (tile(0, 1) == [0, 255, 0]).all()
    assert (tile(1, 0) == [0, 0, 255]).all() and (tile(1, 1) == 255).all()  # the missing tile is white
    assert sorted(p.name for p in path.parent.iterdir()) == ["grid.png"]  # no temp file left


def test_values_are_clamped_and_rounded(tmp_path):
    images = torch.tensor([-0.5, 0.5, 2.0])[None, :, None, None].expand(1, 3, 1, 1)
    img = np.asarray(Image.open(save_grid(images, tmp_path / "g.png", columns=1, scale=1)))
    assert img[0, 0].tolist() == [0, 128, 255]


def test_labels_take_a_strip_left_of_the_rows(tmp_path):
    img = np.asarray(Image.open(save_grid(_solid((0.0, 0.0, 0.0)).expand(2, -1, -1, -1), tmp_path / "g.png",
                                          columns=1, scale=10, labels=["a", "b"])))
    assert img.shape == (2 * 20, LABEL_WIDTH + 30, 3)
    assert (img[:, LABEL_WIDTH:] == 0).all()  # the tiles start after the strip
    strip = img[:, :LABEL_WIDTH]
    assert (strip < 255).any() and (strip[:, 60:] == 255).all()  # dark text at the strip's left, white beyond
