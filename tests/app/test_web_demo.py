"""The web demo through its real server: gradio_client drives runs on the built-in teacher, bad input
comes back as `ui3d generate`'s one-line message, Stop ends with a checkpoint and an export while
a second visitor waits in the queue, and the server serves its output folder only."""

import json
import socket
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest
import trimesh
from webdemo import inputs

ROOT = Path(__file__).resolve().parents[2]


def _run_folders(out: Path) -> set[str]:
    return {p.name for p in out.iterdir() if p.is_dir() and not p.name.startswith(".")}


def test_build_demo_constructs_offline(tmp_path, monkeypatch):
    import gradio as gr

    import app
    from ui3d.world.captions import parse_prompt

    attempts = []

    def no_network(sock, address, *args):
        attempts.append(address)  # recorded: a library may swallow the error
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    demo = app.build_demo(tmp_path)
    assert isinstance(demo, gr.Blocks) and attempts == []
    assert {"generate", "stop"} <= {fn.api_name for fn in demo.fns.values()}
    examples = next(b for b in demo.blocks.values() if isinstance(b, gr.Dataset))
    assert examples.samples[0] == ["a ceramic owl"]
    for (prompt,) in examples.samples:
        parse_prompt(prompt)  # every example is a prompt of the built-in world


def test_main_binds_localhost_and_serves_only_its_folder(tmp_path, monkeypatch):
    import gradio as gr

    import app

    calls = []
    monkeypatch.setattr(gr.Blocks, "launch", lambda self, **kwargs: calls.append(kwargs))
    monkeypatch.setenv("GRADIO_TEMP_DIR", "placeholder")  # so that teardown undoes what main() sets
    monkeypatch.delenv("GRADIO_TEMP_DIR")
    app.main(["--out", str(tmp_path / "out")])
    app.main(["--out", str(tmp_path / "out"), "--host", "0.0.0.0", "--port", "8123"])
    out = str((tmp_path / "out").resolve())
    assert (calls[0]["server_name"], calls[0]["server_port"]) == ("127.0.0.1", 7860)
    assert (calls[1]["server_name"], calls[1]["server_port"]) == ("0.0.0.0", 8123)
    assert calls[0]["allowed_paths"] == [out]
    assert gr.utils.get_upload_folder().startswith(out)  # Gradio's copies stay in the folder too


def test_a_short_run_streams_progress_and_returns_a_glb(server, client, monkeypatch, untrained_teacher):
    import app

    # three tiny steps take about a second once the teacher is warm: poll faster than that, or
    # the page may go from "loading" straight to "exporting" between two polls
    monkeypatch.setattr(app, "POLL_SECONDS", 0.1)
    job = client.submit(*inputs(prompt="a gray mug", teacher=str(untrained_teacher)), api_name="/generate")
    status, preview, losses, video, metrics, downloads = job.result(timeout=240)
    updates = job.outputs()[:-1]
    assert status.startswith("**done:** 3 steps") and "iou" in status
    assert "**warning:** the built-in teacher draws 'a gray mug' poorly" in status  # untrained: 0 of 8 are mugs
    # While it ran: the step count, the loss curve and the live validation image reached the page
    # (an output left unchanged by an update arrives as a dict).
    assert any(u[0].startswith("**step ") for u in updates)
    assert any(isinstance(u[2], dict) and len(u[2].get("data") or []) > 0 for u in updates)
    assert any(isinstance(u[1], str) and Path(u[1]).name == "live.png" for u in updates)
    assert Path(preview).name == "preview.png"
    assert [r[0] for r in losses["data"] if r[2] == "divergence"] == [0, 1, 2]
    assert len([r for r in losses["data"] if r[2] == "grad_norm"]) == 3
    assert metrics["steps"] == 3 and 0.0 <= metrics["iou"] <= 1.0
    names = [Path(d).name for d in downloads]
    assert names == ["mesh.glb", "mesh_obj.zip"] and video is None  # the tests' server exports no video
    mesh = trimesh.load(downloads[0], force="mesh")
    assert len(mesh.vertices) > 0 and len(mesh.faces) > 0
    assert sorted(zipfile.ZipFile(downloads[1]).namelist()) == ["mesh.mtl", "mesh.obj", "mesh.png"]
    run_dir = server.out / status.split("`")[1]  # the run folder is named in the status line
    assert json.loads((run_dir / "metrics.json").read_text())["steps"] == 3
    assert (run_dir / "checkpoint.pt").is_file() and (run_dir / "config.yaml").is_file()


@pytest.mark.parametrize(
    "changes,needle",
    [
        ({"prompt": ""}, "the prompt is empty"),
        ({"prompt": "a ceramic dragon"}, "unknown word 'dragon'"),
        ({"steps": 0}, "steps must be a positive integer, got 0"),
        ({"divergence": "fkll"}, "did you mean 'fkl'"),
    ],
)
def test_bad_input_is_one_readable_line_and_the_server_keeps_serving(server, client, changes, needle):
    from gradio_client.exceptions import AppError

    before = _run_folders(server.out)
    with pytest.raises(AppError) as err:
        client.predict(*inputs(**changes), api_name="/generate")
    assert needle in str(err.value) and "\n" not in str(err.value) and "Traceback" not in str(err.value)
    assert _run_folders(server.out) == before  # nothing was written
    assert client.predict(api_name="/stop") == "nothing is running"  # and the server still answers


