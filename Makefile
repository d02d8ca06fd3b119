# Two entry points: `make test` and `make demo`. Both create .venv and install into it; neither
# changes the operating system (the browser test uses a Chromium already installed, or skips).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# torch's release, and extra pip arguments for its step (e.g. --index-url of a CPU wheel mirror).
TORCH ?= torch==2.13.0
PIP_TORCH_ARGS ?=

.PHONY: test demo install check-install gltf-validator clean

install: $(STAMP)

$(STAMP): pyproject.toml Makefile scripts/install.py
	$(PYTHON) -m venv $(VENV)
	@# torch first: the CUDA build with an NVIDIA GPU; without one the CPU build (PyTorch's CPU index,
	@# else what the configured index serves) and never a CUDA package. Then ui3d[dev,app].
	$(BIN)/python scripts/install.py --torch "$(TORCH)" --torch-args "$(PIP_TORCH_ARGS)"
	touch $(STAMP)

# Proves the no-GPU install plan with an isolated pip (dry run; exit 3 = an index is unreachable).
check-install: $(STAMP)
	$(BIN)/python scripts/install.py --check --torch "$(TORCH)" --torch-args "$(PIP_TORCH_ARGS)"

# The Khronos glTF validator (npm, into node_modules/ only) checks every .glb the tests write;
# without npm those tests skip and say so.
gltf-validator:
	@if command -v npm >/dev/null 2>&1; then \
		[ -f node_modules/.package-lock.json ] || npm ci --no-audit --no-fund; \
	else echo "npm not found: the glTF validator tests will skip"; fi

test: $(STAMP) gltf-validator
	$(BIN)/python -m pytest -q

demo: $(STAMP)
	$(BIN)/ui3d generate "a ceramic owl" --out runs/demo-owl

clean:
	rm -rf $(VENV) node_modules
