"""`ui3d generate`: text-to-3D with Uni-Instruct guidance; SDS and VSD are guidance presets.

A thin orchestrator: random cameras → scene.render → teacher.encode → Guidance (the object image
distillation calls too) → step on the scene; then a fake-score (LoRA + discriminator) step.
Checkpoints are written atomically every `checkpoint_every` steps and on Ctrl+C; `resume` continues
a run folder from its last checkpoint.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import torch

from systems.base import NonFiniteWatch, format_postfix, load_checkpoint, run_loop, save_checkpoint, write_csv
from ui3d.cameras import CameraRanges, camera_rays, orbit_cameras, sample_random_cameras
from ui3d.config import dump_yaml, to_dict
from ui3d.diffusion import ALL_TIMESTEPS, sample_vp_noise
from ui3d.export.mesh import ExtractConfig
from ui3d.guidance import GUIDANCE_PRESETS, Guidance, GuidanceConfig
from ui3d.guidance.fake import LoRAFakeScore, camera_condition
from ui3d.guidance.levels import vp_levels
from ui3d.prompt.embeddings import PromptEmbeddings, encode_prompt
from ui3d.prompt.views import VIEWS, view_ids, view_prompts
from ui3d.render.shading import pick_shading
from ui3d.scene.base import Scene, SceneTraining, build_optimiser, build_scene
from ui3d.scene.gaussians import GaussianConfig
from ui3d.scene.nerf import NeRFConfig
from ui3d.teachers.protocol import Conditioning

CHECKPOINT = "checkpoint.pt"


@dataclass(frozen=True)
class TextTo3DConfig:
    prompt: str = "a ceramic owl"
    negative_prompt: str = ""
    teacher: str = "builtin"  # builtin | FILE.safetensors | exact-view | exact-camera | sd | a hub id | a local folder
    teacher_camera: bool = True  # a camera-conditioned teacher sees each render's camera; False: text (and view
    # prompt) only, as Stable Diffusion, which measures what the camera buys
    backend: Literal["nerf", "gaussians"] = "nerf"
    guidance: GuidanceConfig = field(default_factory=lambda: GUIDANCE_PRESETS["uni-instruct"])
    steps: int = 400
    seed: int = 0
    device: str = "cpu"
    cpu_threads: int = 1  # torch intra-op threads on a CPU (0: torch's default). On 2 cores two threads
    # were 10-50x slower whenever another process was busy (ui3d/world/threads.py); one is predictable.
    resolution: int = 32  # render size per view
    views_per_step: int = 4
    scene_lr: float = 1e-2  # NeRF; Gaussians use gaussians.lr_*
    fake_lr: float = 1e-3
    fake_steps: int = 1  # fake-score updates per scene step (the same renders, fresh noise each); 4 did not stop
    # exact mode fogging (docs/benchmarks.md, "Exact mode in 3D")
    grad_clip: float = 1.0  # max gradient norm of the scene's parameters; 0 = off
    albedo_warmup: int = 50  # steps of albedo shading before random lambertian / textureless (fast preset)
    textureless_prob: float | None = None  # None: the teacher's own (teacher_textureless_prob)
    real_samples_per_view: int = 4  # teacher samples per view prompt: the discriminator's "real" data (0: r = 1)
    real_sample_steps: int = 20
    validate_every: int = 100
    checkpoint_every: int = 100
    max_bad_steps: int = 20
    check_teacher: bool = True  # built-in teacher: judge its samples of the prompt first (warns; ~5 s)
    occupancy_every: int = 16  # NeRF: refresh the occupancy grid (empty space is not sampled)
    densify_every: int = 50  # Gaussians: densify and prune every N steps ...
    densify_until: int = 250  # ... before this step
    lambda_sparsity: float = 0.0  # mean opacity: fewer floaters
    lambda_opacity: float = 0.0  # binary entropy of the opacity: crisp silhouettes
    lambda_orient: float = 0.0  # DreamFusion's orientation loss: normals facing away from the camera
    camera: CameraRanges = field(default_factory=CameraRanges)
    nerf: NeRFConfig = field(default_factory=NeRFConfig)
    gaussians: GaussianConfig = field(default_factory=GaussianConfig)
    export: ExtractConfig = field(default_factory=ExtractConfig)  # the mesh: grid resolution, carving views, faces

    def __post_init__(self) -> None:
        if not self.prompt.strip():
            raise ValueError('the prompt is empty; describe the object, e.g. "a ceramic owl"')
        if self.guidance.guidance_scale is None:  # the teacher's own CFG; config.yaml records the number
            from ui3d.teachers.loading import teacher_guidance_scale

            scale = teacher_guidance_scale(self.teacher)
            object.__setattr__(self, "guidance", replace(self.guidance, guidance_scale=scale))
        if self.textureless_prob is None:  # likewise the teacher's own; config.yaml records it
            from ui3d.teachers.loading import teacher_textureless_prob

            object.__setattr__(self, "textureless_prob", teacher_textureless_prob(self.teacher))
        for name in ("steps", "resolution", "views_per_step", "validate_every", "checkpoint_every", "max_bad_steps",
                     "occupancy_every", "densify_every", "fake_steps"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)}")
        from ui3d.config import FieldValueError, check_ranges

        # Upper bounds: a typo must not hang the machine or exhaust its memory.
        check_ranges(self, resolution=(1, 1024), views_per_step=(1, 64), real_samples_per_view=(0, 64),
                     fake_steps=(1, 100), real_sample_steps=(1, 1000), cpu_threads=(0, 1024), scene_lr=(0, None), fake_lr=(0, None),
                     grad_clip=(0, None), textureless_prob=(0, 1), albedo_warmup=(0, None), densify_until=(0, None),
                     lambda_sparsity=(0, None), lambda_opacity=(0, None), lambda_orient=(0, None))
        rays = self.views_per_step * self.resolution**2
        if rays > 1 << 20:
            raise FieldValueError("views_per_step", f"{self.views_per_step} views of {self.resolution}² pixels are {rays} rays "
                                  f"a step; at most {1 << 20} (e.g. 4 views of 512²)")
        for name in ("prompt", "negative_prompt"):
            if len(getattr(self, name)) > 1000:
                raise FieldValueError(name, f"{len(getattr(self, name))} characters; at most 1000 (a text encoder reads "
                                      "the first 77 tokens)")
        if not self.teacher_camera and self.teacher == "exact-camera":
            raise FieldValueError("teacher_camera", "the exact-camera teacher is the true render at each camera; "
                                  "it needs the cameras (use --teacher exact-view for a text-only oracle)")
        if self.guidance.fake_score == "noise" and self.guidance.divergence != "rkl":
            raise FieldValueError("guidance.divergence", f"'{self.guidance.divergence}' has no effect with fake_score "
                                  "'noise' (the sds guidance): its fake score is the noise itself, so every divergence "
                                  "is SDS scaled by h(1); use --guidance vsd or uni-instruct to choose a divergence")


@dataclass
class Job:
    """Everything a run holds between steps; rebuilt from a checkpoint on resume."""

    cfg: TextTo3DConfig
    teacher: object
    embeddings: PromptEmbeddings
    scene: torch.nn.Module
    guidance: Guidance
    opt_scene: torch.optim.Optimizer
    opt_fake: torch.optim.Optimizer | None
    x_real: torch.Tensor | None  # [len(VIEWS), n, ...] teacher samples per view, or None
    generator: torch.Generator
    step: int = 0
    log: list = field(default_factory=list)
    teacher_recognition: float | None = None  # see teacher_recognition()


def teacher_samples(teacher, cfg: TextTo3DConfig, cache_dir: Path | None = None) -> torch.Tensor | None:
    """The discriminator's real data: the teacher's own samples of each view prompt, in its space at
    the size of the run's renders ([len(VIEWS), n, ...]), drawn once before training with their own
    seed (a cached and a fresh draw are the same), for every teacher (Stable Diffusion's are
    latents). A teacher that takes cameras (unless ``teacher_camera`` is off) samples each view prompt
    at cameras of that view. None when ``real_samples_per_view`` is 0: then the ratio is 1 exactly."""
    from ui3d.teachers.sampling import cached_samples
    from ui3d.world.dataset import view_cameras

    n = cfg.real_samples_per_view
    if n == 0:
        return None
    with torch.no_grad():  # the shape of a render in the teacher's space (VAE latents for SD)
        shape = tuple(teacher.encode(torch.zeros(1, 3, cfg.resolution, cfg.resolution)).shape[1:])
    per_view = []
    with_camera = teacher.takes_camera and cfg.teacher_camera
    for k, (view, prompt) in enumerate(zip(VIEWS, view_prompts(cfg.prompt))):
        seed = cfg.seed * len(VIEWS) + k  # one seed per view: a cache hit leaves the other views' draws alone
        cameras = view_cameras(view, n, cfg.resolution, torch.Generator().manual_seed(seed)) if with_camera else None
        per_view.append(cached_samples(teacher, [prompt] * n, shape, cfg.real_sample_steps, cfg.guidance.guidance_scale,
                                       seed, cameras, cache_dir))
    return torch.stack(per_view)


RECOGNITION_SAMPLES = 8


def teacher_recognition(teacher, prompt: str, seed: int) -> float | None:
    """The fraction of the built-in teacher's own samples for ``prompt`` (DDIM 20 steps, CFG 4) in
    which the judge recognises the prompt's object; None for other teachers or prompts outside the
    built-in world. Guidance cannot draw what the teacher cannot: the teacher v1's samples of "a
    ceramic owl" were noise (the judge recognised 1 of 8; v2 draws it, 8 of 8), and the first v2's
    of "a gray mug" were rarely mugs (1 of 8; v2 + harmonics: 7 of 8, its weakest found
    "a pink mug", 3 of 8): a low value warns early."""
    from ui3d.teachers.builtin import BuiltinTeacher

    if not isinstance(teacher, BuiltinTeacher):  # the judge knows the built-in world; oracles need no check
        return None
    from ui3d.metrics.judge import Judge
    from ui3d.teachers.sampling import sample_images

    subject = world_subject(prompt)
    if subject is None:
        return None
    g = torch.Generator().manual_seed(seed)
    images = sample_images(teacher, [prompt] * RECOGNITION_SAMPLES, steps=20, cfg=4.0, generator=g)
    names = Judge.load().predict(images * 2.0 - 1.0)["object"]
    return sum(n == subject.name for n in names) / len(names)


RESULT_VIEWS = 16


def grey_albedo(scene) -> Callable:
    """``render(cameras) -> rgb [B, H, W, 3]`` of a scene in albedo on mid-grey, where a white object
    keeps its outline (the judge trained on such backgrounds too)."""
    grey = torch.full((3,), 0.5, device=scene.device)
    return lambda cams: scene.render(cams.to(scene.device), shading="albedo", background=grey, normals=False).rgb


def judged_orbit(render: Callable, judge):
    """16 orbit cameras (15° up, 32²) and the judge's verdicts (every head) on ``render(cameras)``."""
    cams = orbit_cameras(RESULT_VIEWS, 32, elevation_deg=15.0)
    with torch.no_grad():
        rgb = render(cams)
    return cams, judge.predict(rgb.permute(0, 3, 1, 2).cpu() * 2.0 - 1.0)


