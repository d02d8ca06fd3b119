"""The web demo: type a prompt, watch the object form, download it.

`python app.py` serves the page on 127.0.0.1:7860 (`--host`, `--port` to change). The run happens in
this process, on the same code as `ui3d generate`: the page's inputs become the CLI's flags, the
config is resolved and the run checked by `systems.resolve` as the CLI's are, and `systems.text_to_3d`
prepares, trains and exports.
One run at a time; later visitors wait in Gradio's queue and see their place in it. The server
serves files from its output folder only.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import threading
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import gradio as gr
import torch

from systems.base import run_folder
from systems.resolve import GenerateRequest, check_generate_run, text_to_3d_config
from systems.text_to_3d import finish, prepare, teacher_warning, timed_train, validation_grid
from ui3d.cli import CACHE_HELP, one_line, user_caused
from ui3d.divergence import DIVERGENCES
from ui3d.export.scene import FORMATS
from ui3d.guidance import GUIDANCE_PRESETS
from ui3d.errors import UserError
from ui3d.io import atomic_path, remove_stale_temp_files, removed_on_failure
from ui3d.prompt.embeddings import prompt_cache_dir
from ui3d.teachers.loading import default_teacher_spec

OUT_ROOT = Path("runs") / "app"
# Prompts of the built-in world: its teacher knows them and the metrics can score them.
EXAMPLES = ["a ceramic owl", "a red cube", "a glossy blue torus", "a snowman", "a red mushroom", "a green tree"]
PREVIEW_SECONDS = 3.0  # a fresh preview at most this often...
PREVIEW_SHARE = 0.2  # ...and at most this share of the run's time (rendering it pauses training)
POLL_SECONDS = 1.0  # how often the page is updated while a run trains


@dataclass(frozen=True)
class Settings:
    """The page's inputs, named like `ui3d generate`'s flags (empty = the preset's value)."""

    prompt: str
    negative_prompt: str = ""
    teacher: str = "builtin"
    backend: str = "nerf"
    guidance: str = "uni-instruct"
    divergence: str = ""
    preset: str = "fast"
    steps: float | None = None
    seed: float | None = 0


def build_config(s: Settings, overrides: Sequence[str] = (), device: str | None = None):
    """The CLI's config for these settings: preset < guidance preset < settings < overrides."""
    request = GenerateRequest(
        prompt=s.prompt or "", negative_prompt=s.negative_prompt or None, teacher=s.teacher or None,
        backend=s.backend or None, guidance=s.guidance or None, divergence=s.divergence or None,
        preset=s.preset or "fast", steps=_integer(s.steps, "steps"), seed=_integer(s.seed, "seed"), device=device,
        overrides=tuple(overrides))
    return text_to_3d_config(request)


def _integer(value: float | None, name: str) -> int | None:
    if value is None:
        return None
    if not math.isfinite(value) or value != int(value):
        raise UserError(f"{name} must be a whole number, got {value}")
    return int(value)


def is_user_error(err: BaseException) -> bool:
    """What `ui3d generate` reports as one line with exit code 2 (the page shows it the same way)."""
    return isinstance(err, UserError) or (isinstance(err, OSError) and user_caused(err))


def _fresh_folder(path: Path) -> Path:
    """`path`, or `path-2`, `path-3`... when two runs start within the same second."""
    candidate, n = path, 1
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.name}-{n}")
    return candidate


