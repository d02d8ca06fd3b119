"""`ui3d export` as a user meets it: every flag, RUN_DIR and --out checked before the scene loads, each
refusal one line naming the flag (or the ExtractConfig field it sets) with exit code 2, nothing left
behind, and the exporter's warning as one line."""

import pytest

from ui3d.cli import main


def _saved_gaussians(tmp_path, num: int, opacity: float):
    from ui3d.scene import GaussianConfig, GaussianScene, save_scene

    scene = GaussianScene(GaussianConfig(num_init=num, init_opacity=opacity))
    return save_scene(scene, tmp_path / "run" / "scene").parent


def _export(capsys, run, *flags: str) -> tuple[int, str]:
    code = main(["export", str(run), "--format", "glb", "--resolution", "32", "--carve-views", "8", *flags])
    return code, capsys.readouterr().err


@pytest.fixture
def never_loads(monkeypatch):
    """A tripwire: a refused export must not reach the scene."""
    import ui3d.scene.base

    def load_scene(*args, **kwargs):
        raise AssertionError("the scene loaded: the check came after the work")

    monkeypatch.setattr(ui3d.scene.base, "load_scene", load_scene)


def test_out_that_is_not_a_folder_is_named_before_any_work(tmp_path, capsys, never_loads):
    run = _saved_gaussians(tmp_path, num=4, opacity=0.5)
    code, err = _export(capsys, run, "--out", "/dev/null")
    assert code == 2 and err == "ui3d export: error: --out '/dev/null' is not a folder, expected a folder\n"


@pytest.mark.parametrize(
    "flag,value,expected",
    [
        ("--resolution", "100000", "resolution: expected a value from 8 to 512, got 100000"),
        ("--threshold", "-1", "threshold: expected a positive density or None (automatic), got -1.0"),
        ("--threshold", "nan", "threshold: expected a positive density"),
        ("--max-faces", "0", "max_faces: expected >= 4 faces"),
        ("--carve-views", "100000", "carve_views: expected a value from 0 to 1024"),
        ("--texture-size", "100000", "--texture-size: expected a value from 16 to 8192, got 100000"),
        ("--video-size", "4", "--video-size: expected a value from 8 to 2048, got 4"),
    ],
)
def test_flags_out_of_range_name_the_flag_or_its_field(tmp_path, capsys, never_loads, flag, value, expected):
    out = tmp_path / "out"
    code, err = _export(capsys, tmp_path / "run", flag, value, "--out", str(out))
    assert code == 2 and err.startswith(f"ui3d export: error: {expected}") and err.count("\n") == 1, err
    assert not out.exists()


def test_a_transparent_scene_exports_with_a_one_line_warning(tmp_path, capsys):
    """One faint Gaussian: above the density threshold, nowhere half opaque in a render. The warning
    is raised inside a torch.no_grad() function (a torch frame as its file); it prints as one line."""
    run = _saved_gaussians(tmp_path, num=1, opacity=0.2)
    stale = run / "export" / ".mesh.glb.tmp-x1y2"  # what a killed export left
    stale.parent.mkdir()
    stale.write_bytes(b"\0" * 100)
    code, err = _export(capsys, run)
    assert code == 0
    assert err.startswith("warning: export: nothing above the density threshold") and err.count("\n") == 1, err
    assert (run / "export" / "mesh.glb").is_file() and not stale.exists()


def test_a_run_dir_without_a_scene_is_named_before_out(tmp_path, capsys, never_loads):
    notes = tmp_path / "notes.txt"  # RUN_DIR a file: the default --out, notes.txt/export, cannot be made either
    notes.write_text("not a run")
    code, err = _export(capsys, notes)
    assert code == 2 and err.startswith("ui3d export: error: run folder: no saved scene") and err.count("\n") == 1


def test_an_empty_scene_is_one_line_and_leaves_no_folder(tmp_path, capsys):
    run = _saved_gaussians(tmp_path, num=1, opacity=0.02)  # below the summed opacity of a surface
    code, err = _export(capsys, run)
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("ui3d export: error: export: nothing in the scene is above the density threshold")
    assert not (run / "export").exists()