def _wait(predicate, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_stop_checkpoints_and_exports_while_the_next_visitor_waits_in_line(server):
    from gradio_client import Client
    from gradio_client.exceptions import AppError
    from gradio_client.utils import Status

    first, second = Client(server.url, verbose=False), Client(server.url, verbose=False)
    running = first.submit(*inputs(prompt="a red cube", steps=100_000), api_name="/generate")
    _wait(lambda: any(u[0].startswith("**step ") for u in running.outputs()), 120, "the first run to train")
    waiting = second.submit(*inputs(prompt=""), api_name="/generate")
    queued = _wait(lambda: (s := waiting.status()).code == Status.IN_QUEUE and s, 30, "the second run to queue")
    assert queued.rank == 0  # first in line, behind the running job
    assert not waiting.done()

    assert first.predict(api_name="/stop").startswith("**stopping")
    status, _, _, _, metrics, downloads = running.result(timeout=240)
    assert status.startswith("**stopped (checkpoint saved):**")
    assert 1 <= metrics["steps"] < 100_000 and [Path(d).name for d in downloads][0] == "mesh.glb"
    run_dir = server.out / status.split("`")[1]
    from systems.base import load_checkpoint

    assert load_checkpoint(run_dir / "checkpoint.pt")["step"] == metrics["steps"]
    with pytest.raises(AppError, match="the prompt is empty"):
        waiting.result(timeout=60)  # its turn came once the first run ended


def _http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as err:
        return err.code


def test_serves_only_its_output_folder(server):
    inside = server.out / "probe.txt"
    inside.write_text("ours")
    assert _http_status(f"{server.url}gradio_api/file={inside}") == 200
    for outside in (ROOT / "pyproject.toml", ROOT / "app.py", Path("/etc/passwd")):
        assert _http_status(f"{server.url}gradio_api/file={outside}") == 403


def _finished_run(tmp_path, backend: str, files: dict) -> SimpleNamespace:
    for name in [n for names in files.values() for n in names] + ["preview.png"]:
        (tmp_path / name).write_bytes(b"x")
    metrics = {"steps": 5, "wall_seconds": 12.3, "files": files, "iou": 0.5}
    return SimpleNamespace(metrics=metrics, run_dir=tmp_path, finished=True, warning=None, cfg=SimpleNamespace(backend=backend))


@pytest.mark.fake_glb
def test_gaussian_results_fill_the_splat_viewer_and_offer_the_ply(tmp_path):
    import app

    files = {"obj": ["mesh.obj", "mesh.mtl", "mesh.png"], "glb": ["mesh.glb", "splats.glb"], "ply": ["gaussians.ply"],
             "video": ["turntable.mp4"]}
    out = app._results(_finished_run(tmp_path, "gaussians", files))
    assert [Path(p).name for p in out["downloads"]] == ["mesh.glb", "mesh_obj.zip", "gaussians.ply", "splats.glb"]
    assert out["viewers"] == {"mesh": str(tmp_path / "mesh.glb"), "splats": str(tmp_path / "gaussians.ply")}
    assert out["video"] == str(tmp_path / "turntable.mp4") and "iou 0.500" in out["status"]


@pytest.mark.fake_glb
def test_nerf_results_have_no_splats_and_a_gif_turntable_is_a_download(tmp_path):
    import app

    files = {"glb": ["mesh.glb"], "video": ["turntable.gif"]}
    out = app._results(_finished_run(tmp_path, "nerf", files))
    assert out["viewers"]["splats"] is None and out["video"] is None
    assert [Path(p).name for p in out["downloads"]] == ["mesh.glb", "turntable.gif"]


@pytest.mark.slow
def test_a_gaussian_run_offers_its_splats(server, client):
    status, *_, metrics, downloads = client.predict(*inputs(backend="gaussians"), api_name="/generate")
    assert status.startswith("**done:**") and metrics["backend"] == "gaussians"
    assert [Path(d).name for d in downloads] == ["mesh.glb", "mesh_obj.zip", "gaussians.ply", "splats.glb"]
    header = Path(downloads[2]).read_bytes().split(b"end_header")[0].decode().split("\n")
    count = next(int(line.split()[2]) for line in header if line.startswith("element vertex"))
    names = {line.split()[-1] for line in header if line.startswith("property")}
    assert count > 0 and {"x", "opacity", "scale_0", "rot_0", "f_dc_0"} <= names  # the 3DGS layout


def test_the_page_and_the_command_line_resolve_the_same_config():
    import app
    from systems.resolve import text_to_3d_config
    from ui3d.cli import _request, parse_args

    settings = app.Settings("a red cube", teacher="builtin", backend="gaussians", guidance="vsd", divergence="js",
                            steps=7, seed=3)
    page = app.build_config(settings, ["resolution=16"])
    flags = parse_args(["generate", "a red cube", "--teacher", "builtin", "--backend", "gaussians", "--guidance", "vsd",
                        "--divergence", "js", "--steps", "7", "--seed", "3", "resolution=16"])
    assert page == text_to_3d_config(_request(flags))
    assert (page.guidance.divergence, page.guidance.fake_score, page.resolution, page.steps) == ("js", "lora", 16, 7)


def test_the_obj_zip_is_written_atomically(tmp_path):
    import app

    for name in ("mesh.obj", "mesh.mtl"):
        (tmp_path / name).write_text(name)
    path = app._obj_zip(tmp_path, ["mesh.obj", "mesh.mtl"])
    assert sorted(zipfile.ZipFile(path).namelist()) == ["mesh.mtl", "mesh.obj"]
    with pytest.raises(FileNotFoundError):
        app._obj_zip(tmp_path, ["mesh.obj", "mesh.png"])  # fails half-way
    assert sorted(zipfile.ZipFile(path).namelist()) == ["mesh.mtl", "mesh.obj"]  # the old zip is whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mesh.mtl", "mesh.obj", "mesh_obj.zip"]  # no temp file
