"""Loop pieces every system shares: the non-finite watch, run folders, checkpoints, the loss log."""

from __future__ import annotations

import csv
import io
import re
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ui3d.io import atomic_path, atomic_write_text


class NonFiniteError(RuntimeError):
    """Too many non-finite losses in a row: the run stops with a message (DESIGN rule 6)."""


@dataclass
class NonFiniteWatch:
    """Counts non-finite losses; a step with one is skipped, `limit` in a row stop the run."""

    limit: int
    in_a_row: int = 0
    total: int = 0

    def ok(self, loss: torch.Tensor, step: int, what: str) -> bool:
        if torch.isfinite(loss):
            self.in_a_row = 0
            return True
        self.in_a_row += 1
        self.total += 1
        if self.in_a_row >= self.limit:
            raise NonFiniteError(f"{self.in_a_row} non-finite {what} losses in a row at step {step}; stopping")
        return False


def slug(text: str, max_length: int = 48) -> str:
    """A file-system-safe name from a prompt: lower-case letters, digits and dashes only."""
    s = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return s[:max_length].rstrip("-") or "untitled"


def run_folder(root: str | Path, prompt: str, seed: int) -> Path:
    """root/<prompt-slug>-s<seed>-<YYYYmmdd-HHMMSS>."""
    return Path(root) / f"{slug(prompt)}-s{seed}-{time.strftime('%Y%m%d-%H%M%S')}"


def save_checkpoint(path: str | Path, state: dict) -> Path:
    """Atomic; tensors, numbers, strings, lists and dicts only, so it loads with weights_only=True."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    return Path(path)


def load_checkpoint(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no checkpoint at '{path}'")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a corrupt or foreign file: name it, never unpickle arbitrary objects
        raise ValueError(f"checkpoint '{path}' cannot be read: {type(err).__name__}") from None


def write_csv(path: str | Path, rows: list[dict]) -> None:
    keys = list(dict.fromkeys(k for row in rows for k in row))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys, restval="")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())
