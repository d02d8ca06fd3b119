"""pytest fixtures: ``gltf_validator`` (skips with its reason where the validator is missing) and
``validate_written_glb`` (autouse: every .glb a test leaves in its ``tmp_path`` must pass the
validator with 0 errors). Import both into a conftest.py to use them."""

from __future__ import annotations

import pytest

from gltf_validator import unavailable_reason, validate_gltf


@pytest.fixture
def gltf_validator():
    """``validate_gltf``; the test skips, saying why, where node or the validator is missing."""
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(f"glTF validator: {reason}")
    return validate_gltf


@pytest.fixture(autouse=True)
def validate_written_glb(request):
    """After each test that uses ``tmp_path``: the Khronos validator on every .glb written there."""
    fake = request.node.get_closest_marker("fake_glb") is not None  # a test that writes placeholder files
    folder = request.getfixturevalue("tmp_path") if "tmp_path" in request.fixturenames and not fake else None
    yield
    if folder is None or unavailable_reason() is not None:  # the gltf_validator tests show the skip
        return
    written = sorted(folder.rglob("*.glb"))
    if not written:
        return
    failed = {p: r for p, r in validate_gltf(written).items() if r.errors}
    if failed:
        pytest.fail("glTF validator errors:\n" + "\n".join(
            f"{p.relative_to(folder)}: {'; '.join(r.errors)}" for p, r in failed.items()), pytrace=False)
