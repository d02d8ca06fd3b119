"""Proof without a teacher: fit a 3D backend by photometric loss to rendered views of a built-in
world object, export its mesh and measure it against the ground truth.

Targets are the world's analytic renders (32 random views at 96x96 by default, one ray per pixel
centre, so a scene rendered the same way can match them exactly) with the world's matte
shading divided out, i.e. albedo images: the world renderer shades
``albedo * (ambient + diffuse * max(n . l, 0))`` with known normals and light, so the division is
exact where the shading is not clipped. The scene renders albedo over a random background colour
per ray / view (the target is composited over the same colour), so empty space must be
transparent. The loss is L1. NeRF trains on random rays drawn from all views, Gaussians on whole
views.

Also a benchmark: ``python -m systems.photometric_fit --backend nerf --object cube`` prints seconds
per step, peak memory and the exported mesh's IoU / Chamfer / colour error as JSON;
``--bench-step --size 64`` times one training step on 4 whole views.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from dataclasses import dataclass, field

import torch
from torch import Tensor

from systems.base import run_loop
from ui3d.cameras import CameraRanges, Cameras, camera_rays, sample_random_cameras
from ui3d.export.mesh import ExtractConfig, Mesh, extract_mesh
from ui3d.metrics.geometry import evaluate_mesh
from ui3d.scene.base import Scene, SceneTraining, build_optimiser, build_scene
from ui3d.world import make_object, render_world
from ui3d.world.objects import WorldObject
from ui3d.world.palette import material as get_material

__all__ = ["FitConfig", "FitResult", "albedo_targets", "make_scene", "fit", "benchmark_step", "main"]


@dataclass(frozen=True)
class FitConfig:
    backend: str = "nerf"  # nerf | gaussians
    object: str = "cube"
    colour: str | None = None
    views: int = 32
    size: int = 96  # of the target views; one ray per pixel centre, no anti-aliasing
    steps: int | None = None  # None: 400 for the NeRF (4096 rays a step), 800 for Gaussians (one view a step)
    rays_per_step: int = 4096  # NeRF: random rays over all views
    views_per_step: int = 1  # Gaussians: whole views
    seed: int = 0
    lr: float = 1e-2  # NeRF; Gaussians use their GaussianConfig learning rates
    occupancy_every: int = 16
    extract_resolution: int = 64
    eval_resolution: int = 64
    cameras: CameraRanges = field(default_factory=lambda: CameraRanges(elevation_deg=(-30.0, 70.0)))
    gaussians: int = 2000
    densify_every: int = 100
    densify_until: int = 600

    @property
    def num_steps(self) -> int:
        return self.steps if self.steps is not None else (800 if self.backend == "gaussians" else 400)

    @property
    def training(self) -> SceneTraining:
        """Adam with torch's default betas (this fit's numbers in docs/backends.md were measured so)."""
        return SceneTraining(lr=self.lr, betas=(0.9, 0.999), occupancy_every=self.occupancy_every,
                             densify_every=self.densify_every, densify_until=self.densify_until)


@dataclass
class FitResult:
    scene: Scene
    mesh: Mesh
    metrics: dict[str, float]
    seconds_per_step: float
    peak_rss_mb: float
    final_loss: float


def albedo_targets(obj: WorldObject, cams: Cameras, ss: int = 1) -> tuple[Tensor, Tensor]:
    """Premultiplied albedo [B, H, W, 3] and alpha [B, H, W, 1] of the world's renders."""
    out = render_world(obj, cams, background=0.0, ss=ss)
    mat = get_material(obj.material)
    origins, dirs = camera_rays(cams)
    points = origins + out.depth * dirs
    to_light = torch.nn.functional.normalize(cams.light_pos[:, None, None, :] - points, dim=-1)
    lambert = (out.normal * to_light).sum(-1, keepdim=True).clamp_min(0.0)
    light = mat.ambient + mat.diffuse * lambert
    covered = out.alpha > 0
    albedo = torch.where(covered, out.rgb / out.alpha.clamp_min(1e-6) / light.clamp_min(1e-3), torch.zeros_like(out.rgb))
    return albedo.clamp(0, 1) * out.alpha, out.alpha


def make_scene(cfg: FitConfig, generator: torch.Generator) -> Scene:
    """The backend's default scene; Gaussians start with ``cfg.gaussians`` of them."""
    overrides = {"gaussians": {"num_init": cfg.gaussians}}  # of each backend's defaults
    return build_scene(cfg.backend, overrides.get(cfg.backend), generator)


@dataclass
class FitState:
    opt: torch.optim.Optimizer
    step: int = 0
    log: list = field(default_factory=list)


