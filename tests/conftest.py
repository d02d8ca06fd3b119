"""Suite-wide settings. One torch thread: on a 2-core machine with anything else busy, two torch
threads were measured 10–50× slower than one (thread spin-waits), and one is never much slower.
The prompt-embedding cache goes to a temp folder (through $UI3D_CACHE_DIR, which subprocesses such
as torchrun's inherit), never the user's cache."""

import pytest
import torch

torch.set_num_threads(1)

from gltf_validator.fixtures import gltf_validator, validate_written_glb  # noqa: E402,F401  every .glb a test writes is validated


@pytest.fixture(autouse=True, scope="session")
def _cache_in_a_temp_folder(tmp_path_factory):
    patch = pytest.MonkeyPatch()
    patch.setenv("UI3D_CACHE_DIR", str(tmp_path_factory.mktemp("ui3d-cache")))
    yield
    patch.undo()


@pytest.fixture
def no_run(monkeypatch):
    """A tripwire: refused runs must not reach the (slow) set-up."""
    import systems.text_to_3d

    def prepare(*args, **kwargs):
        raise AssertionError("the run started: the check came after the work")

    monkeypatch.setattr(systems.text_to_3d, "prepare", prepare)


@pytest.fixture(scope="session")
def untrained_teacher(tmp_path_factory):
    """A built-in teacher's file with untrained weights: a teacher that draws nothing the judge
    recognises (0 of 8 samples of "a gray mug" at seed 0), for the checks that must warn about one."""
    from ui3d.teachers.builtin import BuiltinTeacherConfig, BuiltinTeacherModel, save_teacher

    torch.manual_seed(0)
    return save_teacher(BuiltinTeacherModel(BuiltinTeacherConfig()), tmp_path_factory.mktemp("teacher") / "untrained.safetensors")
