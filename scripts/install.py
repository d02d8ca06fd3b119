"""Installs ui3d into the environment of the Python that runs this script (the Makefile runs it with
.venv/bin/python), and proves the install plan of a machine without a GPU.

torch comes first, because the index decides its build:
- with an NVIDIA GPU (`nvidia-smi -L` works): torch from the configured index, a CUDA build;
- without one: the CPU build from the PyTorch CPU wheel index; where that index is unreachable or
  cannot resolve it, what the configured index serves (for example a local CPU wheel).
Without a GPU every step is first resolved with pip's dry run, and a resolution that would bring a
CUDA package (nvidia-*, triton, cuda-*) is never installed: the next source is tried, and when none
is left the install stops with one line that says how to point pip at a CPU build.
Then ui3d with its extras, with torch pinned to the installed build so that no dependency swaps it.

`--check` installs nothing: it resolves the no-GPU plan of a fresh machine under an isolated pip
configuration (no configuration file, no PIP_* variable), prints every package the plan would
install, exits 1 if one is a CUDA package and 3, with the reason, when an index it needs is
unreachable (a skip, not a pass).

Standard library only: it runs before anything is installed.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import urllib.request
from dataclasses import dataclass, replace
from importlib import metadata
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
TORCH = "torch==2.13.0"
PROJECT = ("-e", ".[dev,app]")
CUDA_PACKAGE = re.compile(r"nvidia-.*|(pytorch-)?triton|cuda-.*")
MIN_PIP = (22, 2)  # the first pip with --dry-run and --report
SKIPPED = 3
HOW_TO = ("point pip at a CPU build of torch, e.g. make install PIP_TORCH_ARGS='--index-url URL' "
          "with URL a reachable copy of the PyTorch CPU wheel index")


@dataclass(frozen=True)
class Source:
    """Where a step's packages come from: extra pip arguments, and an index to probe before pip
    (pip retries an unreachable index for minutes)."""

    name: str
    args: tuple[str, ...] = ()
    probe: str = ""


@dataclass(frozen=True)
class Resolution:
    """What a pip dry run would install, as (name, version) pairs, or why it could not resolve."""

    packages: tuple[tuple[str, str], ...] = ()
    error: str = ""
    offline: bool = False  # the error is a network one


@dataclass(frozen=True)
class Choice:
    """The first source that resolves without a CUDA package (None: no source did), its
    resolution, why each source before it was passed over, and whether one was for a network error."""

    source: Source | None
    resolution: Resolution
    notes: tuple[str, ...]
    offline: bool = False


# --- pure decisions -------------------------------------------------------------------------------
def cuda_packages(packages: tuple[tuple[str, str], ...]) -> list[str]:
    """The CUDA packages among (name, version) pairs, by normalised name (PEP 503)."""
    names = (re.sub(r"[-_.]+", "-", name).lower() for name, _ in packages)
    return sorted(name for name in names if CUDA_PACKAGE.fullmatch(name))


def torch_sources(gpu: bool, extra: tuple[str, ...]) -> list[Source]:
    """torch's sources, best first; `extra` (the user's pip arguments) comes last, so it wins."""
    configured = Source("the configured index", extra)
    if gpu:
        return [configured]
    return [Source("the PyTorch CPU index", ("--index-url", CPU_INDEX, *extra), probe=CPU_INDEX), configured]


def as_extra_index(source: Source) -> tuple[str, ...]:
    """A source's --index-url arguments as --extra-index-url: in a dry run of a fresh machine the
    project step must still find the pinned torch where the torch step found it."""
    return tuple("--extra-index-url" if arg == "--index-url" else arg for arg in source.args)


def first_without_cuda(sources: list[Source], resolve_source: Callable[[Source], Resolution]) -> Choice:
    notes: list[str] = []
    offline = False
    for source in sources:
        resolution = resolve_source(source)
        offline = offline or resolution.offline
        if resolution.error:
            notes.append(f"{source.name}: {resolution.error}")
        elif cuda := cuda_packages(resolution.packages):
            notes.append(f"{source.name} would install CUDA packages ({', '.join(cuda)})")
        else:
            return Choice(source, resolution, tuple(notes), offline)
    return Choice(None, Resolution(), tuple(notes), offline)


def is_network_error(pip_stderr: str) -> bool:
    text = pip_stderr.lower()
    return any(word in text for word in ("connection", "timed out", "name resolution", "proxy", "ssl"))


# --- the machine and pip --------------------------------------------------------------------------
def has_nvidia_gpu() -> bool:
    """nvidia-smi present and working: a missing driver, or one that finds no GPU, fails `-L`."""
    if shutil.which("nvidia-smi") is None:
        return False
    try:
        return subprocess.run(["nvidia-smi", "-L"], capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def unreachable(index: str, timeout_s: float = 20.0) -> str:
    """'' when the index serves torch's page, else why not."""
    try:
        urllib.request.urlopen(f"{index.rstrip('/')}/torch/", timeout=timeout_s).close()
        return ""
    except OSError as err:  # URLError, HTTPError, socket timeouts
        return f"{index} is unreachable ({getattr(err, 'reason', err)})"