@dataclass
class Run:
    """One generation on a background thread; the page polls its fields."""

    cfg: object
    run_dir: Path
    formats: tuple[str, ...]
    cache_dir: Path | None = None  # prompt embeddings (ui3d.prompt.embeddings.prompt_cache_dir)
    stop: threading.Event = field(default_factory=threading.Event)
    stage: str = "loading the teacher"
    step: int = 0
    losses: list = field(default_factory=list)  # (step, divergence estimate, scene gradient norm)
    preview: Path | None = None
    train_start: float | None = None
    next_preview: float = 0.0
    metrics: dict | None = None
    finished: bool = False
    error: BaseException | None = None
    warning: str | None = None  # shown under the status (systems.text_to_3d.teacher_warning)
    thread: threading.Thread | None = None

    def start(self) -> None:
        self.thread = threading.Thread(target=self._work, name="ui3d-run", daemon=True)
        self.thread.start()

    def _work(self) -> None:
        try:
            with removed_on_failure(self.run_dir, keep_if=lambda d: (d / "checkpoint.pt").is_file()):
                job = prepare(self.cfg, self.run_dir, resume=False, cache_dir=self.cache_dir)
                self.warning = teacher_warning(job)
                self.stage, self.train_start = "training", time.perf_counter()
                self.finished, wall = timed_train(job, self.run_dir, progress=False, on_step=self._on_step, stop=self.stop)
                self.stage = "exporting the mesh, the video and the metrics"
                self.metrics = finish(job, self.run_dir, wall, self.formats)
        except BaseException as err:  # reported on the page by the polling side
            self.error = err

    def _on_step(self, job, row: dict) -> None:
        self.step = job.step
        self.losses.append((row["step"], row.get("divergence", math.nan), row.get("grad_norm", math.nan)))
        now = time.perf_counter()
        if now >= self.next_preview:  # the first step, then every few seconds
            path = validation_grid(job, self.run_dir / "live.png")
            cost = time.perf_counter() - now
            self.next_preview = now + max(PREVIEW_SECONDS, cost / PREVIEW_SHARE)
            self.preview = path

    def eta(self) -> float | None:
        """Seconds of training left, from the rate so far."""
        if self.train_start is None or self.step == 0:
            return None
        rate = (time.perf_counter() - self.train_start) / self.step
        return rate * (self.cfg.steps - self.step)


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    return f"{seconds} s" if seconds < 90 else f"{seconds // 60} min {seconds % 60:02d} s"


def _status(run: Run) -> str:
    if run.stage != "training":
        return f"**{run.stage}…**" + _warning(run)
    text = f"**step {run.step}/{run.cfg.steps}**"
    if run.losses:
        text += " · divergence {1:.4g} · grad norm {2:.4g}".format(*run.losses[-1])
    eta = run.eta()
    return text + (f" · about {_duration(eta)} left" if eta is not None else "") + _warning(run)


def _warning(run: Run) -> str:
    return f"\n\n**warning:** {_markdown_text(run.warning)}" if run.warning else ""


def _obj_zip(run_dir: Path, names: list[str]) -> Path:
    """mesh.obj + mesh.mtl + its texture in one zip, as one download."""
    path = run_dir / "mesh_obj.zip"
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        for name in names:
            z.write(run_dir / name, name)
    return path


def _results(run: Run) -> dict:
    """The finished run's outputs for the page, keyed by output name."""
    m, d = run.metrics, run.run_dir
    files = m["files"]
    mesh = d / "mesh.glb" if "glb" in files else None
    splats = d / files["ply"][0] if "ply" in files else None  # finish writes a .ply only of splats
    splats_glb = d / "splats.glb" if "splats.glb" in files.get("glb", []) else None  # KHR_gaussian_splatting
    obj = _obj_zip(d, files["obj"]) if "obj" in files else None
    video = d / files["video"][0] if "video" in files else None
    playable = video if video and video.suffix == ".mp4" else None  # a .gif (no ffmpeg) is a download
    scores = "".join(f", {k} {m[k]:.3f}" for k in ("iou", "chamfer", "colour_mae") if k in m)
    how = "done" if run.finished else "stopped (checkpoint saved)"
    return {
        "status": f"**{how}:** {m['steps']} steps in {_duration(m['wall_seconds'])}{scores} → `{d.name}`" + _warning(run),
        "preview": str(d / "preview.png"),
        "video": playable and str(playable),
        "metrics": m,
        "downloads": [str(p) for p in (mesh, obj, splats, splats_glb, video if not playable else None) if p is not None],
        "viewers": {"mesh": mesh and str(mesh), "splats": splats and str(splats)},
    }


OUTPUTS = ("status", "preview", "losses", "video", "metrics", "downloads", "viewers")


def _update(**values) -> tuple:
    """One yield to the page: the given outputs change, the rest stay as they are."""
    return tuple(values.get(name, gr.update()) for name in OUTPUTS)


def _loss_frame(losses: list):
    """Long format for the plot: the divergence estimate and the scene's gradient norm (not the
    surrogate's value: a stop-gradient surrogate, as in SDS, is a constant whose gradient alone matters)."""
    import pandas as pd

    rows = list(losses)  # a snapshot: the training thread keeps appending
    return pd.DataFrame({"step": pd.Series([r[0] for r in rows] * 2, dtype="int64"),
                         "value": pd.Series([r[1] for r in rows] + [r[2] for r in rows], dtype="float64"),
                         "series": pd.Series(["divergence"] * len(rows) + ["grad_norm"] * len(rows), dtype="string")})


