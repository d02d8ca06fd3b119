"""Writers: textured .obj (+ .mtl + .png, vertex colours in the ``v`` lines as well), vertex-colour
.glb and .ply meshes, and the standard 3DGS Gaussian .ply. Every file is written atomically (a
temp file in the same folder, then renamed), so a reader never sees a half-written export."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch

from ui3d.export.mesh import Mesh
from ui3d.export.texture import TexturedMesh
from ui3d.io import atomic_write_bytes, atomic_write_text

__all__ = [
    "write_obj",
    "write_glb",
    "write_mesh_ply",
    "write_gaussian_ply",
    "read_gaussian_ply",
    "SH_C0",
]

SH_C0 = 0.28209479177387814  # degree-0 spherical harmonic: rgb = 0.5 + SH_C0 * f_dc


def write_obj(mesh: TexturedMesh, path: str | Path) -> list[Path]:
    """``name.obj`` + ``name.mtl`` + ``name.png``; returns the three paths."""
    from PIL import Image

    path = Path(path)
    mtl, png = path.with_suffix(".mtl"), path.with_suffix(".png")
    buf = io.BytesIO()
    Image.fromarray(mesh.image).save(buf, format="PNG")
    atomic_write_bytes(png, buf.getvalue())
    atomic_write_text(
        mtl,
        f"newmtl albedo\nKa 1.000 1.000 1.000\nKd 1.000 1.000 1.000\nKs 0.000 0.000 0.000\nillum 1\nmap_Kd {png.name}\n",
    )
    v = np.concatenate([mesh.vertices, np.clip(mesh.colours, 0, 1)], 1)
    lines = [f"# ui3d export: {len(mesh.vertices)} vertices, {len(mesh.faces)} faces", f"mtllib {mtl.name}", "usemtl albedo"]
    lines += [f"v {a:.6f} {b:.6f} {c:.6f} {r:.4f} {g:.4f} {bb:.4f}" for a, b, c, r, g, bb in v]
    lines += [f"vt {u:.6f} {t:.6f}" for u, t in mesh.uv]
    f1 = mesh.faces + 1
    lines += [f"f {a}/{a} {b}/{b} {c}/{c}" for a, b, c in f1]
    atomic_write_text(path, "\n".join(lines) + "\n")
    return [path, mtl, png]


def write_glb(mesh: Mesh, path: str | Path) -> Path:
    """Binary glTF with per-vertex colours (COLOR_0)."""
    path = Path(path)
    data = mesh.to_trimesh().export(file_type="glb")
    return atomic_write_bytes(path, data)


def write_mesh_ply(mesh: Mesh, path: str | Path) -> Path:
    path = Path(path)
    return atomic_write_bytes(path, mesh.to_trimesh().export(file_type="ply"))


# --- Gaussians ----------------------------------------------------------------------------------

_GAUSSIAN_FIELDS = (
    ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
    + [f"f_rest_{i}" for i in range(45)]
    + ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
)


def write_gaussian_ply(scene, path: str | Path) -> Path:
    """The standard 3DGS layout (binary little-endian float32: position, normal (zeros), f_dc,
    45 f_rest (zeros: degree-0 colours), opacity logit, log-scales, rotation (w, x, y, z))."""
    path = Path(path)
    with torch.no_grad():
        rgb = torch.sigmoid(scene.colour_logits).cpu().numpy()
        n = rgb.shape[0]
        cols = {
            "xyz": scene.means.cpu().numpy(),
            "f_dc": (rgb - 0.5) / SH_C0,
            "opacity": scene.opacity_logits.cpu().numpy()[:, None],
            "scale": scene.log_scales.cpu().numpy(),
            "rot": torch.nn.functional.normalize(scene.quats, dim=-1).cpu().numpy(),
        }
    data = np.concatenate(
        [cols["xyz"], np.zeros((n, 3)), cols["f_dc"], np.zeros((n, 45)), cols["opacity"], cols["scale"], cols["rot"]], 1
    ).astype("<f4")
    header = "ply\nformat binary_little_endian 1.0\n" f"element vertex {n}\n"
    header += "".join(f"property float {name}\n" for name in _GAUSSIAN_FIELDS) + "end_header\n"
    return atomic_write_bytes(path, header.encode("ascii") + data.tobytes())


def read_gaussian_ply(path: str | Path) -> dict[str, np.ndarray]:
    """Read a 3DGS .ply (any property order; float32): means, log_scales, quats, opacity_logits,
    colours (rgb from f_dc)."""
    raw = Path(path).read_bytes()
    end = raw.find(b"end_header\n")
    if not raw.startswith(b"ply") or end < 0:
        raise ValueError(f"gaussian ply: {path} is not a PLY file")
    header = raw[:end].decode("ascii").splitlines()
    if "format binary_little_endian 1.0" not in header:
        raise ValueError(f"gaussian ply: {path}: only binary little-endian PLY is supported")
    n = next(int(line.split()[2]) for line in header if line.startswith("element vertex"))
    names = [line.split()[2] for line in header if line.startswith("property float")]
    arr = np.frombuffer(raw[end + len(b"end_header\n"):], dtype="<f4", count=n * len(names)).reshape(n, len(names))
    col = {name: arr[:, i] for i, name in enumerate(names)}
    stack = lambda *k: np.stack([col[x] for x in k], -1)  # noqa: E731
    return {
        "means": stack("x", "y", "z"),
        "log_scales": stack("scale_0", "scale_1", "scale_2"),
        "quats": stack("rot_0", "rot_1", "rot_2", "rot_3"),
        "opacity_logits": col["opacity"].copy(),
        "colours": 0.5 + SH_C0 * stack("f_dc_0", "f_dc_1", "f_dc_2"),
    }
