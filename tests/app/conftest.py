"""The web demo's fixtures: a real Gradio server on a free port whose runs are tiny, Gradio clients
to drive it, and a real headless Chromium."""

import os
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # offline: no usage reports
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # app.py sits at the top level, outside the installed packages


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    import app
    from webdemo import FORMATS, TINY

    out = tmp_path_factory.mktemp("app-out")
    demo = app.build_demo(out, TINY, formats=FORMATS)
    _, url, _ = app.launch(demo, out, "127.0.0.1", None, prevent_thread_lock=True, quiet=True)
    yield SimpleNamespace(url=url, out=out)
    demo.close()


@pytest.fixture
def client(server):
    from gradio_client import Client

    return Client(server.url, verbose=False)


@pytest.fixture(scope="session")
def chromium():
    """The Chromium already on PATH, headless; without one the test skips with the reason (the suite
    never installs it: CI does, in .ci/run)."""
    pytest.importorskip("playwright.sync_api", reason="needs Playwright's Python package: pip install playwright")
    from webdemo import chromium_path, launch
    from playwright.sync_api import sync_playwright

    path, why = chromium_path()
    if path is None:
        pytest.skip(f"no headless Chromium: {why}")
    with sync_playwright() as p:
        browser = launch(p, path)
        yield browser
        browser.close()
