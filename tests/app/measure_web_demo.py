"""Times the web demo as a visitor sees it, in a real headless Chromium: from the click on Run to the
first preview image, and to the final mesh drawn in the 3D viewer (default preset, built-in teacher).

    .venv/bin/python tests/app/measure_web_demo.py --full-runs 1 --preview-runs 2 --screenshot docs/web_demo.png

A full run trains the whole preset and exports; a preview run is stopped (Stop button) once the first
preview shows. Prints one line per run and the medians.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parents[1]), str(HERE)]
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


def one_run(browser, url: str, prompt: str, full: bool, screenshot: Path | None) -> dict:
    from webdemo import start_run, wait_for_object, wait_for_status

    page = browser.new_page(viewport={"width": 1400, "height": 1300})
    page.goto(url)
    clicked = start_run(page, prompt)
    page.locator("#preview img").wait_for(timeout=3_600_000)
    times = {"preview_s": time.perf_counter() - clicked}
    if full:
        wait_for_status(page, "done", 3 * 3600)
        wait_for_object(page, "#mesh", 120)
        times["mesh_s"] = time.perf_counter() - clicked
        times["status"] = page.locator("#status").inner_text()
        if screenshot is not None:
            time.sleep(2)  # let the viewer settle
            page.screenshot(path=str(screenshot), full_page=True)
    else:
        page.locator("#stop").click()
        wait_for_status(page, "stopped", 3600)
    page.close()
    return times


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--prompt", default="a ceramic owl")
    p.add_argument("--full-runs", type=int, default=1)
    p.add_argument("--preview-runs", type=int, default=2)
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 on a shared machine)")
    p.add_argument("--screenshot", type=Path, help="save the page after the first full run here")
    p.add_argument("--out", type=Path, help="run folders (default: a temporary folder)")
    args = p.parse_args()

    import torch
    from playwright.sync_api import sync_playwright

    import app
    from webdemo import chromium_path, launch

    torch.set_num_threads(args.threads)
    out = args.out or Path(tempfile.mkdtemp(prefix="ui3d-web-demo-"))
    path, why = chromium_path()
    if path is None:
        sys.exit(f"no headless Chromium: {why}")
    demo = app.build_demo(out)
    _, url, _ = app.launch(demo, out, "127.0.0.1", None, prevent_thread_lock=True, quiet=True)
    results = []
    with sync_playwright() as pw:
        browser = launch(pw, path)
        for i in range(args.full_runs + args.preview_runs):
            full = i < args.full_runs
            times = one_run(browser, url, args.prompt, full, args.screenshot if i == 0 else None)
            results.append(times)
            print(f"run {i + 1} ({'full' if full else 'preview'}): " +
                  ", ".join(f"{k} {v:.1f}" if isinstance(v, float) else f"{k} {v}" for k, v in times.items()),
                  flush=True)
        browser.close()
    demo.close()
    for key in ("preview_s", "mesh_s"):
        values = [r[key] for r in results if key in r]
        if values:
            print(f"median {key}: {statistics.median(values):.1f} over {len(values)} run(s)")


if __name__ == "__main__":
    main()
