"""The mask explorer in a live JupyterLab, driven by a real browser (Debian chromium + chromedriver, selenium).

JupyterLab is started on 127.0.0.1 with a throwaway notebook that builds a MaskExplorer over a small random BERT;
the test runs it, checks the widget renders live, changes the strategy and the ratio and asserts the masked
tokens change, checks the browser logged no JavaScript error, switches to the dark theme, and saves screenshots
under the test's tmp folder (the path is printed). Skipped, with the reason, where no browser is installed
(`.ci/run` installs it: `apt-get install chromium chromium-driver`).
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
TOKEN = "entmask-browser-test"
SENTENCE = ("The orchestra played a quiet piece while the violinist, who had practised for twenty years, waited "
            "for her solo in the second movement.")


def _skip_reason() -> str | None:
    if not (Path(CHROMIUM).exists() and Path(DRIVER).exists()):
        return ("no browser: Debian chromium + chromium-driver are not installed (apt-get install chromium "
                "chromium-driver; .ci/run installs them)")
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _notebook(path: Path, vocab: Path) -> None:
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(
        "from entmask import widgets as W\n"
        "from entmask.data import load_tokenizer\n"
        "from entmask.models import build_model\n"
        f"tok = load_tokenizer({str(vocab)!r})\n"
        "model = build_model('bert-micro', len(tok), seed=0).eval()\n"
        f"ex = W.MaskExplorer({{'micro': model}}, tok, sentence={SENTENCE!r}, strategy='high', ratio=0.15)\n"
        "ex")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, str(path))


def _executed(source: Path, out: Path) -> None:
    """The notebook executed headless as `entmask reproduce` does (no stored widget state; dead widget views
    dropped): what a user finds under runs/<profile>/notebooks/ and opens in JupyterLab later."""
    import nbformat
    from nbclient import NotebookClient

    from entmask.widgets import drop_widget_state

    nb = nbformat.read(str(source), as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", store_widget_state=False,
                   resources={"metadata": {"path": str(source.parent)}}).execute()
    nbformat.write(drop_widget_state(nb), str(out))


@pytest.fixture(scope="module")
def lab(tmp_path_factory, mirror):
    """One JupyterLab server for the module (starting one is most of a test's time)."""
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    tmp_path = tmp_path_factory.mktemp("lab-server")
    root = tmp_path / "lab"
    root.mkdir()
    _notebook(root / "explorer.ipynb", mirror.parent / "models" / "bert-base-uncased-vocab")
    _executed(root / "explorer.ipynb", root / "executed.ipynb")
    port = _free_port()
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(tmp_path / "jcfg"), JUPYTER_RUNTIME_DIR=str(tmp_path / "jrt"),
               JUPYTERLAB_SETTINGS_DIR=str(tmp_path / "settings"), JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "ws"))
    log = open(tmp_path / "lab.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         f"--ServerApp.token={TOKEN}", f"--ServerApp.root_dir={root}", "--allow-root",
         "--LabApp.expose_app_in_browser=True", "--ServerApp.open_browser=False"],
        stdout=log, stderr=subprocess.STDOUT, env=env, stdin=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):
            try:
                urllib.request.urlopen(f"{url}/api/status?token={TOKEN}", timeout=2)
                break
            except OSError:
                if proc.poll() is not None:
                    raise RuntimeError(f"JupyterLab exited: {(tmp_path / 'lab.log').read_text()[-2000:]}")
                time.sleep(0.5)
        else:
            raise RuntimeError(f"JupyterLab did not answer: {(tmp_path / 'lab.log').read_text()[-2000:]}")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture()