def judge_recognition(scene, subject, judge) -> float:
    """The fraction of 16 orbit renders of a result (:func:`grey_albedo`) in which the judge names the
    subject's object: whether the result looks like what was asked for."""
    names = judged_orbit(grey_albedo(scene), judge)[1]["object"]
    return sum(n == subject.name for n in names) / len(names)


def teacher_warning(job: Job) -> str | None:
    """One line for the user when the built-in teacher draws the prompt poorly (CLI and web demo)."""
    if job.teacher_recognition is None or job.teacher_recognition >= 0.5:
        return None
    return (f"the built-in teacher draws '{job.cfg.prompt}' poorly (the judge recognises "
            f"{job.teacher_recognition:.0%} of its samples), so expect a poor shape; a colour it knows "
            "well often helps, e.g. 'a blue mug' for 'a pink mug'")


def build_job(cfg: TextTo3DConfig, teacher, cache_dir: Path | None) -> Job:
    torch.manual_seed(cfg.seed)  # module initialisation; all sampling uses the job's generator
    g = torch.Generator().manual_seed(cfg.seed)
    embeddings = encode_prompt(teacher.encode_prompts, cfg.prompt, cfg.teacher, cfg.negative_prompt, cache_dir)
    scene_cfg = cfg.nerf if cfg.backend == "nerf" else cfg.gaussians
    scene = build_scene(cfg.backend, to_dict(scene_cfg), generator=g)
    fake = LoRAFakeScore(teacher.eps_network(), rank=cfg.guidance.lora_rank) if cfg.guidance.fake_score == "lora" else None
    x_real = teacher_samples(teacher, cfg, cache_dir) if cfg.guidance.uses_ratio else None
    # without real samples the discriminator never trains: its head must not weight the views
    guidance = Guidance.from_teacher(cfg.guidance, teacher, fake, ratio_available=x_real is not None)
    opt_scene = scene_optimiser(scene, cfg)
    opt_fake = torch.optim.AdamW(fake.trainable_parameters(), lr=cfg.fake_lr) if fake is not None else None
    return Job(cfg, teacher, embeddings, scene, guidance, opt_scene, opt_fake, x_real, g)