def _markdown_text(text: str) -> str:
    """`text` shown literally in Markdown (error messages hold brackets, underscores, quotes)."""
    return re.sub(r"([\\`*_\[\]<>#|])", r"\\\1", text)


def _fail(err: BaseException):
    """A user error: one line in the status and in a pop-up, as `ui3d generate` prints it."""
    message = one_line(err)
    yield _update(status=f"**error:** {_markdown_text(message)}")
    raise gr.Error(message, title="ui3d generate", duration=None, print_exception=False)


def _session(request: gr.Request | None) -> str | None:
    return request.session_hash if request is not None else None


class Demo:
    """The page's callbacks, bound to an output folder and the server's fixed settings."""

    def __init__(self, out_root: Path, overrides: Sequence[str], formats: tuple[str, ...], device: str | None,
                 cache_dir: Path | None = None):
        self.out_root, self.overrides, self.formats, self.device = out_root, tuple(overrides), formats, device
        self.cache_dir = cache_dir
        self.runs: dict[str | None, Run] = {}  # session -> its current run, for its Stop button

    def generate(self, prompt, negative_prompt, teacher, backend, guidance, divergence, preset, steps, seed,
                 request: gr.Request, progress=gr.Progress()):
        """One generation, updating the page every second; a user error ends it as one line."""
        settings = Settings(prompt, negative_prompt, teacher, backend, guidance, divergence, preset, steps, seed)
        try:
            cfg = build_config(settings, self.overrides, self.device)
            run_dir = _fresh_folder(run_folder(self.out_root, cfg.prompt, cfg.seed))
            check_generate_run(cfg, run_dir, resume=False)
        except (UserError, OSError) as err:
            if not is_user_error(err):
                raise
            yield from _fail(err)
            return
        run = Run(cfg, run_dir, self.formats, self.cache_dir)
        self.runs[_session(request)] = run
        run.start()
        try:
            yield from self._follow(run, progress)
        finally:
            run.stop.set()  # a visitor who leaves still gets a checkpoint and an export
            run.thread.join()
            self.runs.pop(_session(request), None)

    def _follow(self, run: Run, progress):
        # (the plot is cleared with None: an empty frame would fix its colours before any data came)
        yield _update(status=_status(run), preview=None, losses=None, video=None, metrics=None, downloads=None)
        shown = None
        while run.thread.is_alive():
            run.thread.join(POLL_SECONDS)
            progress((run.step, run.cfg.steps), desc=run.stage, unit="steps")
            fresh, shown = (run.preview if run.preview != shown else None), run.preview
            yield _update(status=_status(run), **({"losses": _loss_frame(run.losses)} if run.losses else {}),
                          **({"preview": str(fresh)} if fresh else {}))
        if run.error is not None and is_user_error(run.error):
            yield from _fail(run.error)
        if run.error is not None:
            raise run.error  # a bug: Gradio logs the traceback and shows the page an error
        yield _update(losses=_loss_frame(run.losses), **_results(run))

    def stop(self, request: gr.Request) -> str:
        run = self.runs.get(_session(request))
        if run is None:
            return "nothing is running"
        run.stop.set()
        return "**stopping:** saving a checkpoint, then exporting…"


def _viewers(paths: dict):
    """The 3D viewers. Filled by a plain event after the run, not by the generator: Gradio's
    Model3D never starts its viewer for a value that a generator sends."""
    return paths["mesh"], gr.update(value=paths["splats"], visible=paths["splats"] is not None)


def _clear_viewers():
    return None, gr.update(value=None, visible=False)


def _preset_steps(preset: str) -> int:
    """The steps a preset runs, shown in the Steps box when the preset is picked."""
    return build_config(Settings("a ceramic owl", preset=preset)).steps


