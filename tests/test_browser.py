"""The walkthrough in a real browser: JupyterLab + Chromium, notebooks 00 to 06 and 08 run as a person runs them.

Run with ``make test-browser`` (``make test`` deselects it: it is marked ``browser``).
It starts JupyterLab from the project's environment on 127.0.0.1 with a random port
and token, on a temporary copy of ``notebooks/`` and ``scripts/`` (so autosave never
touches the repository) and a fresh local workspace (the session's, from conftest.py).
Playwright drives the system's Chromium (``CHROMIUM``, default ``/usr/bin/chromium``;
nothing is downloaded). For each notebook it runs all cells from the Run menu, waits
for the kernel to finish, and checks what a person would see: no cell shows an error,
every plot is an image that loaded, and the RunDetails of 03-train (a single run),
06-tune (a HyperDrive sweep: one line per child) and 08-distributed (2 workers: each
worker's log) is a live widget that ends Completed; in 00-setup, a concept box, an exercise and the concepts
diagram (Mermaid, drawn as an SVG) render. 07-deploy is left out (its web
service is tested under nbval); 06 and 08 use the session's small settings from
conftest.py (3 epochs, 4 children). A screenshot of each notebook, scrolled to its
key output, goes to ``build/screenshots/``. The server and the browser are stopped even when a check fails.
Last, a Traditional Chinese notebook (notebooks-zh_TW/01-dataset.ipynb) runs the same way: its prose is Chinese and
its figures' Chinese titles are drawn in the CJK font (compared with the same figure drawn in a font that lacks the
glyphs), and the server serves JupyterLab's own interface in each language the walkthrough has (language packs).
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from support import PROJECT, stop_process_group

pytestmark = pytest.mark.browser

NOTEBOOKS = [
    "00-setup.ipynb",
    "01-dataset.ipynb",
    "02-compute.ipynb",
    "03-train.ipynb",
    "04-register.ipynb",
    "05-download-and-validate.ipynb",
    "06-tune.ipynb",
    "07-deploy.ipynb",
    "08-distributed.ipynb",
    "chainer/train-and-register-chainer.ipynb",
    # the SDK v2 track, after the v1 walkthrough whose MNIST files it reuses
    "v2/00-connect.ipynb",
    "v2/01-data.ipynb",
    "v2/02-compute.ipynb",
    "v2/03-train.ipynb",
    "v2/04-tune.ipynb",
    "v2/05-register-deploy.ipynb",
    # last, as in make run: deletes what this student left running
    "99-cleanup.ipynb",
]
#: The notebook whose teaching material is checked as a student sees it: a concept box, an exercise, the diagram
TEACHING = "00-setup.ipynb"
#: The notebooks whose RunDetails view is checked, and what else it must show.
RUN_VIEWS = {"03-train.ipynb", "06-tune.ipynb", "08-distributed.ipynb"}
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = PROJECT / "build" / "screenshots"
NOTEBOOK_TIMEOUT_S = int(os.environ.get("BROWSER_NOTEBOOK_TIMEOUT", "900"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab on a copy of the notebooks; yields its base URL and token; stops it and checks the port is free."""
    root = tmp_path_factory.mktemp("lab")
    for folder in ("notebooks", "notebooks-zh_TW", "scripts"):
        shutil.copytree(PROJECT / folder, root / folder, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    settings = root / "settings" / "@jupyterlab"
    for extension, plugin, value in [
        ("apputils-extension", "notification", '{"fetchNews": "false"}'),  # no news toast over the screenshots
        ("notebook-extension", "tracker", '{"autoStartDefaultKernel": true}'),  # no kernel chooser dialog
    ]:
        (settings / extension).mkdir(parents=True, exist_ok=True)
        (settings / extension / f"{plugin}.jupyterlab-settings").write_text(value)
    # As make lab LANG=zh_TW: JupyterLab serves the install's CJK font (this Chromium has none of its own)
    from helpers.i18n import write_lab_fonts

    write_lab_fonts(root / "config")
    env = dict(
        os.environ,
        JUPYTERLAB_SETTINGS_DIR=str(root / "settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(root / "workspaces"),
        JUPYTER_CONFIG_DIR=str(root / "config"),
        JUPYTER_RUNTIME_DIR=str(root / "runtime"),
    )
    port, token = _free_port(), secrets.token_hex(24)
    command = [
        sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
        "--LabApp.custom_css=True",
    ]  # fmt: skip
    if os.geteuid() == 0:
        command.append("--allow-root")  # containers and CI machines often run as root
    log = open(root / "jupyterlab.log", "wb")
    server = subprocess.Popen(command, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not start; its log:\n{(root / 'jupyterlab.log').read_text()[-3000:]}")
                time.sleep(0.5)
        yield base, token
    finally:
        stop_process_group(server.pid)  # the server and the kernels it started
        server.wait()
        log.close()
        assert not _listening(port), f"something still listens on port {port} after JupyterLab was stopped"


@pytest.fixture(scope="module")
def page(lab):
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).is_file():
        pytest.fail(f"Chromium not found at {CHROMIUM}: install it (`sudo apt install chromium`) or set CHROMIUM.")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM)
        try:
            yield browser.new_page(viewport={"width": 1280, "height": 900})
        finally:
            browser.close()


def run_all(page, base: str, token: str, name: str) -> None:
    """Open a notebook, choose Run > Run All Cells, wait until every code cell has run and the kernel is idle."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    path = name if name.startswith("notebooks-") else f"notebooks/{name}"  # a translation: notebooks-<lang>/...
    page.goto(f"{base}/lab/tree/{path}?reset&token={token}")  # reset: only this notebook open
    page.wait_for_selector(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell", timeout=60_000)
    notebook = _notebook(page)
    # The kernel starts with the notebook; cells queued before it has settled can be dropped. Wait until
    # it has been idle for a few seconds in a row.
    settled, deadline = 0, time.monotonic() + 120
    while settled < 3 and time.monotonic() < deadline:
        settled = settled + 1 if _idle(page) else 0
        time.sleep(1)
    prompts = notebook.locator(".jp-CodeCell .jp-InputPrompt")
    for _ in range(10):  # the menu item does nothing until the kernel is connected: try again until cells queue
        page.locator(".lm-MenuBar-item", has_text="Run").first.click()
        page.locator(".lm-Menu-item", has_text="Run All Cells").first.click()
        try:
            page.wait_for_function(
                "els => els.some(e => e.textContent.trim() !== '[ ]:')", arg=prompts.element_handles(), timeout=5_000
            )
            break
        except PlaywrightTimeout:
            continue
    deadline = time.monotonic() + NOTEBOOK_TIMEOUT_S
    while time.monotonic() < deadline:
        texts = prompts.all_text_contents()
        if texts and all(t.strip() not in ("[ ]:", "[*]:", "") for t in texts) and _idle(page):
            return
        if _error_cells(page):
            return  # a failed cell stops Run All: the checks below name it
        time.sleep(1)
    pytest.fail(f"{name}: the cells did not finish within {NOTEBOOK_TIMEOUT_S} s")


def _notebook(page):
    return page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)").first


def _idle(page) -> bool:
    status = page.locator(".jp-Notebook-ExecutionIndicator").first.get_attribute("data-status")
    return status == "idle"


def _error_cells(page) -> list[str]:
    """'cell N (first line of its code): error' for each code cell that shows an error.

    JupyterLab renders an error like stderr text; unlike a warning, it carries IPython's traceback.
    """
    found = []
    for index, cell in enumerate(_notebook(page).locator(".jp-CodeCell").all(), start=1):
        for output in cell.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']").all():
            text = output.text_content() or ""
            if "Traceback (most recent call last)" in text:
                first_line = (cell.locator(".jp-InputArea-editor .cm-line").first.text_content() or "").strip()
                message = [ln for ln in text.strip().splitlines() if ln.strip()]
                found.append(f"cell {index} ({first_line[:60]!r}) raised {message[-1] if message else 'an error'}")
    return found


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_in_jupyterlab(lab, page, name):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    try:
        check_notebook(lab, page, name)
    except BaseException:
        page.screenshot(path=str(SCREENSHOTS / Path(name).name.replace(".ipynb", "-failed.png")))  # what it showed
        raise


#: Whether an image loaded: at once when it has, else when it does (or fails to), within 10 s
IMAGE_LOADED = """img => (img.complete && img.naturalWidth > 0) || new Promise(done => {
    img.addEventListener("load", () => done(img.naturalWidth > 0));
    img.addEventListener("error", () => done(false));
    setTimeout(() => done(img.complete && img.naturalWidth > 0), 10000);
})"""


def check_notebook(lab, page, name):
    base, token = lab
    run_all(page, base, token, name)
    notebook = _notebook(page)

    errors = _error_cells(page)
    assert not errors, f"{name}: " + "; ".join(errors)
    # The run view first: its last refresh (after the run ended) may still be on its way.
    view = _check_run_details(page, notebook, name) if name in RUN_VIEWS else None

    # Plots: images that loaded, never a "<Figure size ...>" text in their place.
    images = notebook.locator(".jp-OutputArea-output img")
    expects_plot = "plots." in (PROJECT / "notebooks" / name).read_text()
    if expects_plot:
        assert images.count() >= 1, f"{name}: no plot was rendered as an image"
    for i in range(images.count()):
        image = images.nth(i)
        image.scroll_into_view_if_needed()  # JupyterLab may load an image only when it is scrolled to
        assert image.evaluate(IMAGE_LOADED), f"{name}: image {i} is broken"
    texts = " ".join(notebook.locator(".jp-OutputArea-output[data-mime-type='text/plain']").all_text_contents())
    assert "<Figure size" not in texts, f"{name}: a plot was shown as text"

    if name == TEACHING:
        _check_teaching_material(notebook, name)

    key = images.last if images.count() else notebook.locator(".jp-OutputArea-output").last
    if view is not None:
        key = view
    key.scroll_into_view_if_needed()
    page.wait_for_timeout(1_000)  # let the cells scrolled into view paint
    page.screenshot(path=str(SCREENSHOTS / Path(name).name.replace(".ipynb", ".png")))


def _check_teaching_material(notebook, name):
    """A concept box (a blockquote that starts "What is"), an exercise (a "Try it" heading) and the concepts
    diagram (docs/concepts.mmd in a mermaid block, which JupyterLab draws as an SVG) render as a student sees them."""
    from playwright.sync_api import expect

    rendered = notebook.locator(".jp-MarkdownCell .jp-RenderedMarkdown")
    box = rendered.locator("blockquote", has_text="What is").first
    expect(box).to_have_count(1)
    assert (box.text_content() or "").strip().startswith("What is"), f"{name}: the concept box does not start so"
    expect(rendered.locator("h2", has_text="Try it")).to_have_count(1)
    # JupyterLab draws a mermaid block as an SVG image in a figure; a diagram it cannot draw shows a warning instead
    diagram = rendered.locator(".jp-RenderedMermaid:not(.jp-mod-warning) figure img").first
    diagram.scroll_into_view_if_needed(timeout=30_000)
    assert diagram.evaluate(IMAGE_LOADED), f"{name}: the concepts diagram did not render"
    svg = diagram.evaluate("img => decodeURIComponent(img.src.split(',')[1] || '')")
    assert "<svg" in svg and "Workspace" in svg, f"{name}: the diagram is not the concepts' SVG"


def _check_run_details(page, notebook, name):
    """RunDetails rendered as a widget (not its text fallback), shows Completed once the run has ended, and
    shows what its kind of run has: a sweep's children one line each, a multi-worker run's worker logs."""
    widget = notebook.locator(".jp-OutputArea-output .widget-vbox").first
    assert widget.count(), f"{name}: RunDetails did not render as a widget"
    fallback = " ".join(notebook.locator(".jp-OutputArea-output").all_text_contents())
    assert "VBox(children=" not in fallback, f"{name}: RunDetails shows its text fallback"
    from playwright.sync_api import expect

    # The view refreshes every 2 s from a kernel thread, replacing the element each time: re-query until Completed.
    expect(widget.locator(".aml-run-status")).to_have_text("Completed", timeout=60_000)
    expect(widget.locator(".aml-portal-link")).to_contain_text("local run folder")  # a link to studio on Azure
    expect(widget.locator(".aml-run-error")).to_have_count(0)
    if name == "06-tune.ipynb":
        children = int(os.environ["AML_SWEEP_RUNS"])
        expect(widget.locator(".aml-sweep-children tr.aml-child")).to_have_count(children)
        expect(widget.locator(".aml-sweep-summary")).to_contain_text(f"{children} child runs")
    elif name == "08-distributed.ipynb":
        expect(widget.locator(".aml-run-workers")).to_have_text("2")
        expect(widget.locator("pre.aml-worker-log")).to_have_count(2)
    else:
        expect(widget.locator("pre.aml-log")).to_contain_text("Final test accuracy")
    return widget


#: The translated notebook the browser runs: its plots have the helpers' Chinese titles (class balance, digits)
ZH_TW_NOTEBOOK = "notebooks-zh_TW/01-dataset.ipynb"


def _title_band(gray):
    """The rows above a figure's axes (its title): down to the first row that is mostly dark (the top spine)."""
    import numpy as np

    dark = (gray < 0.5).mean(axis=1)
    rows = np.nonzero(dark > 0.5)[0]
    return gray[: rows[0]] if len(rows) else gray[: gray.shape[0] // 8]


def _render_class_balance(dpi: float, cjk: bool):
    """helpers.plots.class_balance as the kernel draws it in zh_TW, with the CJK font or with DejaVu Sans only."""
    import io

    import matplotlib as mpl
    import matplotlib.image as mpimg
    import matplotlib.pyplot as plt
    import numpy as np

    from helpers import i18n, plots

    saved = os.environ.get("AML_LANG")
    os.environ["AML_LANG"] = "zh_TW"
    real_show, real_font = plt.show, plots.use_language_font
    plt.show = lambda: None
    if not cjk:
        plots.use_language_font = lambda: None
    try:
        with mpl.rc_context({} if cjk else {"font.sans-serif": ["DejaVu Sans"], "font.family": ["sans-serif"]}):
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "Glyph ... missing from font(s) DejaVu Sans": the point of it
                fig = plots.class_balance(np.arange(10).repeat(40), np.arange(10).repeat(10))
                buffer = io.BytesIO()
                fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
                plt.close(fig)
    finally:
        plt.show, plots.use_language_font = real_show, real_font
        if saved is None:
            os.environ.pop("AML_LANG", None)
        else:
            os.environ["AML_LANG"] = saved
        i18n._translations.cache_clear()
    return mpimg.imread(io.BytesIO(buffer.getvalue()))[..., :3].mean(axis=2)


def test_traditional_chinese_notebook_renders_its_chinese(lab, page):
    import base64
    import io

    import matplotlib.image as mpimg
    import numpy as np

    from helpers import i18n

    base, token = lab
    run_all(page, base, token, ZH_TW_NOTEBOOK)
    notebook = _notebook(page)
    assert not _error_cells(page), "; ".join(_error_cells(page))
    heading = notebook.locator(".jp-MarkdownCell .jp-RenderedMarkdown h1").first.text_content() or ""
    assert any("\u4e00" <= ch <= "\u9fff" for ch in heading), f"the first heading is not Chinese: {heading!r}"
    # The prose's Chinese is drawn in the font JupyterLab serves (custom.css), not as empty boxes
    from helpers.i18n import CJK_WEB_FAMILY

    used = page.evaluate(
        """family => document.fonts.ready.then(() => [...document.fonts].some(
            f => f.family.replace(/"/g, '') === family && f.status === 'loaded'))""",
        CJK_WEB_FAMILY,
    )
    assert used, f"the page did not load {CJK_WEB_FAMILY} for its Chinese text"
    texts = " ".join(notebook.locator(".jp-OutputArea-output").all_text_contents())
    assert "missing from font" not in texts, "matplotlib drew a Chinese title in a font without the glyphs"

    title = i18n.translation("zh_TW").gettext("Class balance")
    images = notebook.locator(".jp-OutputArea-output img")
    found = None
    for i in range(images.count()):
        image = images.nth(i)
        image.scroll_into_view_if_needed()
        assert image.evaluate(IMAGE_LOADED), f"{ZH_TW_NOTEBOOK}: image {i} is broken"
        data = base64.b64decode(image.evaluate("img => img.src.split(',')[1]"))
        picture = mpimg.imread(io.BytesIO(data))[..., :3].mean(axis=2)
        if 2.0 < picture.shape[1] / picture.shape[0] < 2.8:  # class_balance is 7 x 3 inches
            found = (image, picture)
    assert found, f"{ZH_TW_NOTEBOOK}: no class balance chart among its {images.count()} images"
    image, shown = found
    image.scroll_into_view_if_needed()
    page.screenshot(path=str(SCREENSHOTS / "zh_TW-01-dataset.png"))
    # The same chart drawn here at the browser image's scale: with the CJK font, and with a font lacking the glyphs
    dpi = 100 * shown.shape[1] / _render_class_balance(100, cjk=True).shape[1]
    bands = [_title_band(shown)] + [_title_band(_render_class_balance(dpi, cjk)) for cjk in (True, False)]
    height, width = min(b.shape[0] for b in bands), min(b.shape[1] for b in bands)
    shown_band, cjk_band, tofu_band = (b[:height, :width] for b in bands)
    like_cjk, like_tofu = np.abs(shown_band - cjk_band).mean(), np.abs(shown_band - tofu_band).mean()
    assert like_cjk < like_tofu, (
        f"the chart's title {title!r} looks like a font without CJK glyphs drew it "
        f"(difference {like_cjk:.4f} to the CJK render, {like_tofu:.4f} to the render without the glyphs)"
    )


def test_jupyterlab_serves_its_interface_in_each_language(lab):
    """The language packs (make install) are served: JupyterLab's own menus in each language of the walkthrough."""
    import json

    from helpers.i18n import LANGUAGES

    base, token = lab
    for lang in LANGUAGES.values():
        with urllib.request.urlopen(f"{base}/lab/api/translations/{lang.jupyterlab}?token={token}") as response:
            pack = json.load(response)
        messages = pack.get("data", {}).get("jupyterlab", {})
        assert messages, f"no JupyterLab language pack for {lang.jupyterlab}: {str(pack)[:200]}"
        if lang.code != "hu":  # the Hungarian pack (4.5.post3) translates nothing yet: docs/translations.md
            shown = messages.get("Run All Cells", ["Run All Cells"])
            assert shown[0] != "Run All Cells", f"{lang.jupyterlab}: JupyterLab's Run menu is not translated"
