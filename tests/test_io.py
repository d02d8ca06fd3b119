import json

import pytest

from ui3d.io import atomic_path, atomic_write_bytes, atomic_write_text, read_json, write_json


def _leftovers(folder, keep):
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


def test_write_text_and_bytes_create_parents_and_replace(tmp_path):
    target = tmp_path / "a" / "b" / "out.txt"
    assert atomic_write_text(target, "first") == target
    atomic_write_text(target, "second")
    assert target.read_text() == "second"
    atomic_write_bytes(target, b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01"
    assert _leftovers(target.parent, {"out.txt"}) == []


def test_new_files_are_readable_not_private(tmp_path):
    target = atomic_write_text(tmp_path / "x.txt", "hi")
    assert target.stat().st_mode & 0o044 == 0o044


def test_failed_bytes_write_keeps_old_file(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(TypeError):
        atomic_write_bytes(target, "not bytes")  # type: ignore[arg-type]
    assert target.read_bytes() == b"old"
    assert _leftovers(tmp_path, {"out.bin"}) == []


def test_atomic_path_keeps_suffix_and_replaces_on_success(tmp_path):
    target = tmp_path / "sub" / "image.png"
    with atomic_path(target) as tmp:
        assert tmp.suffix == ".png"
        assert tmp.parent == target.parent and tmp != target
        tmp.write_bytes(b"png bytes")
        assert not target.exists()  # nothing visible until the block ends
    assert target.read_bytes() == b"png bytes"
    assert _leftovers(target.parent, {"image.png"}) == []


def test_atomic_path_failure_leaves_old_file_and_no_temp(tmp_path):
    target = tmp_path / "model.pt"
    target.write_bytes(b"old checkpoint")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half written")
            raise RuntimeError("boom")
    assert target.read_bytes() == b"old checkpoint"
    assert _leftovers(tmp_path, {"model.pt"}) == []


def test_json_round_trip_keeps_key_order(tmp_path):
    obj = {"z": 1, "a": [1.5, "x", None], "m": {"k": True}}
    path = write_json(tmp_path / "d" / "r.json", obj)
    assert read_json(path) == obj
    assert list(json.loads(path.read_text())) == ["z", "a", "m"]
    assert '\n  "a"' in path.read_text()  # indent 2


def test_write_json_unserialisable_leaves_file_untouched(tmp_path):
    target = tmp_path / "r.json"
    write_json(target, {"ok": 1})
    before = target.read_text()
    with pytest.raises(TypeError):
        write_json(target, {"bad": object()})
    assert target.read_text() == before
    assert _leftovers(tmp_path, {"r.json"}) == []


# --- output folders: temp files a killed writer left, checks before a run, nothing left by a refused run

def test_temp_files_of_a_killed_writer_are_removed_and_nothing_else(tmp_path):
    from ui3d.io import remove_stale_temp_files

    (tmp_path / "validation").mkdir()
    stale = [tmp_path / ".checkpoint.tmp-k2j4.pt", tmp_path / ".config.yaml.x8q1.tmp",
             tmp_path / "validation" / ".step_00002.tmp-abcd.png"]
    keep = [tmp_path / "checkpoint.pt", tmp_path / "notes.tmp", tmp_path / "validation" / "step_00002.png"]
    for path in stale + keep:
        path.write_bytes(b"x")
    # names exactly as the writers make them, so a real leftover is recognised
    with atomic_path(tmp_path / "scene.safetensors") as tmp:
        made_by_atomic_path = tmp.name
    assert made_by_atomic_path.startswith(".scene.tmp-") and made_by_atomic_path.endswith(".safetensors")
    assert sorted(remove_stale_temp_files(tmp_path)) == sorted(stale)
    assert all(p.exists() for p in keep) and not any(p.exists() for p in stale)
    assert remove_stale_temp_files(tmp_path / "missing") == []


def test_output_folder_checks_name_the_flag(tmp_path, monkeypatch):
    import os

    from ui3d.errors import UserError
    from ui3d.io import check_output_folder

    assert check_output_folder(tmp_path / "new" / "run") == tmp_path / "new" / "run"
    assert not (tmp_path / "new").exists()  # checked, not created
    (tmp_path / "file").write_text("keep")
    with pytest.raises(UserError, match=r"^--out '.*file' is a file, expected a folder$"):
        check_output_folder(tmp_path / "file")
    with pytest.raises(UserError, match=r"^--resume '.*file/run': '.*file' is a file"):
        check_output_folder(tmp_path / "file" / "run", "--resume")
    with pytest.raises(UserError, match=r"^--out '/dev/null' is not a folder"):
        check_output_folder("/dev/null")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    real_access = os.access  # root may write anyway: let the check see what a user would
    monkeypatch.setattr(os, "access", lambda p, mode: False if str(p) == str(locked) else real_access(p, mode))
    with pytest.raises(UserError, match=r"^--out '.*locked/run': '.*locked' is not writable"):
        check_output_folder(locked / "run")


def test_a_failed_block_removes_the_folders_it_created_unless_kept(tmp_path):
    from ui3d.io import removed_on_failure

    with pytest.raises(RuntimeError):
        with removed_on_failure(tmp_path / "a" / "b" / "run") as run:
            run.mkdir(parents=True)
            (run / "config.yaml").write_text("x")
            raise RuntimeError("set-up failed")
    assert not (tmp_path / "a").exists()  # the parents it made too
    with pytest.raises(KeyboardInterrupt):
        with removed_on_failure(tmp_path / "run", keep_if=lambda d: (d / "checkpoint.pt").exists()) as run:
            run.mkdir()
            (run / "checkpoint.pt").write_text("x")
            raise KeyboardInterrupt
    assert (tmp_path / "run" / "checkpoint.pt").exists()  # worth resuming from
    (tmp_path / "old").mkdir()
    with pytest.raises(RuntimeError):
        with removed_on_failure(tmp_path / "old"):
            raise RuntimeError("a folder that existed before is never removed")
    assert (tmp_path / "old").is_dir()
    with removed_on_failure(tmp_path / "ok") as run:
        run.mkdir()
    assert run.is_dir()