def scene_training(cfg: TextTo3DConfig) -> SceneTraining:
    """The run's settings for stepping its scene (fields of TextTo3DConfig, so presets and saved run
    configs keep their keys)."""
    return SceneTraining(lr=cfg.scene_lr, occupancy_every=cfg.occupancy_every, densify_every=cfg.densify_every,
                         densify_until=cfg.densify_until)


def scene_optimiser(scene: Scene, cfg: TextTo3DConfig) -> torch.optim.Optimizer:
    """Adam: the NeRF at scene_lr; Gaussians at their per-attribute rates (gaussians.lr_*)."""
    return build_optimiser(scene, scene_training(cfg))


def maintain_scene(job: Job) -> None:
    """After a scene step (job.step not yet advanced): the scene's upkeep (the NeRF's occupancy grid,
    the Gaussians' densification), then a new optimiser when its parameter set changed."""
    if job.scene.maintain(job.step, scene_training(job.cfg), job.generator):
        job.opt_scene = scene_optimiser(job.scene, job.cfg)


def regularisers(render, cams, cfg: TextTo3DConfig) -> dict[str, torch.Tensor]:
    """The weighted regularisers that are switched on (weight > 0), each a scalar."""
    terms = {}
    alpha = render.alpha
    if cfg.lambda_sparsity > 0:
        terms["sparsity"] = cfg.lambda_sparsity * alpha.mean()
    if cfg.lambda_opacity > 0:
        a = alpha.clamp(1e-5, 1 - 1e-5)
        terms["opacity"] = cfg.lambda_opacity * -(a * a.log() + (1 - a) * (1 - a).log()).mean()
    if cfg.lambda_orient > 0 and render.normal.requires_grad:
        _, dirs = camera_rays(cams)  # normals should not point along the viewing ray (away from the camera)
        facing_away = (render.normal * dirs).sum(-1, keepdim=True).clamp_min(0.0)
        terms["orient"] = cfg.lambda_orient * (alpha.detach() * facing_away.square()).sum() / alpha.detach().sum().clamp_min(1.0)
    return terms


