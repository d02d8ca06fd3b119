"""`--teacher exact-view` and `--teacher exact-camera`: the built-in world's exact teachers, ready for
text-to-3D, to split a result's error (issue: the oracle split; README "Oracles").

- ``exact-view``: :class:`~ui3d.teachers.exact.ExactWorldTeacher`, the Gaussian-smoothed set of the
  caption's renders from cameras of the view bucket (text only, like the learned teacher);
- ``exact-camera``: :class:`~ui3d.teachers.exact.CameraMatchedWorldTeacher`, the smoothed true
  render at each training camera.

Learned vs view-bucketed is the learned teacher's own error; view-bucketed vs camera-matched is
what knowing the camera can buy; camera-matched vs the photometric fit is the guidance's and the
optimiser's.

An exact teacher has no network, but VSD and Uni-Instruct need one for their fake score (a LoRA of
the teacher's U-Net). :class:`OracleTeacher` takes it from the built-in teacher: the fake score starts
as the learned teacher and learns the renders' distribution as usual, while the real score is exact.
Each prompt's embeddings are the built-in teacher's, with one extra token row carrying the exact
teacher's caption id; the exact teacher reads only that row and the fake score never sees it.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

__all__ = ["ORACLE_BACKGROUND", "ORACLE_SPECS", "OracleTeacher", "check_world_prompts", "load_oracle"]

ORACLE_SPECS = ("exact-view", "exact-camera")
# What the oracles render on, and so what a scene guided by one must render on: exact only for the same
# background. A dark slate of the muted family, not a colour of the world's palette, so that white,
# gray and black objects keep a silhouette (on white, the first oracle rows lost the white prompts).
ORACLE_BACKGROUND = (0.25, 0.30, 0.36)


class _WithoutCaptionRow(nn.Module):
    """The built-in ε-network, fed the embeddings without the oracle's caption-id row."""

    def __init__(self, network: nn.Module):
        super().__init__()
        self.inner = network

    @property
    def unet(self) -> nn.Module:
        return self.inner.unet

    def forward(self, x_t: Tensor, t: Tensor, embeddings: Tensor, camera: Tensor | None = None) -> Tensor:
        return self.inner(x_t, t, embeddings[:, :-1], camera)


class OracleTeacher:
    """An exact world teacher for the real score, the built-in teacher for the prompt language and the
    fake score's network."""

    def __init__(self, exact, language):
        self.exact, self.language = exact, language
        self.schedule = exact.schedule
        self.takes_camera = exact.takes_camera
        self.clip_sample = exact.clip_sample
        self.resolution = exact.resolution

    @property
    def alphas_cumprod(self) -> Tensor:
        return self.exact.alphas_cumprod

    @property
    def tokenizer(self):
        return self.language.tokenizer

    def encode(self, rgb: Tensor) -> Tensor:
        return self.exact.encode(rgb)

    def decode(self, x: Tensor) -> Tensor:
        return self.exact.decode(x)

    def check_prompts(self, prompts: Sequence[str]) -> None:
        self.language.check_prompts(prompts)
        check_world_prompts(prompts)

    @torch.no_grad()
    def encode_prompts(self, prompts: Sequence[str]) -> Tensor:
        """The built-in teacher's embeddings [B, L, D] with the caption id as row L ([B, L + 1, D])."""
        if isinstance(prompts, str):
            prompts = [prompts]
        hidden = self.language.encode_prompts(prompts)
        ids = self.exact.encode_prompts(prompts).to(hidden)  # [B, 1]
        return torch.cat([hidden, ids[:, :, None].expand(-1, 1, hidden.shape[-1])], dim=1)

    def eps_network(self) -> nn.Module:
        return _WithoutCaptionRow(self.language.eps_network())

    def predict_eps(self, x_t: Tensor, t: Tensor, embeddings: Tensor, camera=None) -> Tensor:
        ids = embeddings[:, -1, :1].round().long()
        return self.exact.predict_eps(x_t, t, ids, camera)


def check_world_prompts(prompts: Sequence[str]) -> None:
    """Raise the world's one-line error for a prompt it cannot draw ("" is the unconditional one)."""
    from ui3d.world.captions import parse_prompt

    for p in prompts:
        if p:
            parse_prompt(p)


def load_oracle(spec: str, prompts: Sequence[str] = ()) -> OracleTeacher:
    """The oracle of ``spec`` (:data:`ORACLE_SPECS`) at the built-in teacher's resolution; prompts the
    world cannot draw raise its one-line error."""
    from ui3d.teachers.builtin import BuiltinTeacher
    from ui3d.teachers.exact import CameraMatchedWorldTeacher, ExactWorldTeacher

    if spec not in ORACLE_SPECS:
        raise ValueError(f"unknown oracle {spec!r} (choices: {', '.join(ORACLE_SPECS)})")
    language = BuiltinTeacher.load()
    r = language.resolution
    oracle = ExactWorldTeacher if spec == "exact-view" else CameraMatchedWorldTeacher
    exact = oracle(resolution=r, background=ORACLE_BACKGROUND)
    teacher = OracleTeacher(exact, language)
    teacher.check_prompts([p for p in prompts if p])
    # the caller's prompts (text-to-3D: the prompt and its view prompts) now, so caption ids do not
    # depend on the order of later calls and embeddings read back from the prompt cache stay valid
    teacher.encode_prompts([p for p in prompts if p])
    return teacher
