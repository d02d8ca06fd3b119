"""Writers: textured .obj (+ .mtl + .png, vertex colours in the ``v`` lines as well), vertex-colour
.glb and .ply meshes, the standard 3DGS Gaussian .ply, and Gaussian splats in a .glb through the
Khronos ``KHR_gaussian_splatting`` extension. Every file is written atomically (a temp file in the
same folder, then renamed), so a reader never sees a half-written export.

ui3d's world is +z up with the object's front facing +x; glTF's is +y up with the front facing +z.
Both .glb writers keep the data in ui3d's coordinates and stand it up with the root node's rotation
(:data:`GLTF_FROM_WORLD`), so glTF viewers show the object upright and facing the viewer."""

from __future__ import annotations

import io
import json
import struct
from dataclasses import dataclass
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
    "Splats",
    "gaussian_splats",
    "splat_glb_bytes",
    "write_splat_glb",
    "GLTF_FROM_WORLD",
    "SPLAT_EXTENSION",
    "SH_C0",
]

SH_C0 = 0.28209479177387814  # degree-0 spherical harmonic: rgb = 0.5 + SH_C0 * f_dc

# World (+z up, front +x) -> glTF (+y up, front +z): x -> z, y -> x, z -> y, a proper rotation.
GLTF_FROM_WORLD = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
_ARRAY_BUFFER, _ELEMENT_ARRAY_BUFFER = 34962, 34963  # glTF bufferView targets: vertex data, indices


def _gltf_root_transform() -> np.ndarray:
    """The root node's 4x4 matrix: ui3d's world stood up in glTF's (no translation or scale)."""
    to_gltf = np.eye(4)
    to_gltf[:3, :3] = GLTF_FROM_WORLD
    return to_gltf


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


def _split_glb(raw: bytes) -> tuple[dict, bytes]:
    """The JSON and BIN chunks of a GLB (the inverse of :func:`_glb`)."""
    json_length = struct.unpack_from("<I", raw, 12)[0]
    bin_length = struct.unpack_from("<I", raw, 20 + json_length)[0]
    return json.loads(raw[20 : 20 + json_length]), raw[28 + json_length : 28 + json_length + bin_length]


def _glb(gltf: dict, binary: bytes) -> bytes:
    """A GLB container: 12-byte header, the JSON chunk (space-padded), the BIN chunk (zero-padded)."""
    text = json.dumps(gltf, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 4)
    binary += b"\0" * (-len(binary) % 4)
    chunks = struct.pack("<II", len(text), 0x4E4F534A) + text + struct.pack("<II", len(binary), 0x004E4942) + binary
    return struct.pack("<III", 0x46546C67, 2, 12 + len(chunks)) + chunks


def write_glb(mesh: Mesh, path: str | Path) -> Path:
    """Binary glTF with per-vertex colours (COLOR_0), stood up by its node (:data:`GLTF_FROM_WORLD`)."""
    import trimesh

    scene = trimesh.Scene()
    scene.add_geometry(mesh.to_trimesh(), node_name="mesh", transform=_gltf_root_transform())
    gltf, binary = _split_glb(scene.export(file_type="glb"))
    views, accessors = gltf["bufferViews"], gltf["accessors"]
    for primitive in gltf["meshes"][0]["primitives"]:
        views[accessors[primitive["indices"]]["bufferView"]]["target"] = _ELEMENT_ARRAY_BUFFER
        for index in primitive["attributes"].values():  # targets let loaders upload without guessing
            views[accessors[index]["bufferView"]]["target"] = _ARRAY_BUFFER
    return atomic_write_bytes(Path(path), _glb(gltf, binary))


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


# --- Gaussians in glTF (KHR_gaussian_splatting) -------------------------------------------------

SPLAT_EXTENSION = "KHR_gaussian_splatting"
_FLOAT = 5126  # glTF componentType


@dataclass
class Splats:
    """3D Gaussians as a renderer draws them (float32 numpy, N >= 1): means [N, 3]; scales [N, 3],
    the standard deviations along the Gaussian's axes; quats [N, 4], unit (w, x, y, z);
    opacities [N] in [0, 1]; colours [N, 3], display (sRGB) rgb in [0, 1]."""

    means: np.ndarray
    scales: np.ndarray
    quats: np.ndarray
    opacities: np.ndarray
    colours: np.ndarray