def build_demo(out_root: str | Path = OUT_ROOT, overrides: Sequence[str] = (), formats: tuple[str, ...] = FORMATS,
               device: str | None = None, cache_dir: str | Path | None = None) -> gr.Blocks:
    """The page, not launched. `overrides` (key=value) apply to every run after the page's settings;
    `formats` are the exports (the tests leave out the slow video); `cache_dir`: ui3d's cache folder
    (default: the user's, see ui3d.prompt.embeddings.cache_root)."""
    demo_fns = Demo(Path(out_root), overrides, formats, device, prompt_cache_dir(cache_dir))
    with gr.Blocks(title="ui3d: text to 3D") as demo:
        gr.Markdown("# ui3d: text to 3D\nType a prompt, press **Run**, watch the object form, download it.")
        with gr.Row():
            with gr.Column(scale=2):
                prompt = gr.Textbox(label="Prompt", value=EXAMPLES[0], elem_id="prompt")
                negative = gr.Textbox(label="Negative prompt")
                with gr.Row():
                    teacher = gr.Dropdown(["builtin", "sd"], value=default_teacher_spec(), label="Teacher",
                                          allow_custom_value=True, info="or a hub id / local folder")
                    backend = gr.Radio(["nerf", "gaussians"], value="nerf", label="Backend")
                with gr.Row():
                    guidance = gr.Dropdown(list(GUIDANCE_PRESETS), value="uni-instruct", label="Guidance")
                    divergence = gr.Dropdown([("preset's", ""), *((d, d) for d in DIVERGENCES)], value="",
                                             label="Divergence", allow_custom_value=True)
                with gr.Row():
                    preset = gr.Radio(["fast", "quality"], value="fast", label="Preset")
                    steps = gr.Number(label="Steps", value=_preset_steps("fast"), precision=0)
                    seed = gr.Number(label="Seed", value=0, precision=0)
                with gr.Row():
                    run_btn = gr.Button("Run", variant="primary", elem_id="run")
                    stop_btn = gr.Button("Stop", variant="stop", elem_id="stop")
                gr.Examples([[p] for p in EXAMPLES], inputs=[prompt], label="Built-in prompts")
            with gr.Column(scale=3):
                status = gr.Markdown("Ready.", elem_id="status")
                # Gradio's own tracker lives here: the progress bar, the place in the queue, errors.
                tracker = gr.Markdown("", elem_id="progress", min_height=56)
                with gr.Row():
                    preview = gr.Image(label="Latest validation (RGB | normal | opacity)", type="filepath",
                                       elem_id="preview", height=320)
                    losses = gr.LinePlot(x="step", y="value", color="series", label="Loss", height=320)
                with gr.Row():
                    mesh = gr.Model3D(label="Mesh (.glb)", elem_id="mesh", height=360)
                    splats = gr.Model3D(label="Gaussian splats (.ply)", elem_id="splats", height=360, visible=False)
                with gr.Row():
                    video = gr.Video(label="Turntable", elem_id="video", height=320)
                    metrics = gr.JSON(label="Metrics", height=320)
                downloads = gr.File(label="Downloads: .glb, .obj zip, Gaussian .ply", file_count="multiple")
        viewers = gr.State()
        outputs = [status, preview, losses, video, metrics, downloads, viewers]
        inputs = [prompt, negative, teacher, backend, guidance, divergence, preset, steps, seed]
        preset.change(_preset_steps, preset, steps, queue=False, show_progress="hidden")
        run_btn.click(_clear_viewers, None, [mesh, splats], queue=False, show_progress="hidden").then(
            demo_fns.generate, inputs, outputs, api_name="generate", show_progress_on=[tracker]).success(
            _viewers, viewers, [mesh, splats], queue=False, show_progress="hidden")
        # Not limited by the one-run queue: Stop must reach the run it stops.
        stop_btn.click(demo_fns.stop, None, status, api_name="stop", concurrency_limit=None)
    demo.queue(default_concurrency_limit=1)
    return demo


def launch(demo: gr.Blocks, out_root: str | Path, host: str, port: int | None, **kwargs):
    """Serve `demo`; files are served from `out_root` only."""
    Path(out_root).mkdir(parents=True, exist_ok=True)
    return demo.launch(server_name=host, server_port=port, allowed_paths=[str(Path(out_root).resolve())],
                       show_error=True, **kwargs)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="The ui3d web demo.")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (0.0.0.0 serves every interface)")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--out", default=str(OUT_ROOT), help="run folders go here; the only folder served")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cuda" if torch.cuda.is_available() else None)
    p.add_argument("--cache-dir", help=CACHE_HELP)
    p.add_argument("overrides", nargs="*", help="key=value config overrides for every run")
    args = p.parse_args(argv)
    # Gradio's copies of served files go inside the output folder too (before any component exists).
    os.environ.setdefault("GRADIO_TEMP_DIR", str(Path(args.out).resolve() / ".gradio"))
    remove_stale_temp_files(args.out)  # left by a demo killed while it wrote
    launch(build_demo(args.out, args.overrides, device=args.device, cache_dir=args.cache_dir), args.out, args.host, args.port)


if __name__ == "__main__":
    main()