def fit(cfg: FitConfig) -> FitResult:
    gen = torch.Generator().manual_seed(cfg.seed)
    obj = make_object(cfg.object, cfg.colour)
    cams = sample_random_cameras(cfg.views, cfg.size, cfg.cameras, generator=gen)
    target_pm, target_alpha = albedo_targets(obj, cams)
    scene = make_scene(cfg, gen)
    state = FitState(build_optimiser(scene, cfg.training))
    start = time.perf_counter()
    origins, dirs = (t.reshape(-1, 3) for t in camera_rays(cams))
    flat_pm, flat_alpha = target_pm.reshape(-1, 3), target_alpha.reshape(-1, 1)

    def step() -> dict:
        if cfg.backend == "nerf":  # random rays of all views; Gaussians render whole views
            idx = torch.randint(0, origins.shape[0], (cfg.rays_per_step,), generator=gen)
            bg = torch.rand(len(idx), 3, generator=gen)
            out = scene.render_rays(origins[idx], dirs[idx], generator=gen)
            rgb = out["albedo"] + bg * (1.0 - out["opacity"])
            target = flat_pm[idx] + bg * (1.0 - flat_alpha[idx])
        else:
            idx = torch.randperm(cfg.views, generator=gen)[: cfg.views_per_step]
            bg = torch.rand(len(idx), 3, generator=gen)
            rgb = scene.render(cams[idx], generator=gen, background=bg).rgb
            target = target_pm[idx] + bg[:, None, None, :] * (1.0 - target_alpha[idx])
        loss = (rgb - target).abs().mean()
        state.opt.zero_grad(set_to_none=True)
        loss.backward()
        state.opt.step()
        if scene.maintain(state.step, cfg.training, gen):
            state.opt = build_optimiser(scene, cfg.training)
        return {"step": state.step, "loss": float(loss.detach())}

    run_loop(state, cfg.num_steps, step, progress=False, desc="fit")
    losses = [row["loss"] for row in state.log]
    seconds = (time.perf_counter() - start) / max(cfg.num_steps, 1)
    scene.eval()
    mesh = extract_mesh(scene, ExtractConfig(resolution=cfg.extract_resolution))
    metrics = evaluate_mesh(mesh.vertices, mesh.faces, mesh.colours, obj, cfg.eval_resolution).as_dict()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return FitResult(scene, mesh, metrics, seconds, rss, sum(losses[-10:]) / max(len(losses[-10:]), 1))


def benchmark_step(backend: str, size: int, views: int = 4, repeats: int = 5, seed: int = 0) -> dict[str, float]:
    """Median seconds of one training step (render ``views`` whole views at ``size``^2, L1 loss,
    backward, Adam) on a freshly initialised scene after a warm-up step, and the peak RSS."""
    gen = torch.Generator().manual_seed(seed)
    cfg = FitConfig(backend=backend)
    scene = make_scene(cfg, gen)
    scene.maintain(0, cfg.training, gen)  # the NeRF's first occupancy grid
    opt = build_optimiser(scene, cfg.training)
    cams = sample_random_cameras(views, size, cfg.cameras, generator=gen)
    target = torch.rand(views, size, size, 3, generator=gen)
    times = []
    for i in range(repeats + 1):
        start = time.perf_counter()
        out = scene.render(cams, generator=gen, background=torch.ones(views, 3))
        loss = (out.rgb - target).abs().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i:
            times.append(time.perf_counter() - start)
    times.sort()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return {"seconds_per_step": times[len(times) // 2], "peak_rss_mb": rss}


def _save_outputs(res: FitResult, cfg: FitConfig, out: str) -> None:
    """Scene folder, mesh export and preview.png (rows: scene render, truth, exported mesh)."""
    from pathlib import Path

    from ui3d.cameras import orbit_cameras
    from ui3d.export.preview import render_mesh
    from ui3d.export.scene import ExportOptions, export_scene
    from ui3d.images import save_grid
    from ui3d.scene import save_scene

    out_dir = Path(out)
    save_scene(res.scene, out_dir / "scene")
    export_scene(res.scene, out_dir / "export", ExportOptions(formats=("obj", "glb", "ply")))
    cams = orbit_cameras(4, 96, elevation_deg=25.0)
    with torch.no_grad():
        scene_rgb = res.scene.render(cams, background=torch.ones(3)).rgb
    truth = render_world(make_object(cfg.object, cfg.colour), cams).rgb
    mesh = torch.from_numpy(render_mesh(res.mesh.vertices, res.mesh.faces, res.mesh.colours, cams))
    rows = torch.cat([scene_rgb, truth, mesh])  # rows: scene, truth, mesh; a view a column
    save_grid(rows.permute(0, 3, 1, 2), out_dir / "preview.png", columns=len(cams), scale=1)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backend", default="nerf", choices=["nerf", "gaussians"])
    p.add_argument("--object", default="cube")
    p.add_argument("--steps", type=int, default=None, help="default: 400 (nerf), 800 (gaussians)")
    p.add_argument("--size", type=int, default=FitConfig.size)
    p.add_argument("--views-per-step", type=int, default=FitConfig.views_per_step)
    p.add_argument("--rays-per-step", type=int, default=FitConfig.rays_per_step)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--bench-step", action="store_true", help="only time training steps of 4 views at --size")
    p.add_argument("--out", default=None, help="save the scene, its export and a preview PNG here")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.bench_step:
        res = benchmark_step(args.backend, args.size)
        print(json.dumps({"backend": args.backend, "size": args.size, "views": 4, **{k: round(v, 4) for k, v in res.items()}}))
        return 0
    cfg = FitConfig(
        backend=args.backend, object=args.object, steps=args.steps, size=args.size,
        views_per_step=args.views_per_step, rays_per_step=args.rays_per_step, seed=args.seed,
    )
    res = fit(cfg)
    if args.out:
        _save_outputs(res, cfg, args.out)
    print(json.dumps({
        "backend": cfg.backend, "object": cfg.object, "steps": cfg.num_steps, "size": cfg.size,
        "seconds_per_step": round(res.seconds_per_step, 4), "peak_rss_mb": round(res.peak_rss_mb, 1),
        "final_loss": res.final_loss, "faces": int(len(res.mesh.faces)), "threshold": res.mesh.threshold,
        **{k: round(v, 4) for k, v in res.metrics.items()},
    }))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
