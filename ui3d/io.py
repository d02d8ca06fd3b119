"""Atomic file writes: a reader never sees a half-written file, and a failed write
leaves the previous version in place (temp file in the same folder + os.replace). Also the
checked reader of ui3d's own safetensors files, and output folders: checked before a run starts,
cleared of the temp files a killed writer left, removed again when a run fails in its set-up."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ui3d.errors import UserError

if TYPE_CHECKING:
    from torch import Tensor


def _remove_quietly(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def _set_mode(tmp: Path, target: Path) -> None:
    # Temp files are created 0600; keep the old file's mode, or make new files readable.
    mode = target.stat().st_mode & 0o777 if target.exists() else 0o644
    os.chmod(tmp, mode)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `path` atomically; parent folders are created."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp: Path | None = None
    try:
        with tempfile.NamedTemporaryFile(
            dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False
        ) as f:
            tmp = Path(f.name)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        _set_mode(tmp, path)
        os.replace(tmp, path)
    except BaseException:
        if tmp is not None:
            _remove_quietly(tmp)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Write `text` to `path` atomically; parent folders are created."""
    return atomic_write_bytes(path, text.encode(encoding))


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path with the same suffix as `path` (writers that pick the format from the
    suffix keep working); on clean exit it replaces `path`, on an exception it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.tmp-", suffix=path.suffix)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        _fsync_file(tmp)
        _set_mode(tmp, path)
        os.replace(tmp, path)
    except BaseException:
        _remove_quietly(tmp)
        raise


def _fsync_file(path: Path) -> None:
    # The writer closed the file; reopen to push its bytes to disk before the rename.
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Serialise first, then write atomically: a non-serialisable object never touches the file."""
    text = json.dumps(obj, indent=2, sort_keys=False) + "\n"
    return atomic_write_text(path, text)


def read_json(path: str | os.PathLike) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def read_safetensors(path: str | os.PathLike, kind: str) -> tuple[dict[str, Tensor], dict[str, str]]:
    """Tensors and metadata of a safetensors file of the given ``kind`` (its metadata's "kind");
    a UserError naming the file when it is missing, unreadable, corrupt or of another kind. Never
    unpickles."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise UserError(f"weights file '{path}' not found")
    try:
        tensors = {}
        with safe_open(str(path), framework="pt") as f:
            meta = dict(f.metadata() or {})
            for k in f.keys():
                tensors[k] = f.get_tensor(k)
    except Exception as err:  # safetensors raises its own error types for corrupt headers/data
        raise UserError(f"weights file '{path}' is not a readable safetensors file ({err})") from None
    if meta.get("kind") != kind:
        raise UserError(f"weights file '{path}' is not a {kind} file (metadata kind {meta.get('kind')!r})")
    return tensors, meta


# Temp files of atomic_write_bytes (".name.XXXX.tmp") and atomic_path (".stem.tmp-XXXX.suffix").
_TEMP_FILES = (".*.tmp", ".*.tmp-*")


def remove_stale_temp_files(folder: str | os.PathLike) -> list[Path]:
    """Delete the temp files that a killed process (``kill -9`` mid-write) left in ``folder`` and
    its subfolders; returns them. Call it when a run starts writing into a folder (no other
    writer is at work there then)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    stale = sorted({p for pattern in _TEMP_FILES for p in folder.rglob(pattern) if p.is_file()})
    for path in stale:
        _remove_quietly(path)
    return stale


@contextlib.contextmanager
def removed_on_failure(folder: str | os.PathLike, keep_if: Callable[[Path], bool] = lambda folder: False) -> Iterator[Path]:
    """For a block that creates and fills ``folder``: when the block fails, the folders it created
    are removed again, unless ``keep_if(folder)`` (e.g. a checkpoint worth resuming from). A run
    refused during its set-up leaves nothing behind."""
    folder = Path(folder)
    missing = [p for p in (folder, *folder.absolute().parents) if not p.exists()]
    try:
        yield folder
    except BaseException:
        if missing and missing[-1].exists() and not keep_if(folder):
            shutil.rmtree(missing[-1], ignore_errors=True)
        raise


def check_output_folder(path: str | os.PathLike, flag: str = "--out") -> Path:
    """``path`` as a folder this process can create or write into, checked before any work starts
    (so a refused run writes nothing); UserError naming ``flag`` otherwise."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{flag} '{path}' is {'a file' if path.is_file() else 'not a folder'}, expected a folder")
    existing = next(p for p in (path, *path.absolute().parents) if p.exists())
    if not existing.is_dir():
        raise UserError(f"{flag} '{path}': '{existing}' is a file, so no folder can be made there")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"{flag} '{path}': '{existing}' is not writable (permission denied)")
    return path
