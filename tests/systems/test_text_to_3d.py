"""`ui3d generate` (work in progress): the CLI's user errors, and two real steps of the pipeline with the
shipped built-in teacher whose mesh loads back in trimesh; resume continues from the checkpoint."""

import json

import pytest

from ui3d.cli import main

DEBUG = "configs/debug/text_to_3d.yaml"


@pytest.mark.parametrize(
    "args,needle",
    [
        (["a ceramic dragon"], "unknown word 'dragon'"),
        ([""], "the prompt is empty"),
        (["a red cube", "--steps", "0"], "steps must be a positive integer"),
        (["a red cube", "nerf.samples_per_rays=8"], "did you mean 'nerf.samples_per_ray'"),
        (["a red cube", "--device", "cuda"], None),  # only an error without CUDA
        (["--resume", "no/such/run"], "not a run folder"),
    ],
)
def test_generate_user_errors_exit_2_and_write_nothing(tmp_path, capsys, args, needle):
    import torch

    if "--device" in args and torch.cuda.is_available():
        pytest.skip("this machine has CUDA, so --device cuda is not an error here")
    out = tmp_path / "run"
    code = main(["generate", *args, "--config", DEBUG, "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert (needle or "CUDA is not available") in err
    assert not out.exists()


def test_two_steps_export_a_mesh_and_resume(tmp_path):
    import trimesh

    from systems.text_to_3d import TextTo3DConfig, finish, prepare, timed_train
    from ui3d.config import load_config

    cfg = load_config(TextTo3DConfig, DEBUG, ["prompt=a red cube"])
    run = tmp_path / "run"
    job = prepare(cfg, run, resume=False)
    finished, wall = timed_train(job, run, progress=False)
    assert finished and job.step == 2 and len(job.log) == 2
    metrics = finish(job, run, wall, formats=("glb",))
    mesh = trimesh.load(run / "mesh.glb", force="mesh")
    assert len(mesh.vertices) > 0 and len(mesh.faces) > 0
    assert json.loads((run / "metrics.json").read_text())["steps"] == 2
    assert 0.0 <= metrics["iou"] <= 1.0 and "chamfer" in metrics
    assert (run / "preview.png").is_file() and (run / "config.yaml").is_file()
    longer = load_config(TextTo3DConfig, run / "config.yaml", ["steps=3"])
    resumed = prepare(longer, run, resume=True)
    assert resumed.step == 2 and len(resumed.log) == 2
    timed_train(resumed, run, progress=False)
    assert resumed.step == 3 and [r["step"] for r in resumed.log] == [0, 1, 2]
