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