def _fake_state(job: Job) -> dict:
    fake = job.guidance.fake
    return {} if fake is None else {n: p.detach() for n, p in fake.named_parameters() if p.requires_grad}


def checkpoint(job: Job, run_dir: Path) -> None:
    state = {
        "step": job.step, "scene": job.scene.state_dict(), "fake": _fake_state(job),
        "opt_scene": job.opt_scene.state_dict(), "rng": job.generator.get_state(), "log": job.log,
        "opt_fake": job.opt_fake.state_dict() if job.opt_fake is not None else {},
        "x_real": job.x_real if job.x_real is not None else torch.zeros(0),
    }
    save_checkpoint(run_dir / CHECKPOINT, state)


def restore(job: Job, run_dir: Path) -> None:
    state = load_checkpoint(run_dir / CHECKPOINT)
    job.scene.load_state_dict(state["scene"])
    job.opt_scene = scene_optimiser(job.scene, job.cfg)  # Gaussians may have been densified since the start
    job.opt_scene.load_state_dict(state["opt_scene"])
    if job.guidance.fake is not None:
        job.guidance.fake.load_state_dict(state["fake"], strict=False)
        job.opt_fake.load_state_dict(state["opt_fake"])
    job.generator.set_state(state["rng"])
    job.step, job.log = int(state["step"]), list(state["log"])
    job.x_real = state["x_real"] if state["x_real"].numel() else None


