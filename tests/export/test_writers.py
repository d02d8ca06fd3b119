"""What real tools read back from our files: plyfile on the 3DGS .ply, the Khronos glTF validator
on every .glb, and the KHR_gaussian_splatting accessors read back against the scene."""

import json
import struct

import numpy as np
import pytest
import torch

from ui3d.export import ExtractConfig, extract_mesh, write_gaussian_ply, write_glb
from ui3d.export.writers import GLTF_FROM_WORLD, SH_C0, SPLAT_EXTENSION, write_splat_glb
from ui3d.scene.gaussians import GaussianConfig, GaussianScene

_COMPONENTS = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4}


def _trained_looking_scene(n: int = 64) -> GaussianScene:
    """A Gaussian scene whose every parameter differs per Gaussian (fresh scenes share scales,
    rotations, opacities and colours, which would hide a swapped or misordered field)."""
    gen = torch.Generator().manual_seed(3)
    scene = GaussianScene(GaussianConfig(num_init=n), generator=gen)
    with torch.no_grad():
        scene.log_scales.copy_(torch.randn(n, 3, generator=gen) * 0.3 - 3.0)
        scene.quats.copy_(torch.randn(n, 4, generator=gen) * 2.0)  # not unit: the writers normalise
        scene.opacity_logits.copy_(torch.randn(n, generator=gen) * 2.0)
        scene.colour_logits.copy_(torch.randn(n, 3, generator=gen) * 2.0)
    return scene


def read_glb(path) -> tuple[dict, dict[str, np.ndarray]]:
    """The JSON of a .glb and its first primitive's attributes as float32 arrays [N, k]
    (tightly packed float accessors, as the splat writer makes them)."""
    raw = path.read_bytes()
    magic, version, length = struct.unpack_from("<III", raw, 0)
    assert (magic, version, length) == (0x46546C67, 2, len(raw))
    json_len, json_type = struct.unpack_from("<II", raw, 12)
    gltf = json.loads(raw[20 : 20 + json_len])
    bin_len, bin_type = struct.unpack_from("<II", raw, 20 + json_len)
    assert (json_type, bin_type) == (0x4E4F534A, 0x004E4942)
    blob = raw[28 + json_len : 28 + json_len + bin_len]
    out = {}
    for semantic, index in gltf["meshes"][0]["primitives"][0]["attributes"].items():
        acc = gltf["accessors"][index]
        view = gltf["bufferViews"][acc["bufferView"]]
        assert acc["componentType"] == 5126 and "byteStride" not in view
        k = _COMPONENTS[acc["type"]]
        start = view.get("byteOffset", 0) + acc.get("byteOffset", 0)
        out[semantic] = np.frombuffer(blob, "<f4", acc["count"] * k, start).reshape(acc["count"], k)
    return gltf, out


