"""Ctrl+C and SIGTERM during `ui3d generate`: the run stops at the next step boundary with a checkpoint
and an export, exits 130, and `--resume` then equals an uninterrupted run."""

import os
import signal
from pathlib import Path

import pytest
import torch

from ui3d.cli import main

DEBUG = str(Path(__file__).resolve().parents[2] / "configs" / "debug" / "text_to_3d.yaml")


def _generate(out: Path, *extra: str) -> int:
    return main(["generate", "a red cube", "--config", DEBUG, "--out", str(out), "steps=5", *extra])


def _scene(run: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(run / "scene" / "scene.safetensors"))


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> dict:
    run = tmp_path_factory.mktemp("whole") / "run"
    assert _generate(run) == 0
    return _scene(run)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_mid_step_stops_at_the_boundary_and_resume_equals_the_uninterrupted_run(
        tmp_path, monkeypatch, uninterrupted, signum):
    import systems.text_to_3d as t3d

    real_step = t3d.train_step

    def step_with_a_signal(job, watch):
        if job.step == 2:  # the signal lands while step 2 is being computed
            os.kill(os.getpid(), signum)
        return real_step(job, watch)

    monkeypatch.setattr(t3d, "train_step", step_with_a_signal)
    cut = tmp_path / "cut"
    assert _generate(cut) == 130
    assert torch.load(cut / "checkpoint.pt", weights_only=True)["step"] == 3  # step 2 finished, no step 3
    assert (cut / "mesh.obj").is_file() and (cut / "metrics.json").is_file()  # exported at the stop
    monkeypatch.setattr(t3d, "train_step", real_step)
    assert main(["generate", "--resume", str(cut)]) == 0
    whole, resumed = uninterrupted, _scene(cut)
    assert whole.keys() == resumed.keys()
    for key in whole:
        torch.testing.assert_close(resumed[key], whole[key], rtol=0, atol=0, msg=key)