def browser(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                 "--no-first-run", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--window-size=1280,1000", f"--user-data-dir={tmp_path / 'chrome'}"):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    driver.set_page_load_timeout(120)
    try:
        yield driver
    finally:
        driver.quit()


def _wait(cond, timeout: float, what: str, driver=None, shots: Path | None = None):
    end = time.time() + timeout
    while time.time() < end:
        try:
            v = cond()
            if v:
                return v
        except Exception:  # noqa: BLE001 - the DOM changes under us while Lab renders
            pass
        time.sleep(0.5)
    if driver is not None and shots is not None:
        driver.save_screenshot(str(shots / f"timeout-{what.replace(' ', '-')}.png"))
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def _masked(driver) -> list[int]:
    return [int(e.get_attribute("data-idx"))
            for e in driver.find_elements("css selector", ".em-explorer-body span.em-tok[data-masked='1']")]


def test_mask_explorer_live_in_jupyterlab(lab, browser, tmp_path):
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    shots = tmp_path / "screenshots"
    shots.mkdir()
    d = browser
    d.get(f"{lab}/lab/tree/explorer.ipynb?token={TOKEN}")
    _wait(lambda: d.execute_script("return !!(window.jupyterapp && window.jupyterapp.shell.currentWidget "
                                   "&& window.jupyterapp.shell.currentWidget.sessionContext "
                                   "&& window.jupyterapp.shell.currentWidget.sessionContext.session "
                                   "&& window.jupyterapp.shell.currentWidget.sessionContext.session.kernel)"),
          120, "the notebook and its kernel", d, shots)
    d.execute_script("window.jupyterapp.commands.execute('notebook:run-all-cells')")
    _wait(lambda: d.find_elements("css selector", ".em-explorer-body span.em-tok"), 180, "the live widget", d, shots)
    body = d.find_element("css selector", ".em-explorer-body")
    assert body.get_attribute("data-strategy") == "high"
    high = _wait(lambda: _masked(d), 30, "masked tokens", d, shots)
    d.save_screenshot(str(shots / "light-high.png"))

    # strategy: the ipywidgets Dropdown is a <select>; its options include bernoulli
    sel = next(s for s in d.find_elements("css selector", ".widget-dropdown select")
               if "bernoulli" in [o.get_attribute("value") or o.text for o in s.find_elements("tag name", "option")]
               or "bernoulli" in s.text)
    Select(sel).select_by_visible_text("low")
    _wait(lambda: d.find_element("css selector", ".em-explorer-body").get_attribute("data-strategy") == "low", 60,
          "the strategy change", d, shots)
    low = _masked(d)
    assert low and low != high, (high, low)

    # ratio: type into the slider's readout, as a user can
    readout = next(r for r in d.find_elements("css selector", ".widget-slider .widget-readout")
                   if r.text.strip() in ("0.15", "0.150"))
    readout.click()
    readout.send_keys(Keys.CONTROL, "a")
    readout.send_keys("0.5", Keys.ENTER)
    _wait(lambda: len(_masked(d)) > len(low), 60, "the ratio change", d, shots)
    assert len(_masked(d)) > len(low)
    d.save_screenshot(str(shots / "light-low-r50.png"))

    # dark theme: the legend and tokens stay readable (text colour follows the theme)
    d.execute_script("window.jupyterapp.commands.execute('apputils:change-theme', {theme: 'JupyterLab Dark'})")
    _wait(lambda: d.execute_script("return document.body.dataset.jpThemeLight") == "false", 60, "the dark theme",
          d, shots)
    time.sleep(1)
    legend = d.find_element("css selector", ".em-explorer-body .em-legend")
    rgb = legend.value_of_css_property("color")
    d.save_screenshot(str(shots / "dark-low-r50.png"))
    light_text = [int(x) for x in rgb[rgb.index("(") + 1:rgb.index(")")].split(",")[:3]]
    assert sum(light_text) > 384, f"legend text {rgb} is dark on the dark theme"

    # layout at any length: tokens wrap at the visible width, only the chart scrolls, a cut text says so
    area = d.find_element("css selector", ".widget-textarea textarea")
    for n in (10, 40, 120, 600):
        area.clear()
        area.send_keys(" ".join(["violin"] * n))
        d.find_element("xpath", "//button[normalize-space()='Score']").click()
        _wait(lambda: len(d.find_elements("css selector", ".em-explorer-body span.em-tok")) == min(n, 126) + 2, 90,
              f"{n} tokens scored", d, shots)
        out = d.find_element("css selector", ".em-explorer-body")
        page_w = d.execute_script("return arguments[0].closest('.jp-OutputArea-output').clientWidth", out)
        tokens_w = d.execute_script("return arguments[0].querySelector('.em-tokens').scrollWidth", out)
        assert tokens_w <= page_w + 2, f"{n} tokens: the token list is {tokens_w}px in a {page_w}px output"
        chart = out.find_element("css selector", ".em-bars-wrap")
        wrap_w, chart_w = chart.size["width"], d.execute_script("return arguments[0].scrollWidth", chart)
        assert wrap_w <= page_w + 2, f"{n} tokens: the chart box is {wrap_w}px in a {page_w}px output"
        if n >= 120:
            assert chart_w > wrap_w  # the long chart scrolls inside its own box
        assert bool(out.find_elements("css selector", ".em-truncated")) == (n > 126)
        d.save_screenshot(str(shots / f"dark-{n}-tokens.png"))

    errors = [e for e in d.get_log("browser") if e["level"] == "SEVERE" and "favicon" not in e["message"]]
    widget_errors = [e for e in errors if "widget" in e["message"].lower() or "em-" in e["message"]]
    assert not widget_errors, json.dumps(widget_errors, indent=1)[:2000]
    print(f"screenshots: {shots}")


@pytest.mark.parametrize("trusted", [False, True])
def test_executed_notebook_shows_static_masks_in_lab(lab, browser, tmp_path, trusted):
    """An executed notebook opened in Lab, untrusted (HTML sanitised) and trusted: the masks are there as static
    HTML, and no widget says 'model not found'."""
    shots = tmp_path / "screenshots"
    shots.mkdir(exist_ok=True)
    d = browser
    d.get(f"{lab}/lab/tree/executed.ipynb?token={TOKEN}")
    _wait(lambda: d.execute_script("return !!(window.jupyterapp && window.jupyterapp.shell.currentWidget "
                                   "&& window.jupyterapp.shell.currentWidget.content "
                                   "&& window.jupyterapp.shell.currentWidget.content.widgets.length)"),
          120, "the executed notebook", d, shots)
    if trusted:
        d.execute_script("window.jupyterapp.commands.execute('notebook:trust')")
        _wait(lambda: d.find_elements("css selector", ".jp-Dialog-button.jp-mod-accept"), 30, "the trust dialog", d,
              shots)[0].click()
    toks = _wait(lambda: d.find_elements("css selector", ".jp-OutputArea-output span.em-tok"), 60,
                 "the static masks", d, shots)
    d.save_screenshot(str(shots / f"executed-{'trusted' if trusted else 'untrusted'}.png"))
    assert len(toks) > 10
    # the sanitiser of an untrusted notebook strips data-* attributes: the mask must show in what it keeps
    # (the class and the inline style: outline + underline), which is what a reader sees
    styles = [t.get_attribute("style") or "" for t in toks]
    k = int(d.find_element("css selector", ".jp-OutputArea-output").text.split("k=")[1].split(" ")[0])
    marked = [st for st in styles if "border: 2px solid rgb(29, 63, 214)" in st and "underline" in st]
    assert len(marked) == k, (k, styles[:3])
    bars = d.find_elements("css selector", ".jp-OutputArea-output .em-bar")
    assert len(bars) == len(toks)
    assert "model not found" not in d.find_element("css selector", ".jp-Notebook").text
    d.save_screenshot(str(shots / f"executed-{'trusted' if trusted else 'untrusted'}.png"))
    print(f"screenshots: {shots}")
