"""The web demo in a real headless Chromium: type a prompt, run it, watch the preview, get the mesh."""

from webdemo import chromium_path, start_run, wait_for_object, wait_for_status


def test_a_visitor_types_a_prompt_runs_it_and_sees_the_object(server, chromium, tmp_path):
    page = chromium.new_page(viewport={"width": 1400, "height": 1300})
    errors = []
    page.on("pageerror", lambda err: errors.append(str(err) + "\n" + (err.stack or "")))
    page.goto(server.url)
    assert page.locator("#prompt textarea").input_value() == "a ceramic owl"  # the first example
    start_run(page, "a red cube", steps=3)
    page.locator("#preview img").wait_for(timeout=120_000)  # the live validation image
    status = wait_for_status(page, "done", 240)
    assert "3 steps" in status and "iou" in status
    drawn = wait_for_object(page, "#mesh", 60)
    assert drawn > 0.01, f"the mesh viewer drew {drawn:.1%} of its canvas"
    assert page.locator("#splats canvas").count() == 0  # a NeRF run has no splats
    page.screenshot(path=tmp_path / "web_demo.png", full_page=True)
    assert not errors, errors  # (clearing a viewer that is still loading makes Gradio's Babylon code throw)

    start_run(page, "a ceramic dragon")  # bad input: one readable line, and the page keeps working
    error = wait_for_status(page, "error", 120)
    assert "unknown word 'dragon'" in error and "\n" not in error


def test_a_missing_chromium_is_a_skip_reason_and_never_an_install(tmp_path, monkeypatch):
    """A test command must not change the operating system: with no Chromium on PATH and package
    managers that would install one, the fixture's lookup names what to install and runs nothing."""
    calls = tmp_path / "calls"
    for tool in ("apt-get", "apt", "sudo"):
        (tmp_path / tool).write_text(f"#!/bin/sh\necho {tool} \"$@\" >> {calls}\n")
        (tmp_path / tool).chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    path, why = chromium_path()
    assert path is None and "no chromium or chromium-browser on PATH" in why and "apt-get install" in why
    assert not calls.exists(), calls.read_text()
