"""`python -m systems.shading_pull`: a finished run continued with one shading mode only, on a copy."""

import math

from systems.resolve import GenerateRequest, text_to_3d_config
from systems.shading_pull import continue_run
from systems.text_to_3d import prepare, train


def test_each_continuation_takes_only_its_shading_and_leaves_the_run_alone(tmp_path):
    cfg = text_to_3d_config(GenerateRequest(prompt="a red cube", config="configs/debug/text_to_3d.yaml"))
    run = tmp_path / "run"
    train(prepare(cfg, run, resume=False), run, progress=False)
    files = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    rows = {mode: continue_run(run, mode, steps=2) for mode in ("lambertian", "textureless")}
    for mode, row in rows.items():
        assert row["steps_taken_with"] == [mode]
        assert all(0.0 <= row[k] <= 1.0 and math.isfinite(row[k]) for k in row if k.startswith("opacity"))
    assert rows["lambertian"]["opacity_inside_before"] == rows["textureless"]["opacity_inside_before"]
    assert rows["lambertian"]["opacity_inside_after"] != rows["textureless"]["opacity_inside_after"]
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == files  # the run itself is untouched
