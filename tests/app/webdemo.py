"""Shared by the web demo's tests and its timing script: the tiny run settings, and a real headless
Chromium (Debian's `chromium` package, driven by Playwright's Python package, which downloads no
browser)."""

from __future__ import annotations

import io
import shutil
import time

# Runs of a few seconds: 16² renders of one view, a 2-level hash grid, no video (the slow export).
TINY = ("resolution=16", "views_per_step=1", "albedo_warmup=1", "validate_every=100", "checkpoint_every=100",
        "real_samples_per_view=1", "real_sample_steps=2", "nerf.samples_per_ray=8", "nerf.grid.levels=2",
        "gaussians.num_init=200")
FORMATS = ("obj", "glb", "ply")
FIELDS = ("prompt", "negative_prompt", "teacher", "backend", "guidance", "divergence", "preset", "steps", "seed")


def inputs(**changes) -> list:
    """The /generate endpoint's arguments: a 3-step owl on the built-in teacher, with `changes`."""
    values = dict(prompt="a ceramic owl", negative_prompt="", teacher="builtin", backend="nerf",
                  guidance="uni-instruct", divergence="", preset="fast", steps=3, seed=0)
    values.update(changes)
    return [values[f] for f in FIELDS]


INSTALL = "apt-get install -y chromium (Debian's package; Playwright drives it, no download)"


def chromium_path() -> tuple[str | None, str]:
    """(path, "") to the Chromium on PATH, else (None, why). Never installs one: a test command must
    not change the operating system (CI installs it in .ci/run)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    return found, "" if found else f"no chromium or chromium-browser on PATH; install one, e.g. {INSTALL}"


def launch(playwright, path: str):
    """Headless Chromium with software WebGL (SwiftShader), which the 3D viewers need."""
    return playwright.chromium.launch(executable_path=path, args=["--enable-unsafe-swiftshader"])


def status_text(page) -> str:
    return page.locator("#status").inner_text()


def wait_for_status(page, prefix: str, timeout_s: float) -> str:
    page.wait_for_function(f"() => document.querySelector('#status').innerText.startsWith({prefix!r})",
                           timeout=timeout_s * 1000)
    return status_text(page)


def drawn_fraction(png: bytes) -> float:
    """Share of pixels that differ clearly from the image's corner (the viewer's background)."""
    import numpy as np
    from PIL import Image

    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    return float((np.abs(rgb - rgb[0, 0]).sum(-1) > 60).mean())


def wait_for_object(page, selector: str, timeout_s: float, least: float = 0.01) -> float:
    """Waits until the viewer's canvas shows something; returns the share of its pixels drawn."""
    canvas = page.locator(f"{selector} canvas")
    canvas.wait_for(timeout=timeout_s * 1000)
    deadline, drawn = time.monotonic() + timeout_s, 0.0
    while time.monotonic() < deadline:
        drawn = drawn_fraction(canvas.screenshot())
        if drawn >= least:
            break
        time.sleep(0.5)
    return drawn


def start_run(page, prompt: str, steps: int | None = None) -> float:
    """Types a prompt (and steps), clicks Run; returns the click's time (time.perf_counter)."""
    page.locator("#prompt textarea").fill(prompt)
    if steps is not None:
        page.get_by_label("Steps").fill(str(steps))
    clicked = time.perf_counter()
    page.locator("#run").click()
    return clicked
