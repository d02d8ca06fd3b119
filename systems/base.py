"""The layer every training system shares (DESIGN: systems/base.py): seeding, the loop shell with
checkpoints, stop requests and the loss log, the non-finite watch, run folders and checkpoint files.

A system supplies one step (``step_fn``: do the work of ``state.step``, return its log row) and a
``save`` (checkpoint + losses.csv); :func:`run_loop` does the rest, the same way for text-to-3D, image
distillation, 2-D distillation and the photometric fit.

Stops happen only at step boundaries (DESIGN rule 7): SIGINT and SIGTERM (or a web demo's Stop
event) set a flag that the loop reads between steps, so the checkpoint holds whole steps and their
random state, and ``--resume`` continues exactly where an uninterrupted run would be. A second
Ctrl+C aborts at once (nothing is saved then; the last checkpoint stays).
"""

from __future__ import annotations

import csv
import io
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import torch

from ui3d.io import atomic_path, atomic_write_text


class NonFiniteError(RuntimeError):
    """Too many non-finite losses in a row: the run stops with a message (DESIGN rule 6)."""


@dataclass
class NonFiniteWatch:
    """Counts non-finite losses, one count per loss (``what``): a step with one is skipped, ``limit``
    in a row of the same loss stop the run. Separate counts matter: a finite fake-score loss every
    step must not hide a guidance loss that is NaN every step."""

    limit: int
    in_a_row: dict[str, int] = field(default_factory=dict)
    total: int = 0

    def ok(self, loss: torch.Tensor, step: int, what: str) -> bool:
        if bool(torch.isfinite(loss).all()):
            self.in_a_row[what] = 0
            return True
        count = self.in_a_row.get(what, 0) + 1
        self.in_a_row[what] = count
        self.total += 1
        if count >= self.limit:
            raise NonFiniteError(f"{count} non-finite {what} losses in a row at step {step}; stopping")
        return False


def command_exit_code(prog: str, command: Callable[[], int]) -> int:
    """Run a measurement command; a user error is one line on stderr and exit code 2."""
    from ui3d.errors import UserError

    try:
        return command()
    except UserError as err:
        print(f"{prog}: {str(err).splitlines()[0]}", file=sys.stderr)
        return 2


def seeded_generator(seed: int) -> torch.Generator:
    """Seed torch's global RNG (module initialisation) and return the run's generator, which every
    random draw of the run takes (DESIGN rule 9)."""
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


# --- stop requests -----------------------------------------------------------------------------------

class StopRequest:
    """Collects stop requests (SIGINT, SIGTERM, or an external ``threading.Event``) for the loop to
    honour at the next step boundary. Signal handlers are installed only in the main thread (a web
    demo's worker thread stops through its event instead)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, event: threading.Event | None = None):
        self.event = event
        self.signal_name: str | None = None
        self._previous: dict[int, object] = {}

    def _handle(self, signum: int, frame) -> None:
        if self.signal_name is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # the second Ctrl+C: abort now
        self.signal_name = signal.Signals(signum).name
        print(f"\n{self.signal_name}: stopping after this step (checkpoint and export follow; "
              "Ctrl+C again aborts without them)", file=sys.stderr, flush=True)

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    @property
    def requested(self) -> bool:
        return self.signal_name is not None or (self.event is not None and self.event.is_set())


# --- the loop shell ----------------------------------------------------------------------------------

class LoopState(Protocol):
    """What the loop reads and advances: the index of the next step and the rows logged so far."""

    step: int
    log: list


def run_loop(
    state: LoopState,
    total: int,
    step_fn: Callable[[], dict],
    save: Callable[[], None] | None = None,
    *,
    checkpoint_every: int = 0,
    after_step: Callable[[dict], None] | None = None,
    stop: threading.Event | None = None,
    agree: Callable[[bool], bool] | None = None,
    progress: bool = True,
    desc: str = "train",
    postfix: Callable[[dict], dict] | None = None,
) -> bool:
    """Run ``step_fn`` until ``state.step == total``; True when finished, False when stopped.

    After each step the loop appends its row to ``state.log``, advances ``state.step``, calls
    ``after_step(row)`` (validation images, a web demo's progress) and saves every
    ``checkpoint_every`` steps. It saves at the end, on a stop request (signal or ``stop``), and
    before re-raising a :class:`NonFiniteError` (the skipped steps left the state finite). A bug's
    exception saves nothing: the state may be half a step. ``agree(requested) -> bool`` makes every
    process of a distributed run stop at the same step (e.g. an all-reduce of the flag).
    """
    from tqdm import tqdm

    bar = tqdm(total=total, initial=state.step, desc=desc, unit="step", disable=not progress)
    finished = False
    try:
        with StopRequest(stop) as request:
            while state.step < total:
                requested = request.requested
                if agree(requested) if agree is not None else requested:
                    break
                row = step_fn()
                state.log.append(row)
                state.step += 1
                bar.update(1)
                if postfix is not None:
                    bar.set_postfix(postfix(row), refresh=False)
                if after_step is not None:
                    after_step(row)
                if save is not None and checkpoint_every > 0 and state.step % checkpoint_every == 0:
                    save()
            finished = state.step >= total
    except NonFiniteError:
        if save is not None:
            save()
        raise
    finally:
        bar.close()
    if save is not None:
        save()
    return finished


def format_postfix(row: dict, keys: tuple[str, ...]) -> dict:
    """The progress bar's numbers: the row's values under ``keys`` (missing ones left out)."""
    return {k: f"{row[k]:.3g}" for k in keys if isinstance(row.get(k), (int, float))}


# --- run folders, checkpoints, the loss log ----------------------------------------------------------

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
    """A run's checkpoint, read as weights only; a missing, corrupt or foreign file (in a run folder
    the user named) is a UserError naming it."""
    from ui3d.errors import UserError

    path = Path(path)
    if not path.is_file():
        raise UserError(f"no checkpoint at '{path}'")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a corrupt or foreign file: name it, never unpickle arbitrary objects
        raise UserError(f"checkpoint '{path}' cannot be read: {type(err).__name__}") from None


def write_csv(path: str | Path, rows: list[dict]) -> None:
    keys = list(dict.fromkeys(k for row in rows for k in row))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys, restval="")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())


@contextmanager
def timed(row: dict, key: str) -> Iterator[None]:
    """Add the block's wall seconds to row[key] (a per-step time split in losses.csv)."""
    start = time.perf_counter()
    yield
    row[key] = row.get(key, 0.0) + time.perf_counter() - start
