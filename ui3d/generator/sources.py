"""Real data for one-step image distillation, checked against the teacher at the boundary.

- the built-in teacher uses fresh world renders of the batch's captions (``ui3d.world.dataset``);
- a ``UNet2DModel`` teacher (:mod:`ui3d.teachers.image`) uses an image folder.

User errors (mismatched resolution or channels, an empty or unreadable folder) raise UserError
naming both sides.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from ui3d.errors import UserError
from ui3d.teachers.image import ImageTeacher

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


class ImageFolderData:
    """Every image under a folder, loaded once as uint8, checked against the teacher."""

    def __init__(self, folder: str | Path, teacher: ImageTeacher):
        from PIL import Image, UnidentifiedImageError

        folder = Path(folder)
        if not folder.is_dir():
            raise UserError(f"--data '{folder}' is not a folder")
        files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not files:
            raise UserError(f"--data '{folder}' holds no images ({', '.join(IMAGE_SUFFIXES)}); "
                            f"{teacher.describe()} needs real images")
        mode = {1: "L", 3: "RGB"}.get(teacher.channels)
        if mode is None:
            raise UserError(f"{teacher.describe()}: only 1- or 3-channel teachers can use an image folder")
        arrays = []
        for path in files:
            try:
                with Image.open(path) as im:
                    im.load()
                    channels = len(im.getbands()) - (1 if im.mode in ("RGBA", "LA") else 0)
                    size = im.size
                    im = im.convert(mode)
            except (UnidentifiedImageError, OSError) as err:
                raise UserError(f"--data: '{path}' cannot be read as an image ({type(err).__name__})") from None
            if size != (teacher.resolution, teacher.resolution) or (channels != teacher.channels and im.mode != "P"):
                raise UserError(f"--data image '{path.name}' is {size[0]}×{size[1]} with {channels} channels, but "
                                f"{teacher.describe()} expects {teacher.resolution}×{teacher.resolution} with "
                                f"{teacher.channels} channels")
            arrays.append(torch.frombuffer(bytearray(im.tobytes()), dtype=torch.uint8))
        r, c = teacher.resolution, teacher.channels
        self.images = torch.stack(arrays).view(len(files), r, r, c).permute(0, 3, 1, 2).contiguous()
        self.folder = folder

    def __len__(self) -> int:
        return self.images.shape[0]

    def sample(self, index: Tensor) -> Tensor:
        """Images at ``index`` in [−1, 1]."""
        return self.images[index].float().div(127.5).sub(1.0)
