"""Hostile input and faults (issue 16): each is refused before any work starts, as one line naming the
key, flag or file, with exit code 2, and nothing is left behind. The teacher never loads for these
(the ones that would reach it replace `prepare` with a tripwire)."""

import json
import os

import pytest

from ui3d.cli import main

DEBUG = "configs/debug/text_to_3d.yaml"
DEBUG_2D = "configs/debug/distill_2d.yaml"


def _refused(capsys, argv: list[str], *needles: str) -> str:
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err
    return err


@pytest.mark.parametrize(
    "override,needles",
    [
        ("resolution=100000", ["config key 'resolution'", "from 1 to 1024", "100000"]),
        ("views_per_step=100000", ["config key 'views_per_step'", "from 1 to 64"]),
        ("resolution=1024", ["config key 'views_per_step'", "rays a step; at most 1048576"]),
        ("scene_lr=.inf", ["config key 'scene_lr': expected a finite float, got inf"]),
        ("guidance.guidance_scale=.nan", ["config key 'guidance.guidance_scale': expected a finite float"]),
        ("textureless_prob=2.5", ["config key 'textureless_prob': expected a value from 0 to 1, got 2.5"]),
        ("grad_clip=-1", ["config key 'grad_clip': expected >= 0, got -1.0"]),
        ("lambda_opacity=-0.5", ["config key 'lambda_opacity': expected >= 0"]),
        ("nerf.samples_per_ray=100000", ["config key 'nerf.samples_per_ray'"]),
        ("gaussians.num_init=100000000", ["config key 'gaussians.num_init'"]),
        ("camera.distance=[1.5, .inf]", ["config key 'camera.distance[1]': expected a finite float"]),
        (f"seed={'9' * 401}", ["config key 'seed'", "does not fit a 64-bit integer"]),
    ],
)
def test_config_values_out_of_range(tmp_path, capsys, no_run, override, needles):
    out = tmp_path / "run"
    _refused(capsys, ["generate", "a red cube", "--config", DEBUG, "--out", out, override], *needles)
    assert not out.exists()


def test_a_100_kb_prompt_is_refused_without_being_echoed(tmp_path, capsys, no_run):
    err = _refused(capsys, ["generate", "a red cube " * 10_000, "--config", DEBUG, "--out", tmp_path / "run"],
                   "config key 'prompt': 110000 characters; at most 1000")
    assert len(err) < 300
    assert not (tmp_path / "run").exists()


def test_sds_with_a_divergence(tmp_path, capsys, no_run):
    _refused(capsys, ["generate", "a red cube", "--guidance", "sds", "--divergence", "js", "--config", DEBUG,
                      "--out", tmp_path / "run"], "'guidance.divergence': 'js' has no effect", "h(1)")
    assert not (tmp_path / "run").exists()


def _mixture(tmp_path, text: str):
    path = tmp_path / "mixture.json"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "text,needles",
    [
        ('{"means": [[0, 0, 0], [1, 1, 1]], "stds": [0.1, 0.1]}', ["needs 2-D means", "got 3-D"]),
        ('{"means": [[1' + "0" * 400 + ', 0]], "stds": [0.1]}', ["mixture file", "mixture.json"]),
        ('{"means": ' + "[" * 100_000 + "]" * 100_000 + ', "stds": [1]}', ["nested too deeply"]),
        (json.dumps({"means": [[0, 0]] * 1001, "stds": [0.1] * 1001}), ["1001 modes; at most 1000"]),
        ('{"means": [[0, 0]], "stds": [1e999]}', ["must be finite"]),
    ],
)
def test_hostile_mixture_files_are_refused_before_training(tmp_path, capsys, text, needles):
    out = tmp_path / "out"
    _refused(capsys, ["distill", "--config", DEBUG_2D, "--mixture", _mixture(tmp_path, text), "--out", out], *needles)
    assert not out.exists()


