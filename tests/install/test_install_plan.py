"""scripts/install.py: torch's build follows the machine, and without a GPU no CUDA package is ever
installed. The last test proves the plan of a fresh machine with pip's dry run (needs the network)."""

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load_script():
    spec = importlib.util.spec_from_file_location("ui3d_install_script", ROOT / "scripts" / "install.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


install = _load_script()
CPU = install.Resolution((("torch", "2.13.0+cpu"), ("sympy", "1.14.0")))
CUDA = install.Resolution((("torch", "2.13.0"), ("nvidia-cublas", "13.1"), ("triton", "3.7.1")))
OFFLINE = install.Resolution(error="https://download.pytorch.org/whl/cpu is unreachable", offline=True)


def _fake_tool(folder: Path, name: str, exit_code: int) -> None:
    tool = folder / name
    tool.write_text(f"#!/bin/sh\nexit {exit_code}\n")
    tool.chmod(0o755)


def test_cuda_packages_are_found_by_normalised_name():
    packages = (("torch", "2.13.0"), ("nvidia_cudnn_cu13", "9"), ("Triton", "3"), ("pytorch-triton", "3"),
                ("cuda-bindings", "13"), ("tritonclient", "2"), ("numpy", "2"), ("cudatext", "1"))
    assert install.cuda_packages(packages) == ["cuda-bindings", "nvidia-cudnn-cu13", "pytorch-triton", "triton"]


@pytest.mark.parametrize("exit_code, gpu", [(0, True), (9, False)])
def test_a_gpu_is_an_nvidia_smi_that_works(tmp_path, monkeypatch, exit_code, gpu):
    _fake_tool(tmp_path, "nvidia-smi", exit_code)  # 9: a driver that finds no GPU
    monkeypatch.setenv("PATH", str(tmp_path))
    assert install.has_nvidia_gpu() is gpu


def test_no_nvidia_smi_is_no_gpu(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert install.has_nvidia_gpu() is False


def test_without_a_gpu_torch_comes_from_the_cpu_index_first_and_the_users_arguments_win():
    cpu_index, configured = install.torch_sources(gpu=False, extra=("--index-url", "https://mirror.example/cpu"))
    assert cpu_index.args[:2] == ("--index-url", install.CPU_INDEX) and cpu_index.probe == install.CPU_INDEX
    assert cpu_index.args[-2:] == configured.args == ("--index-url", "https://mirror.example/cpu")
    (only,) = install.torch_sources(gpu=True, extra=())
    assert only.args == () and not only.probe  # with a GPU: the configured index's CUDA build


def _resolving(results):
    calls = []

    def resolve_source(source):
        calls.append(source.name)
        return results[len(calls) - 1]

    return resolve_source, calls


def test_the_cpu_index_wins_without_asking_the_configured_one():
    resolve_source, calls = _resolving([CPU, CUDA])
    choice = install.first_without_cuda(install.torch_sources(False, ()), resolve_source)
    assert choice.source.name == "the PyTorch CPU index" and choice.resolution == CPU and calls == [choice.source.name]


def test_an_unreachable_cpu_index_falls_back_to_a_configured_cpu_wheel():
    resolve_source, _ = _resolving([OFFLINE, CPU])
    choice = install.first_without_cuda(install.torch_sources(False, ()), resolve_source)
    assert choice.source.name == "the configured index" and choice.offline
    assert choice.notes == (f"the PyTorch CPU index: {OFFLINE.error}",)


def test_a_fallback_that_brings_cuda_is_refused():
    resolve_source, _ = _resolving([OFFLINE, CUDA])
    choice = install.first_without_cuda(install.torch_sources(False, ()), resolve_source)
    assert choice.source is None and choice.offline
    assert choice.notes[1] == "the configured index would install CUDA packages (nvidia-cublas, triton)"


def test_the_guarded_install_never_runs_pip_install_on_a_cuda_resolution(monkeypatch):
    pip_calls = []
    monkeypatch.setattr(install, "pip", lambda args, **kw: pip_calls.append(args))
    monkeypatch.setattr(install, "resolver", lambda *a, **kw: _resolving([OFFLINE, CUDA])[0])
    with pytest.raises(SystemExit, match="torch: no source without CUDA packages; point pip at a CPU build"):
        install.install_step("torch", ["torch==2.13.0"], install.torch_sources(False, ()), guard=True)
    assert pip_calls == []


def test_the_dry_run_of_the_project_step_finds_torch_where_the_torch_step_did():
    cpu_index = install.torch_sources(False, ("--find-links", "wheels"))[0]
    assert install.as_extra_index(cpu_index) == ("--extra-index-url", install.CPU_INDEX, "--find-links", "wheels")


@pytest.mark.slow
def test_a_fresh_machine_without_a_gpu_installs_no_cuda_package():
    """The Makefile's plan, resolved by pip's dry run under an isolated configuration."""
    result = install.check_plan()
    if result.skipped:
        pytest.skip(f"an index the resolution needs is unreachable: {result.skipped}")
    assert not result.failed, result.failed
    names = {name.lower() for name, _ in result.packages}
    assert {"torch", "ui3d", "gradio", "pytest"} <= names  # both steps were resolved
    assert install.cuda_packages(result.packages) == [], result.packages