def isolated_environment() -> dict[str, str]:
    """This process's environment without any pip setting: no PIP_* variable, no config file."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull
    return env


def pip(args: list[str], isolated: bool = False, capture: bool = False) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "pip", *(["--isolated"] if isolated else []), *args]
    return subprocess.run(command, cwd=ROOT, env=isolated_environment() if isolated else None,
                          capture_output=capture, text=True)


def resolve(requirements: list[str], isolated: bool, fresh: bool) -> Resolution:
    """pip's dry run of `pip install requirements`; `fresh` resolves as for an empty environment."""
    args = ["install", "--dry-run", "--quiet", "--report", "-", *(["--ignore-installed"] if fresh else [])]
    done = pip([*args, *requirements], isolated=isolated, capture=True)
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        errors = [line for line in lines if line.startswith("ERROR")] or lines[-1:] or ["pip failed"]
        return Resolution(error=errors[-1], offline=is_network_error(done.stderr))
    report = json.loads(done.stdout)
    return Resolution(tuple((item["metadata"]["name"], item["metadata"]["version"]) for item in report["install"]))


def resolver(requirements: list[str], isolated: bool, fresh: bool) -> Callable[[Source], Resolution]:
    def resolve_source(source: Source) -> Resolution:
        if source.probe and (why := unreachable(source.probe)):
            return Resolution(error=why, offline=True)
        return resolve([*source.args, *requirements], isolated, fresh)

    return resolve_source


def installed_version(name: str) -> str:
    importlib.invalidate_caches()  # installed by a pip subprocess after this process started
    return metadata.version(name)


def ensure_pip_reports() -> None:
    """Old venvs (Python 3.10's first releases) carry a pip without --dry-run/--report."""
    if tuple(int(part) for part in installed_version("pip").split(".")[:2]) < MIN_PIP:
        pip(["install", "-q", "--upgrade", "pip>={}.{}".format(*MIN_PIP)]).check_returncode()


# --- the two commands -----------------------------------------------------------------------------
def install_step(what: str, requirements: list[str], sources: list[Source], guard: bool) -> None:
    """Installs with the first source; with `guard`, with the first whose dry run brings no CUDA package."""
    source = sources[0]
    if guard:
        choice = first_without_cuda(sources, resolver(requirements, isolated=False, fresh=False))
        for note in choice.notes:
            print(f"install: {what}: {note}", file=sys.stderr)
        if choice.source is None:
            raise SystemExit(f"install: {what}: no source without CUDA packages; {HOW_TO}")
        source = choice.source
    print(f"install: {what} from {source.name}", file=sys.stderr)
    pip(["install", "-q", *source.args, *requirements]).check_returncode()


def install(torch: str, extra: tuple[str, ...]) -> None:
    ensure_pip_reports()
    gpu = has_nvidia_gpu()
    print(f"install: {'an NVIDIA GPU: the CUDA build' if gpu else 'no NVIDIA GPU: the CPU build'} of torch",
          file=sys.stderr)
    install_step("torch", [torch], torch_sources(gpu, extra), guard=not gpu)
    pinned = f"torch=={installed_version('torch')}"
    install_step("ui3d", [pinned, *PROJECT], [Source("the configured index")], guard=not gpu)


@dataclass(frozen=True)
class Check:
    """The no-GPU plan's packages (name, version), and why it is unproven ('' when proven)."""

    packages: tuple[tuple[str, str], ...]
    skipped: str = ""
    failed: str = ""


def check_plan(torch: str = TORCH, extra: tuple[str, ...] = ()) -> Check:
    """The packages a fresh machine without a GPU would install, resolved with an isolated pip;
    `extra` are the torch step's pip arguments (e.g. --find-links of a local CPU wheel)."""
    isolated_name = "an isolated pip's index"
    sources = [source if source.probe else replace(source, name=isolated_name) for source in torch_sources(False, extra)]
    torch_choice = first_without_cuda(sources, resolver([torch], isolated=True, fresh=True))
    if torch_choice.source is None:
        why = "; ".join(torch_choice.notes)
        return Check((), skipped=why) if torch_choice.offline else Check((), failed=why)
    resolved_torch = dict(torch_choice.resolution.packages)["torch"]
    project = resolver([f"torch=={resolved_torch}", *PROJECT], isolated=True, fresh=True)
    resolution = project(Source(isolated_name, as_extra_index(torch_choice.source)))
    if resolution.error:
        return Check((), skipped=resolution.error) if resolution.offline else Check((), failed=resolution.error)
    return Check(tuple(sorted(set(torch_choice.resolution.packages) | set(resolution.packages))))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--torch", default=TORCH, help="torch's requirement (default: %(default)s)")
    parser.add_argument("--torch-args", default="", help="extra pip arguments for the torch step, one string")
    parser.add_argument("--check", action="store_true",
                        help="resolve the no-GPU plan under an isolated pip; install nothing")
    args = parser.parse_args(argv)
    if not args.check:
        install(args.torch, tuple(shlex.split(args.torch_args)))
        return 0
    result = check_plan(args.torch, tuple(shlex.split(args.torch_args)))
    for name, version in result.packages:
        print(f"{name}=={version}")
    if result.skipped:
        print(f"check: skipped, an index the plan needs is unreachable: {result.skipped}", file=sys.stderr)
        return SKIPPED
    cuda = cuda_packages(result.packages)
    if result.failed or cuda:
        print(f"check: FAILED: {result.failed or 'CUDA packages ' + ', '.join(cuda)}", file=sys.stderr)
        return 1
    print(f"check: {len(result.packages)} packages, none of them a CUDA package", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
