"""`ui3d generate --prompts FILE`: one run per prompt; under torchrun (two real processes, gloo)
every prompt runs exactly once and rank 0 gathers the summary."""

import json
import os
import subprocess
import sys

import pytest

from ui3d.cli import main, rank_share, read_prompts

DEBUG = "configs/debug/text_to_3d.yaml"


def test_rank_share_covers_every_item_once():
    for n in range(0, 9):
        for world in range(1, 5):
            shares = [rank_share(list(range(n)), r, world) for r in range(world)]
            assert sorted(i for s in shares for i in s) == list(range(n))


def test_read_prompts_skips_comments_and_rejects_empty_files(tmp_path):
    f = tmp_path / "p.txt"
    f.write_text("# objects\na red cube\n\n  a blue torus  \n")
    assert read_prompts(f) == ["a red cube", "a blue torus"]
    f.write_text("# nothing\n\n")
    with pytest.raises(ValueError, match="no prompts"):
        read_prompts(f)


def test_a_bad_prompt_in_the_file_stops_before_any_run(tmp_path, capsys):
    f = tmp_path / "p.txt"
    f.write_text("a red cube\na ceramic dragon\n")
    out = tmp_path / "out"
    assert main(["generate", "--prompts", str(f), "--config", DEBUG, "--out", str(out)]) == 2
    assert "unknown word 'dragon'" in capsys.readouterr().err
    assert not out.exists()


def test_torchrun_two_processes_run_each_prompt_exactly_once(tmp_path):
    prompts = ["a red cube", "a blue sphere", "a green torus"]
    f = tmp_path / "prompts.txt"
    f.write_text("\n".join(prompts) + "\n")
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29531",
           "-m", "ui3d.cli", "generate", "--prompts", str(f), "--config", DEBUG, "--out", str(out), "steps=1"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2
    assert [r["prompt"] for r in summary["runs"]] == prompts
    assert sorted(r["rank"] for r in summary["runs"]) == [0, 0, 1]  # rank 0: prompts 0 and 2, rank 1: prompt 1
    folders = sorted(p.name for p in out.iterdir() if p.is_dir())
    assert folders == ["000-a-red-cube-s0", "001-a-blue-sphere-s0", "002-a-green-torus-s0"]
    for name in folders:
        assert json.loads((out / name / "metrics.json").read_text())["steps"] == 1
        assert (out / name / "mesh.glb").is_file()


def test_overrides_are_taken_anywhere_on_the_line_and_never_as_the_prompt():
    from ui3d.cli import parse_args

    args = parse_args(["generate", "a red cube", "--steps", "3", "nerf.samples_per_ray=8", "--seed", "2", "seed=4"])
    assert args.prompt == "a red cube" and args.overrides == ["nerf.samples_per_ray=8", "seed=4"]
    args = parse_args(["generate", "--resume", "runs/x", "steps=600"])
    assert args.prompt is None and args.overrides == ["steps=600"]
    with pytest.raises(SystemExit):
        parse_args(["generate", "a red cube", "--out", "x", "stray"])


def test_running_the_same_batch_again_finishes_only_what_is_left(tmp_path, monkeypatch, capsys):
    """A crashed batch: prompt 0 complete, prompt 1 interrupted with a checkpoint, prompt 2 never
    started. The same command skips 0, resumes 1 and runs 2."""
    import ui3d.cli
    from ui3d.io import write_json

    f = tmp_path / "p.txt"
    f.write_text("a red cube\na blue sphere\na green torus\n")
    out = tmp_path / "out"
    write_json(out / "000-a-red-cube-s0" / "metrics.json", {"steps": 2, "iou": 0.5})
    (out / "001-a-blue-sphere-s0").mkdir()
    (out / "001-a-blue-sphere-s0" / "checkpoint.pt").write_bytes(b"")
    write_json(out / "001-a-blue-sphere-s0" / "metrics.json", {"steps": 1})  # interrupted after step 1 of 2
    calls = []

    def run(cfg, run_dir, resume=False, cache_dir=None):
        calls.append((run_dir.name, resume))
        return True, {"steps": cfg.steps, "iou": 0.25}

    monkeypatch.setattr(ui3d.cli, "_run_generate", run)
    assert main(["generate", "--prompts", str(f), "--config", DEBUG, "--out", str(out)]) == 0
    assert calls == [("001-a-blue-sphere-s0", True), ("002-a-green-torus-s0", False)]
    assert "already done" in capsys.readouterr().out
    runs = json.loads((out / "summary.json").read_text())["runs"]
    assert [(r["index"], r["finished"], r["iou"]) for r in runs] == [(0, True, 0.5), (1, True, 0.25), (2, True, 0.25)]
    calls.clear()
    assert main(["generate", "--prompts", str(f), "--config", DEBUG, "--out", str(out)]) == 0
    assert calls == [("001-a-blue-sphere-s0", True), ("002-a-green-torus-s0", False)]  # the fake wrote no metrics


def test_an_interrupted_run_stops_the_batch(tmp_path, monkeypatch):
    import ui3d.cli

    f = tmp_path / "p.txt"
    f.write_text("a red cube\na blue sphere\n")
    calls = []

    def run(cfg, run_dir, resume=False, cache_dir=None):
        calls.append(run_dir.name)
        return False, {"steps": 1}  # Ctrl+C: checkpoint saved, run not finished

    monkeypatch.setattr(ui3d.cli, "_run_generate", run)
    assert main(["generate", "--prompts", str(f), "--config", DEBUG, "--out", str(tmp_path / "out")]) == 130
    assert calls == ["000-a-red-cube-s0"]