def test_gaussian_ply_has_the_3dgs_layout_read_by_plyfile(tmp_path):
    import plyfile  # the dev extra: a missing reader is a broken install, not a skip
    scene = _trained_looking_scene()
    ply = plyfile.PlyData.read(str(write_gaussian_ply(scene, tmp_path / "gaussians.ply")))
    assert not ply.text and ply.byte_order == "<" and [e.name for e in ply.elements] == ["vertex"]
    vertex = ply["vertex"]
    expected = (["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"] + [f"f_rest_{i}" for i in range(45)]
                + ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"])
    assert [p.name for p in vertex.properties] == expected
    assert {str(vertex.data.dtype[name]) for name in expected} == {"float32"} and vertex.count == scene.num
    col = lambda *names: np.stack([vertex[n] for n in names], -1)  # noqa: E731
    with torch.no_grad():
        np.testing.assert_array_equal(col("x", "y", "z"), scene.means.numpy())
        np.testing.assert_array_equal(col("scale_0", "scale_1", "scale_2"), scene.log_scales.numpy())
        np.testing.assert_array_equal(vertex["opacity"], scene.opacity_logits.numpy())
        unit = torch.nn.functional.normalize(scene.quats, dim=-1).numpy()  # (w, x, y, z), as 3DGS stores them
        np.testing.assert_allclose(col("rot_0", "rot_1", "rot_2", "rot_3"), unit, atol=1e-7)
        rgb = torch.sigmoid(scene.colour_logits).numpy()
    np.testing.assert_allclose(0.5 + SH_C0 * col("f_dc_0", "f_dc_1", "f_dc_2"), rgb, atol=1e-6)
    assert not col("nx", "ny", "nz").any() and not col(*[f"f_rest_{i}" for i in range(45)]).any()


def test_splats_glb_round_trip_and_validator(tmp_path, gltf_validator):
    scene = _trained_looking_scene()
    path = write_splat_glb(scene, tmp_path / "splats.glb")
    gltf, attrs = read_glb(path)
    primitive = gltf["meshes"][0]["primitives"][0]
    assert primitive["mode"] == 0 and gltf["extensionsUsed"] == [SPLAT_EXTENSION]
    assert primitive["extensions"] == {SPLAT_EXTENSION: {"kernel": "ellipse", "colorSpace": "srgb_rec709_display"}}
    ext = SPLAT_EXTENSION + ":"
    with torch.no_grad():
        means, scales, quats, opacities, colours = (t.numpy() for t in scene.attributes())
    np.testing.assert_array_equal(attrs["POSITION"], means)
    np.testing.assert_allclose(attrs[ext + "SCALE"], np.exp(scene.log_scales.detach().numpy()), rtol=1e-6)
    np.testing.assert_allclose(attrs[ext + "ROTATION"], quats[:, [1, 2, 3, 0]], atol=1e-7)  # glTF: (x, y, z, w)
    np.testing.assert_allclose(np.linalg.norm(attrs[ext + "ROTATION"], axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(attrs[ext + "OPACITY"][:, 0], opacities, atol=1e-7)
    np.testing.assert_allclose(0.5 + SH_C0 * attrs[ext + "SH_DEGREE_0_COEF_0"], colours, atol=1e-6)
    # the fallback point colour: linear rgb (sRGB decoded), opacity in alpha
    linear = np.where(colours <= 0.04045, colours / 12.92, ((colours + 0.055) / 1.055) ** 2.4)
    np.testing.assert_allclose(attrs["COLOR_0"], np.concatenate([linear, opacities[:, None]], 1), atol=1e-6)
    acc = gltf["accessors"][primitive["attributes"]["POSITION"]]
    np.testing.assert_allclose([acc["min"], acc["max"]], [means.min(0), means.max(0)])
    report = gltf_validator([path])[path]
    assert not report.errors, report.errors
    excused_pointers = {e.split()[1].rstrip(":") for e in report.excused}  # "CODE POINTER: message"
    assert excused_pointers == {f"/meshes/0/primitives/0/attributes/{ext}{name}"
                                for name in ("ROTATION", "SCALE", "OPACITY", "SH_DEGREE_0_COEF_0")}
    print(f"splats.glb ({report.validator}): {report.summary()}; {report.warnings + report.infos}")


def _glb_json(path) -> dict:
    raw = path.read_bytes()
    return json.loads(raw[20 : 20 + struct.unpack_from("<I", raw, 12)[0]])


def _node_rotation(gltf) -> np.ndarray:
    node = gltf["nodes"][gltf["scenes"][gltf["scene"]]["nodes"][0]]
    return np.asarray(node["matrix"]).reshape(4, 4).T[:3, :3]  # glTF matrices are column-major


def test_glb_files_stand_up_in_gltf_coordinates(tmp_path):
    from test_export_roundtrip import Balls

    splat = read_glb(write_splat_glb(_trained_looking_scene(), tmp_path / "splats.glb"))[0]
    ball = extract_mesh(Balls([[0, 0, 0]], [0.4]), ExtractConfig(resolution=16))
    mesh = _glb_json(write_glb(ball, tmp_path / "mesh.glb"))
    for gltf in (splat, mesh):
        rot = _node_rotation(gltf)
        np.testing.assert_allclose(rot, GLTF_FROM_WORLD, atol=1e-12)
        np.testing.assert_allclose(rot @ [0, 0, 1], [0, 1, 0])  # ui3d's up (+z) is glTF's up (+y)
        np.testing.assert_allclose(rot @ [1, 0, 0], [0, 0, 1])  # the front (+x) faces glTF's front (+z)
    assert np.linalg.det(GLTF_FROM_WORLD) == pytest.approx(1.0)  # a rotation: splats stay decomposable


def test_nerf_mesh_glb_passes_the_validator(tmp_path, gltf_validator):
    from test_export_roundtrip import Balls

    path = write_glb(extract_mesh(Balls([[0, 0, 0]], [0.4]), ExtractConfig(resolution=24)), tmp_path / "mesh.glb")
    report = gltf_validator([path])[path]
    assert not (report.errors or report.warnings or report.hints or report.excused), report.summary()
    print(f"mesh.glb ({report.validator}): {report.summary()}; {report.warnings + report.infos}")


def test_the_validator_catches_a_broken_glb(tmp_path, gltf_validator):
    """The harness reports what the validator finds: a POSITION accessor without bounds is an error."""
    path = write_splat_glb(_trained_looking_scene(8), tmp_path / "splats.glb")
    raw = path.read_bytes()
    n = struct.unpack_from("<I", raw, 12)[0]
    gltf = _glb_json(path)
    del gltf["accessors"][0]["min"], gltf["accessors"][0]["max"]
    text = json.dumps(gltf).encode()
    text += b" " * (-len(text) % 4)
    rest = raw[20 + n :]
    broken = tmp_path / "broken.bin"  # not .glb: the autouse check would fail this test on purpose
    broken.write_bytes(struct.pack("<III", 0x46546C67, 2, 20 + len(text) + len(rest))
                       + struct.pack("<II", len(text), 0x4E4F534A) + text + rest)
    report = gltf_validator([broken])[broken]
    assert any("MESH_PRIMITIVE_POSITION_ACCESSOR_WITHOUT_BOUNDS" in e for e in report.errors), report.errors


@pytest.mark.parametrize("field, value, message", [("means", float("nan"), "non-finite means"),
                                                   ("log_scales", float("inf"), "non-finite scales")])
def test_splat_glb_refuses_a_diverged_scene(tmp_path, field, value, message):
    scene = _trained_looking_scene(8)
    with torch.no_grad():
        getattr(scene, field)[3, 1] = value
    with pytest.raises(ValueError, match=f"1 of 8 Gaussians have {message}"):
        write_splat_glb(scene, tmp_path / "splats.glb")
    assert not list(tmp_path.iterdir())
