# Two entry points: `make test` and `make demo`. Both create .venv and install into it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Extra pip arguments for torch, e.g. a CPU wheel index on machines without a GPU.
PIP_TORCH_ARGS ?=

.PHONY: test demo install clean

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	@# Without CUDA, pin the CPU build of torch so pip never pulls the CUDA packages.
	if command -v nvidia-smi >/dev/null 2>&1; then \
		$(BIN)/python -m pip install -q $(PIP_TORCH_ARGS) torch; \
	else \
		$(BIN)/python -m pip install -q $(PIP_TORCH_ARGS) torch==2.13.0; \
	fi
	@# The web demo (gradio) and its browser tests (Playwright drives the system's Chromium; no browser download).
	$(BIN)/python -m pip install -q -e ".[dev,app]" "playwright>=1.40"
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

demo: $(STAMP)
	$(BIN)/ui3d generate "a ceramic owl" --out runs/demo-owl

clean:
	rm -rf $(VENV)