def _run_folder(tmp_path, backend_in_config: str = "nerf", checkpoint: bytes | None = None):
    """A run folder as `ui3d generate` leaves it: config.yaml and a checkpoint of a NeRF scene."""
    from systems.base import save_checkpoint
    from systems.text_to_3d import TextTo3DConfig
    from ui3d.config import dump_yaml, load_config
    from ui3d.scene.base import build_scene

    run = tmp_path / "run"
    cfg = load_config(TextTo3DConfig, DEBUG, ["prompt=a red cube"])
    if checkpoint is None:
        save_checkpoint(run / "checkpoint.pt", {"step": 1, "scene": build_scene("nerf", {}).state_dict()})
    else:
        run.mkdir()
        (run / "checkpoint.pt").write_bytes(checkpoint)
    text = dump_yaml(cfg, run / "config.yaml").read_text().replace("backend: nerf", f"backend: {backend_in_config}")
    (run / "config.yaml").write_text(text)
    return run


def test_resume_with_a_corrupt_checkpoint_is_refused_before_set_up(tmp_path, capsys, no_run):
    run = _run_folder(tmp_path, checkpoint=b"PK\x03\x04 not a checkpoint")
    _refused(capsys, ["generate", "--resume", run], "checkpoint", "checkpoint.pt' cannot be read")
    assert sorted(p.name for p in run.iterdir()) == ["checkpoint.pt", "config.yaml"]


def test_resume_after_config_yaml_was_edited_to_another_backend(tmp_path, capsys, no_run):
    run = _run_folder(tmp_path, backend_in_config="gaussians")
    _refused(capsys, ["generate", "--resume", run], f"--resume '{run}'", "another scene than config.yaml's backend "
             "'gaussians'")


def test_resume_takes_no_other_flags(tmp_path, capsys, no_run):
    run = _run_folder(tmp_path)
    _refused(capsys, ["generate", "--resume", run, "--seed", "3"], "drop --seed (only --steps N may change)")


def test_a_read_only_out_is_refused_before_any_work(tmp_path, capsys, monkeypatch, no_run):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    real_access = os.access  # root writes anyway: make the check see what a user would
    monkeypatch.setattr(os, "access", lambda p, mode: False if str(p) == str(locked) else real_access(p, mode))
    _refused(capsys, ["generate", "a red cube", "--config", DEBUG, "--out", locked / "run"],
             f"--out '{locked / 'run'}'", "is not writable")
    assert list(locked.iterdir()) == []


def _saved_scene(tmp_path):
    from ui3d.scene import GaussianConfig, GaussianScene, save_scene

    return save_scene(GaussianScene(GaussianConfig(num_init=50)), tmp_path / "run" / "scene").parent


def test_export_to_dev_null(tmp_path, capsys):
    run = _saved_scene(tmp_path)
    _refused(capsys, ["export", run, "--format", "glb", "--carve-views", "0", "--out", "/dev/null"], "/dev/null")


def test_export_of_a_corrupt_scene_file(tmp_path, capsys):
    run = _saved_scene(tmp_path)
    (run / "scene" / "scene.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{broken")
    _refused(capsys, ["export", run, "--format", "glb"], "scene.safetensors' is not a readable safetensors file")
    assert not (run / "export").exists()


def test_a_run_refused_during_set_up_leaves_no_folder(tmp_path, capsys, monkeypatch):
    import systems.text_to_3d
    from ui3d.errors import UserError

    def prepare(cfg, run_dir, resume, cache_dir=None):
        run_dir.mkdir(parents=True)
        (run_dir / "config.yaml").write_text("written before the failure")
        raise UserError("teacher 'x': no such folder")

    monkeypatch.setattr(systems.text_to_3d, "prepare", prepare)
    _refused(capsys, ["generate", "a red cube", "--config", DEBUG, "--out", tmp_path / "new" / "run"], "no such folder")
    assert list(tmp_path.iterdir()) == []  # neither the run folder nor the parent it made


def test_temp_files_of_a_killed_run_are_removed_when_it_resumes(tmp_path, capsys, monkeypatch):
    import systems.text_to_3d
    from ui3d.errors import UserError

    run = _run_folder(tmp_path)
    stale = run / ".checkpoint.tmp-x1y2.pt"
    stale.write_bytes(b"\0" * 1000)  # what a kill -9 during the checkpoint write leaves

    def prepare(cfg, run_dir, resume, cache_dir=None):
        assert not stale.exists()  # gone before the run writes anything
        raise UserError("stop here")

    monkeypatch.setattr(systems.text_to_3d, "prepare", prepare)
    _refused(capsys, ["generate", "--resume", run], "stop here")
    assert sorted(p.name for p in run.iterdir()) == ["checkpoint.pt", "config.yaml"]  # a resumed folder is kept
