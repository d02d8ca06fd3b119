"""The Khronos glTF validator for the tests: the npm package ``gltf-validator`` (pinned in the
top-level package.json; ``npm ci`` installs it into node_modules/), run through its JavaScript API
with node by ``validate.cjs``.

One known limitation of the validator is set apart instead of counted as an error: version
2.0.0-dev.3.10 (the newest) accepts only the core attribute semantics and ``_``-prefixed ones, so
it flags every ``KHR_gaussian_splatting:*`` attribute, which that extension's specification
requires, as MESH_PRIMITIVE_INVALID_ATTRIBUTE (KhronosGroup/glTF-Validator issue 252, pending the
core specification's change for extension-defined semantics). Nothing else is excused.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["GltfReport", "unavailable_reason", "validate_gltf"]

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).with_name("validate.cjs")
SEVERITIES = ("error", "warning", "info", "hint")
EXTENSION_SEMANTIC = "/attributes/KHR_gaussian_splatting:"


@dataclass
class GltfReport:
    """One file's validator messages, each ``"CODE POINTER: message"``, by severity."""

    validator: str
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    infos: list[str] = field(default_factory=list)
    hints: list[str] = field(default_factory=list)
    excused: list[str] = field(default_factory=list)  # the known limitation above

    def summary(self) -> str:
        return (f"{len(self.errors)} errors, {len(self.warnings)} warnings, {len(self.infos)} infos, "
                f"{len(self.hints)} hints ({len(self.excused)} extension-attribute errors excused)")


def unavailable_reason() -> str | None:
    """Why the validator cannot run here, or None when it can."""
    if shutil.which("node") is None:
        return "node is not installed (CI installs Debian's nodejs and npm in .ci/run)"
    if not (ROOT / "node_modules" / "gltf-validator").is_dir():
        return "the glTF validator is not installed: run `npm ci` in the repository root"
    return None


def _is_excused(message: dict) -> bool:
    return message["code"] == "MESH_PRIMITIVE_INVALID_ATTRIBUTE" and EXTENSION_SEMANTIC in message["pointer"]


def _report(raw: dict) -> GltfReport:
    report = GltfReport(validator=raw["validator"])
    for m in raw["messages"]:
        text = f"{m['code']} {m['pointer']}: {m['message']}"
        if _is_excused(m):
            report.excused.append(text)
        else:
            getattr(report, SEVERITIES[m["severity"]] + "s").append(text)
    return report


def validate_gltf(paths: list[Path]) -> dict[Path, GltfReport]:
    """Validate .glb/.gltf files in one node process; raises RuntimeError if node fails."""
    paths = [Path(p) for p in paths]
    proc = subprocess.run(["node", str(SCRIPT), *map(str, paths)], capture_output=True, text=True, cwd=ROOT,
                          timeout=300)
    if proc.returncode != 0:
        raise RuntimeError(f"glTF validator failed: {proc.stderr.strip()}")
    raw = json.loads(proc.stdout)
    return {p: _report(raw[str(p)]) for p in paths}
