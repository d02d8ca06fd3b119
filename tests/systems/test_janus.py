"""`python -m systems.janus`: the judge's view head tells a true owl's back from its front, and calls
the back of a two-faced owl (its front drawn at every camera) "front"."""

from systems.janus import view_rates
from ui3d.cameras import orbit_cameras
from ui3d.metrics.judge import Judge
from ui3d.world.captions import parse_prompt
from ui3d.world.render import render_world

OWL = parse_prompt("a brown owl").to_object()


def _true(cams):
    return render_world(OWL, cams, background=0.5).rgb


def _two_faced(cams):
    front = render_world(OWL, orbit_cameras(1, cams.width, elevation_deg=15.0), background=0.5).rgb
    return front.expand(len(cams), -1, -1, -1)


def test_a_true_owl_is_not_janus_and_an_owl_with_its_front_everywhere_is():
    judge = Judge.load()
    true = view_rates(_true, judge)
    assert true["janus rate"] <= 0.2 and true["front seen as front"] >= 0.6
    assert view_rates(_two_faced, judge)["janus rate"] >= 0.8


def test_the_command_prints_a_row_per_run(tmp_path, capsys):
    from systems.janus import main
    from systems.text_to_3d import TextTo3DConfig, finish, prepare, timed_train
    from ui3d.config import load_config

    cfg = load_config(TextTo3DConfig, "configs/debug/text_to_3d.yaml", ["prompt=a brown owl"])
    job = prepare(cfg, tmp_path / "run", resume=False)
    _, wall = timed_train(job, tmp_path / "run", progress=False)
    finish(job, tmp_path / "run", wall, formats=("glb",))
    assert main([str(tmp_path / "run")]) == 0
    header, _, row = capsys.readouterr().out.splitlines()
    assert header.startswith("| run | janus rate |")
    cells = row.strip("|").split("|")
    assert cells[0].strip() == "run" and all(0.0 <= float(c) <= 1.0 for c in cells[1:])