@contextlib.contextmanager
def _timed(row: dict, key: str) -> Iterator[None]:
    """Add the block's wall seconds to row[key] (the per-step time split in losses.csv)."""
    start = time.perf_counter()
    yield
    row[key] = row.get(key, 0.0) + time.perf_counter() - start


def train_step(job: Job, watch: NonFiniteWatch) -> dict:
    """One scene step and ``fake_steps`` fake-score steps; returns the log row (losses and the time split:
    t_render, t_guidance (teacher + fake score forward), t_backward, t_fake (the fake-score turn))."""
    cfg, g, step = job.cfg, job.generator, job.step
    row: dict = {"step": step}
    cams = sample_random_cameras(cfg.views_per_step, cfg.resolution, cfg.camera, g)
    shading = "albedo" if step < cfg.albedo_warmup else pick_shading(g, cfg.textureless_prob)
    with _timed(row, "t_render"):
        # albedo steps read no NeRF normals: they would be central differences, with no gradient
        render = job.scene.render(cams, shading=shading, generator=g, normals=shading != "albedo")
    with _timed(row, "t_guidance"):
        x = job.teacher.encode(render.rgb.permute(0, 3, 1, 2))
        cond, uncond = job.embeddings.for_cameras(cams.azimuth_deg, cams.elevation_deg)
        negative = job.embeddings.perp_negatives(cams.azimuth_deg, cams.elevation_deg) if cfg.guidance.perp_neg else None
        timesteps = cfg.guidance.timesteps()
        noise = sample_vp_noise(job.teacher.schedule, timesteps, x, g, step)
        teacher_cams = cams if cfg.teacher_camera else None
        conditioning = Conditioning(cond, uncond, negative, camera_condition(cams.c2w), cameras=teacher_cams)
        levels = vp_levels(job.teacher.schedule, timesteps, step) if cfg.guidance.mode == "by_parts" else None
        out = job.guidance.generator_loss(x, noise, conditioning, levels=levels)
    # the surrogate's value means little (a static surrogate is 0 by construction; its gradient is
    # the guidance): the divergence estimate, grad_norm and fake_loss are the numbers to watch
    row.update(surrogate=float(out.loss.detach()), divergence=float(out.divergence.mean()), shading=shading)
    terms = regularisers(render, cams, cfg)
    row.update({k: float(v.detach()) for k, v in terms.items()})
    loss = out.loss + sum(terms.values())
    if watch.ok(loss, step, "guidance"):
        with _timed(row, "t_backward"):
            job.opt_scene.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip > 0:
                row["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(job.scene.parameters(), cfg.grad_clip))
            job.opt_scene.step()
    maintain_scene(job)
    if job.guidance.fake is not None:
        with _timed(row, "t_fake"):
            for _ in range(cfg.fake_steps):
                _fake_turn(job, x.detach(), cond, cams, row, watch)
    return row


def _fake_turn(job: Job, x: torch.Tensor, cond: torch.Tensor, cams, row: dict, watch: NonFiniteWatch) -> None:
    """Denoising step of the LoRA fake score on the renders (+ its discriminator: renders vs the
    teacher's samples for the same view prompts)."""
    cfg, g = job.cfg, job.generator
    x_real = None
    if job.x_real is not None:
        views = view_ids(cams.azimuth_deg, cams.elevation_deg)
        pick = torch.randint(0, job.x_real.shape[1], (len(views),), generator=g)
        x_real = job.x_real[views, pick]
    dropped = camera_condition(cams.c2w, cfg.guidance.camera_dropout, g)
    noise = sample_vp_noise(job.teacher.schedule, ALL_TIMESTEPS, x, g)
    fake_losses = job.guidance.fake_score_loss(x, noise, Conditioning(cond, camera=dropped), x_real)
    row["fake_loss"] = float(fake_losses.denoising.loss.detach())
    if fake_losses.discriminator is not None:
        row["disc_loss"] = float(fake_losses.discriminator.loss.detach())
    if watch.ok(fake_losses.total, job.step, "fake-score"):
        job.opt_fake.zero_grad(set_to_none=True)
        fake_losses.total.backward()
        job.opt_fake.step()


PREVIEW_GREY = 0.5
# The progress bar's numbers: the divergence estimate w·h(r̄)·‖ȳ‖², the scene's gradient norm and the
# fake score's loss (the static surrogate's own value is 0 by design, which read as "broken").
PROGRESS_KEYS = ("divergence", "grad_norm", "fake_loss")


@torch.no_grad()
def validation_grid(job: Job, path: Path, views: int = 4) -> Path:
    """RGB | normal | opacity for `views` orbit cameras, one row each. The RGB is on a mid grey, so
    that white and black objects both show (on the scene's white a white owl was invisible)."""
    from ui3d.images import save_grid

    cams = orbit_cameras(views, 64, elevation_deg=15.0)
    r = job.scene.render(cams, shading="albedo", background=torch.full((3,), PREVIEW_GREY))
    normal = (r.normal * 0.5 + 0.5) * r.alpha
    tiles = torch.stack([r.rgb, normal, r.alpha.expand_as(r.rgb)], dim=1).flatten(0, 1)  # [3V, H, W, 3]
    return save_grid(tiles.permute(0, 3, 1, 2), path, columns=3, scale=1)


def train(job: Job, run_dir: Path, progress: bool = True, on_step: Callable[[Job, dict], None] | None = None,
          stop: threading.Event | None = None) -> bool:
    """Run to cfg.steps on the shared loop shell; returns False when stopped (Ctrl+C, SIGTERM or
    `stop`, each at a step boundary, after a checkpoint).

    `on_step(job, row)` is called after every step and its validation image (the web demo's
    progress); `stop` is checked before every step (its Stop button).
    """
    cfg = job.cfg
    watch = NonFiniteWatch(cfg.max_bad_steps)

    def after_step(row: dict) -> None:
        if job.step % cfg.validate_every == 0 or job.step == cfg.steps:
            validation_grid(job, run_dir / "validation" / f"step_{job.step:05d}.png")
        if on_step is not None:
            on_step(job, row)

    def save() -> None:
        checkpoint(job, run_dir)
        write_csv(run_dir / "losses.csv", job.log)

    return run_loop(job, cfg.steps, lambda: train_step(job, watch), save, checkpoint_every=cfg.checkpoint_every,
                    after_step=after_step, stop=stop, progress=progress, desc="generate",
                    postfix=lambda row: format_postfix(row, PROGRESS_KEYS))


def prepare(cfg: TextTo3DConfig, run_dir: Path, resume: bool, cache_dir: Path | None = None) -> Job:
    from ui3d.teachers.loading import load_teacher

    if cfg.device == "cpu" and cfg.cpu_threads > 0:
        torch.set_num_threads(cfg.cpu_threads)
    teacher = load_teacher(cfg.teacher, cfg.device, [cfg.prompt, cfg.negative_prompt, *view_prompts(cfg.prompt)])
    job = build_job(cfg, teacher, cache_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if resume:
        restore(job, run_dir)
    else:
        dump_yaml(cfg, run_dir / "config.yaml")
    if cfg.check_teacher:
        job.teacher_recognition = teacher_recognition(teacher, cfg.prompt, cfg.seed)
    return job


def timed_train(job: Job, run_dir: Path, progress: bool = True, **hooks) -> tuple[bool, float]:
    """`train` with its wall time; `hooks` are train's on_step / stop."""
    start = time.perf_counter()
    finished = train(job, run_dir, progress, **hooks)
    return finished, time.perf_counter() - start


def world_subject(prompt: str):
    """The built-in world object a prompt names, or None when it is not a built-in prompt."""
    from ui3d.world.captions import parse_prompt

    try:
        return parse_prompt(prompt).to_object()
    except ValueError:
        return None


def mesh_scores(mesh, subject) -> dict:
    """The exported mesh against a built-in world subject's ground truth, and the threshold it was cut at."""
    from ui3d.metrics.geometry import evaluate_mesh

    return {**evaluate_mesh(mesh.vertices, mesh.faces, mesh.colours, subject).as_dict(), "export_threshold": mesh.threshold}


def keep_mesh_region(scene, mesh, bound: float) -> float:
    """Cut the scene to the space within two 64³ cells of its mesh (``Scene.keep_region``): the
    floaters the mesh dropped go from the renders too. Returns the share removed."""
    from ui3d.export.mesh import MeshRegion

    return 1.0 - scene.keep_region(MeshRegion.from_mesh(mesh, bound).contains)


def finish(job: Job, run_dir: Path, wall_seconds: float, formats: tuple[str, ...] = ("obj", "glb", "ply", "video")) -> dict:
    """Save the scene, export meshes / video, write preview.png and metrics.json; returns the metrics.
    Once the mesh is made, the scene keeps only the space within two 64³ cells of it
    (``Scene.keep_region``, before it is saved), so the video, the .ply and the preview show the object
    without the floaters the mesh dropped. A .ply is written only for a scene that is splats
    (``metrics["files"]["ply"]``: its file)."""
    import math

    from ui3d.export.mesh import extract_mesh
    from ui3d.export.scene import ExportOptions, export_scene
    from ui3d.io import atomic_write_bytes, write_json
    from ui3d.scene.base import save_scene

    cfg = job.cfg
    if not job.scene.has_splats:  # a NeRF's .ply would only repeat its mesh
        formats = tuple(f for f in formats if f != "ply")
    options = ExportOptions(formats=formats, extract=cfg.export)
    needs_mesh = any(f in formats for f in ("obj", "glb"))
    try:
        mesh = extract_mesh(job.scene, options.extract) if needs_mesh else None  # once: export and metrics
    except BaseException:
        save_scene(job.scene, run_dir / "scene")  # a failed export (an empty scene) still keeps the scene
        raise
    removed = None
    if mesh is not None:  # renders, video, .ply and the saved scene show the mesh's object, not its floaters
        removed = keep_mesh_region(job.scene, mesh, options.extract.bound)
    save_scene(job.scene, run_dir / "scene")
    written = export_scene(job.scene, run_dir, options, mesh=mesh)
    grid = validation_grid(job, run_dir / "validation" / f"step_{job.step:05d}.png")
    atomic_write_bytes(run_dir / "preview.png", grid.read_bytes())
    metrics = {
        "prompt": cfg.prompt, "teacher": cfg.teacher, "backend": cfg.backend, "divergence": cfg.guidance.divergence,
        "mode": cfg.guidance.mode, "fake_score": cfg.guidance.fake_score, "steps": job.step,
        "wall_seconds": round(wall_seconds, 1), "nonfinite_steps": sum(1 for r in job.log if not math.isfinite(r["surrogate"])),
        "files": {k: [p.name for p in v] for k, v in written.items()},
    }
    if job.teacher_recognition is not None:
        metrics["teacher_recognition"] = job.teacher_recognition
    if removed is not None:  # NeRF: of the occupied cells; Gaussians: of the splats
        metrics["floaters_removed"] = round(removed, 4)
    subject = world_subject(cfg.prompt)
    if subject is not None and mesh is not None:
        from ui3d.metrics.judge import Judge

        metrics.update(mesh_scores(mesh, subject))
        metrics["judge_recognition"] = judge_recognition(job.scene, subject, Judge.load())
    write_json(run_dir / "metrics.json", metrics)
    return metrics