def gaussian_splats(scene) -> Splats:
    """The splats of a Gaussian scene (its activated ``attributes()``)."""
    with torch.no_grad():
        means, scales, quats, opacities, colours = (t.detach().float().cpu().numpy() for t in scene.attributes())
    return Splats(means=means, scales=scales, quats=quats, opacities=opacities, colours=colours)


def _srgb_to_linear(c: np.ndarray) -> np.ndarray:
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def _splat_attributes(s: Splats) -> dict[str, np.ndarray]:
    """glTF attribute semantic -> float32 array [N, k], as KHR_gaussian_splatting defines them.
    COLOR_0 is the spec's fallback for viewers without the extension: the diffuse colour
    decoded to linear (glTF vertex colours are linear) with the opacity as alpha."""
    ext = SPLAT_EXTENSION
    rgb = np.clip(s.colours, 0.0, 1.0)
    return {
        "POSITION": s.means,
        f"{ext}:ROTATION": s.quats[:, [1, 2, 3, 0]],  # glTF quaternions are (x, y, z, w)
        f"{ext}:SCALE": s.scales,
        f"{ext}:OPACITY": s.opacities[:, None],
        f"{ext}:SH_DEGREE_0_COEF_0": (s.colours - 0.5) / SH_C0,
        "COLOR_0": np.concatenate([_srgb_to_linear(rgb), np.clip(s.opacities, 0.0, 1.0)[:, None]], 1),
    }


def _check_splats(s: Splats) -> None:
    n = len(s.means)
    if n == 0:
        raise ValueError("splat glb: the scene has no Gaussians to write")
    for name in ("means", "scales", "quats", "opacities", "colours"):
        bad = int((~np.isfinite(getattr(s, name).reshape(n, -1))).any(1).sum())
        if bad:
            raise ValueError(f"splat glb: {bad} of {n} Gaussians have non-finite {name} (a diverged scene?)")


def splat_glb_bytes(splats: Splats) -> bytes:
    """A .glb holding one POINTS primitive with the KHR_gaussian_splatting ellipse kernel: every
    attribute tightly packed float32 in its own buffer view, the node rotating ui3d's world into
    glTF's (the spec's decomposable node transform, so viewers stand the splats up)."""
    _check_splats(splats)
    n = len(splats.means)
    accessors, views, attributes, blobs, offset = [], [], {}, [], 0
    for semantic, values in _splat_attributes(splats).items():
        data = np.ascontiguousarray(values, dtype="<f4")
        width = data.shape[1]
        views.append({"buffer": 0, "byteOffset": offset, "byteLength": data.nbytes, "target": _ARRAY_BUFFER})
        accessor = {"bufferView": len(views) - 1, "componentType": _FLOAT, "count": n,
                    "type": "SCALAR" if width == 1 else f"VEC{width}"}
        if semantic == "POSITION":  # glTF requires POSITION's bounds
            accessor.update(min=data.min(0).tolist(), max=data.max(0).tolist())
        attributes[semantic] = len(accessors)
        accessors.append(accessor)
        blobs.append(data.tobytes())
        offset += data.nbytes  # 4-byte aligned: float32 data
    gltf = {
        "asset": {"version": "2.0", "generator": "ui3d"},
        "extensionsUsed": [SPLAT_EXTENSION],
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [{"name": "splats", "mesh": 0, "matrix": _gltf_root_transform().T.reshape(-1).tolist()}],  # by column
        "meshes": [{"name": "splats", "primitives": [{
            "attributes": attributes, "mode": 0,  # POINTS
            "extensions": {SPLAT_EXTENSION: {"kernel": "ellipse", "colorSpace": "srgb_rec709_display"}},
        }]}],
        "accessors": accessors,
        "bufferViews": views,
        "buffers": [{"byteLength": offset}],
    }
    return _glb(gltf, b"".join(blobs))


def write_splat_glb(scene, path: str | Path) -> Path:
    """``splats.glb``: a Gaussian scene's splats through KHR_gaussian_splatting (:func:`splat_glb_bytes`)."""
    return atomic_write_bytes(Path(path), splat_glb_bytes(gaussian_splats(scene)))
