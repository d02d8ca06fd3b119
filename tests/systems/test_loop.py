"""The loop shell every system runs on: stops at step boundaries, checkpoints, the non-finite watch."""

import os
import signal
import threading
from dataclasses import dataclass, field

import pytest
import torch

from systems.base import NonFiniteError, NonFiniteWatch, run_loop


@dataclass
class Walk:
    """A toy system: a random walk whose every step draws from the run's generator."""

    generator: torch.Generator = field(default_factory=lambda: torch.Generator().manual_seed(0))
    value: torch.Tensor = field(default_factory=lambda: torch.zeros(3))
    step: int = 0
    log: list = field(default_factory=list)
    saved: dict | None = None
    saves: int = 0
    signal_at: int | None = None
    signum: int = signal.SIGINT

    def step_fn(self) -> dict:
        self.value = self.value + torch.randn(3, generator=self.generator)
        if self.step == self.signal_at:  # the signal lands in the middle of a step
            os.kill(os.getpid(), self.signum)
        self.value = self.value * 0.9 + torch.rand(3, generator=self.generator)
        return {"step": self.step, "value": float(self.value.sum())}

    def save(self) -> None:
        self.saves += 1
        self.saved = {"step": self.step, "value": self.value.clone(), "rng": self.generator.get_state(),
                      "log": list(self.log)}

    @classmethod
    def resumed(cls, saved: dict) -> "Walk":
        walk = cls(value=saved["value"].clone(), step=saved["step"], log=list(saved["log"]))
        walk.generator.set_state(saved["rng"])
        return walk


def _run(walk: Walk, total: int, **kw) -> bool:
    return run_loop(walk, total, walk.step_fn, walk.save, progress=False, **kw)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_at_the_step_boundary_and_resume_equals_the_uninterrupted_run(signum):
    whole = Walk()
    assert _run(whole, 10) is True
    cut = Walk(signal_at=3, signum=signum)
    assert _run(cut, 10) is False
    assert cut.saved["step"] == 4  # step 3 finished, nothing after it began
    rest = Walk.resumed(cut.saved)
    assert _run(rest, 10) is True
    assert torch.equal(rest.value, whole.value)
    assert [r["value"] for r in rest.log] == [r["value"] for r in whole.log]


def test_handlers_are_restored_after_the_loop():
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    _run(Walk(), 2)
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


def test_a_stop_event_stops_before_the_next_step_and_saves():
    stop = threading.Event()
    walk = Walk()
    assert _run(walk, 10, after_step=lambda row: stop.set() if row["step"] == 1 else None, stop=stop) is False
    assert walk.step == 2 and walk.saved["step"] == 2


def test_periodic_and_final_checkpoints():
    walk = Walk()
    _run(walk, 7, checkpoint_every=3)
    assert walk.saves == 3  # after steps 3 and 6, and at the end


def test_non_finite_error_saves_the_last_finite_state_then_raises():
    walk = Walk()
    watch = NonFiniteWatch(limit=2)

    def step() -> dict:
        row = walk.step_fn()
        watch.ok(torch.tensor(float("nan") if walk.step >= 2 else 1.0), walk.step, "guidance")
        return row

    with pytest.raises(NonFiniteError, match="2 non-finite guidance losses in a row at step 3"):
        run_loop(walk, 10, step, walk.save, progress=False)
    assert walk.saved["step"] == 3


def test_a_bug_saves_nothing():
    walk = Walk()

    def step() -> dict:
        if walk.step == 2:
            raise RuntimeError("a bug")
        return walk.step_fn()

    with pytest.raises(RuntimeError, match="a bug"):
        run_loop(walk, 10, step, walk.save, progress=False, checkpoint_every=100)
    assert walk.saves == 0


def test_the_watch_counts_each_loss_on_its_own():
    """A finite fake-score loss every step must not reset the count of a guidance loss that is NaN every
    step (the bug that let 25 of 25 NaN steps finish as 'done')."""
    watch = NonFiniteWatch(limit=3)
    nan, one = torch.tensor(float("nan")), torch.tensor(1.0)
    with pytest.raises(NonFiniteError, match="3 non-finite guidance losses in a row at step 2"):
        for step in range(5):
            watch.ok(nan, step, "guidance")
            watch.ok(one, step, "fake-score")
    assert watch.total == 3
