"""The built-in web page (server/webui) against a real dinov3-server with API keys, in a real
headless Chromium driven by Selenium (chromium-driver from Debian: scripts/debian-test-packages.txt;
selenium from requirements.txt):

  - GET / (HEAD too), /ui/app.js and /ui/style.css serve the checked-in files byte for byte with
    their content types, the strict Content-Security-Policy and nosniff, and need no API key
    while /v1/models and /v2 inference do (so the page must ask for one);
  - in the browser: the page says it needs an API key, takes one, lists the served model; a
    test image (left half one flat colour, right half another: structure that random untrained
    weights keep) goes in through the file input, and the PCA canvas, blank before, is painted:
    the two halves get different colours, and its three components are those of numpy's SVD of
    the same features fetched from the same server (correlation > 0.999 each, with the sign
    rule of dinov3_client's pictures: the largest-magnitude loading positive);
  - a click on a patch (an ActionChains click at its place on the canvas) selects that patch,
    its cosine similarity to every patch equals numpy's and peaks at it, and the heat map ("hot":
    black at the lowest cosine, white at 1) is white at the clicked patch and near black over
    the other half;
  - a dropped file (a drop event carrying the same file) is analysed too;
  - the browser logs no error (a Content-Security-Policy violation would be one).
Screenshots and the canvases as PNG files are written to <build>/test-artifacts/web_page/
(their paths are printed). A missing browser, driver or selenium fails the test with how to
install it; it is never skipped. The waits are hang guards, not durations.
"""
import base64
import io
import json
import os
import shutil
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
from PIL import Image

from tests.integration.python.server_process import (ROOT, export_random_model, http_port,
                                                     running_server)

MODEL = "webpage"
API_KEY = "web-page-test-key-0123456789abcdef"
WAIT_SECONDS = 300  # hang guard of each wait in the browser and each HTTP call
ARTIFACTS = os.path.join(ROOT, os.environ.get("BUILD_DIR", "build"), "test-artifacts",
                         "web_page")
CHROMIUM = os.environ.get("DINOV3_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("DINOV3_TEST_CHROMEDRIVER", "/usr/bin/chromedriver")
INSTALL_HINT = ("install the browser and its driver: apt-get install -y chromium chromium-driver "
                "(scripts/debian-test-packages.txt; scripts/setup.sh does it), or point "
                "DINOV3_TEST_CHROMIUM / DINOV3_TEST_CHROMEDRIVER at them")
LEFT = (200, 40, 40)
RIGHT = (30, 70, 210)
# The heat map's colour map ("hot", as dinov3_client's pictures): bottom and top.
COLD = np.array([0, 0, 0])
HOT = np.array([255, 255, 255])
STATIC = [("/", "index.html", "text/html; charset=utf-8"),
          ("/ui/app.js", "app.js", "text/javascript; charset=utf-8"),
          ("/ui/style.css", "style.css", "text/css; charset=utf-8")]


def call(port, method, path, body=None, headers=None):
    """(status, headers, body bytes); HTTP errors are answers, not exceptions."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body,
                                     headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=WAIT_SECONDS) as answer:
            return answer.status, answer.headers, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def halves_png(path, width=256, height=128):
    image = Image.new("RGB", (width, height), LEFT)
    image.paste(RIGHT, (width // 2, 0, width, height))
    image.save(path, "PNG")
    return path


@pytest.fixture(scope="module")
def port(tmp_path_factory):
    directory = tmp_path_factory.mktemp("web_page")
    model = export_random_model(directory, seed=11, name=f"{MODEL}.pt")
    keys = directory / "keys.txt"
    keys.write_text(f"{API_KEY}\n")
    log = directory / "server.log"
    with running_server(model, log, f"--api_keys_file={keys}"):
        yield http_port(log)


@pytest.fixture(scope="module")
def artifacts():
    os.makedirs(ARTIFACTS, exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="module")
def browser():
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError as error:
        pytest.fail(f"selenium is missing ({error}): .venv/bin/pip install -r requirements.txt "
                    "(scripts/setup.sh does it)", pytrace=False)
    for path in (CHROMIUM, CHROMEDRIVER):
        if shutil.which(path) is None:
            pytest.fail(f"{path} is missing: {INSTALL_HINT}", pytrace=False)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    # --no-sandbox: Chromium's sandbox refuses to run as root (CI containers); the page is ours.
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--window-size=1280,1000", "--force-device-scale-factor=1"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    try:
        driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    except Exception as error:  # the reason Chromium cannot run here, verbatim
        pytest.fail(f"headless Chromium did not start: {error}\n({INSTALL_HINT})", pytrace=False)
    driver.set_script_timeout(WAIT_SECONDS)
    try:
        yield driver
    finally:
        driver.quit()


def wait_state(driver, wanted):
    """Waits for document.body.dataset.state in `wanted`; returns it, fails on a hang."""
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        state = driver.execute_script("return document.body.dataset.state")
        if state in wanted:
            return state
        time.sleep(0.05)
    pytest.fail(f"the page stayed '{state}' (wanted {wanted}): "
                f"{driver.find_element('id', 'status').text}")


def canvas_pixels(driver, canvas_id, save_as=None):
    """The canvas's RGBA pixels (H x W x 4) through toDataURL (the page's own getImageData
    would give the same bytes: the canvas is not tainted)."""
    data_url = driver.execute_script(
        "return document.getElementById(arguments[0]).toDataURL('image/png')", canvas_id)
    raw = base64.b64decode(data_url.split(",", 1)[1])
    if save_as is not None:
        with open(save_as, "wb") as f:
            f.write(raw)
        print(f"saved {save_as}")
    return np.asarray(Image.open(io.BytesIO(raw)).convert("RGBA")).astype(np.int32)


def screenshot(driver, path):
    assert driver.save_screenshot(path), path
    print(f"saved {path}")


def reference_features(port, image_path, height, max_patches):
    """PATCH_TOKENS [P, D] float64 and the grid, fetched as JSON (IMAGE as base64) with the
    page's preprocessing parameters."""
    with open(image_path, "rb") as f:
        encoded = base64.b64encode(f.read()).decode()
    request = {"inputs": [{"name": "IMAGE", "datatype": "BYTES", "shape": [1],
                           "data": [encoded]}],
               "outputs": [{"name": "PATCH_TOKENS"}],
               "parameters": {"resize": "keep_aspect", "height": height,
                              "max_patches": max_patches}}
    status, _, body = call(port, "POST", f"/v2/models/{MODEL}/infer",
                           json.dumps(request).encode(),
                           {"Content-Type": "application/json",
                            "Authorization": f"Bearer {API_KEY}"})
    assert status == 200, body[:500]
    output = json.loads(body)["outputs"][0]
    features = np.array(output["data"], dtype=np.float64).reshape(output["shape"][1:])
    return features, output["parameters"]["grid_height"], output["parameters"]["grid_width"]


def test_static_files_are_served_without_a_key(port):
    for path, name, content_type in STATIC:
        with open(os.path.join(ROOT, "server", "webui", name), "rb") as f:
            checked_in = f.read()
        status, headers, body = call(port, "GET", path)
        assert status == 200, (path, status, body[:300])
        assert body == checked_in, path
        assert headers["Content-Type"] == content_type, path
        csp = headers["Content-Security-Policy"]
        assert "default-src 'none'" in csp and "script-src 'self'" in csp, csp
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp, csp
        assert headers["X-Content-Type-Options"] == "nosniff"
        status, headers, body = call(port, "HEAD", path)
        assert (status, body) == (200, b""), path
    status, headers, _ = call(port, "POST", "/", b"")
    assert status == 405 and headers["Allow"] == "GET"
    # What the page calls needs the key, so the page has to ask for it.
    assert call(port, "GET", "/v1/models")[0] == 401
    assert call(port, "POST", f"/v2/models/{MODEL}/infer", b"{}")[0] == 401


def test_pca_and_similarity_in_a_browser(port, browser, artifacts, tmp_path):
    image_path = halves_png(os.path.join(artifacts, "halves.png"))
    browser.get(f"http://127.0.0.1:{port}/")
    assert wait_state(browser, ("error", "idle")) == "error"  # no key yet
    assert "API key" in browser.find_element("id", "status").text
    browser.find_element("id", "api-key").send_keys(API_KEY)
    browser.find_element("id", "use-key").click()
    wait_state(browser, ("idle",))
    assert browser.find_element("id", "model").get_attribute("value") == MODEL

    blank = canvas_pixels(browser, "pca")
    assert not blank.any(), "the PCA canvas is painted before any image"

    browser.find_element("id", "file").send_keys(image_path)
    if wait_state(browser, ("ready", "error")) == "error":
        pytest.fail(f"the page failed: {browser.find_element('id', 'status').text}")
    timings = browser.find_element("id", "timings").text
    assert timings.startswith("round trip ") and " ms" in timings, timings
    assert MODEL in browser.find_element("id", "status").text
    screenshot(browser, os.path.join(artifacts, "pca.png"))
    pca = canvas_pixels(browser, "pca", os.path.join(artifacts, "pca_canvas.png"))
    height, width = pca.shape[:2]
    assert width == 2 * height, pca.shape  # the picture keeps the image's aspect
    assert (pca[..., 3] == 255).all(), "the PCA canvas is not painted all over"
    # Away from the boundary, each half is one colour, and the two differ.
    left = pca[height // 4:3 * height // 4, width // 10:4 * width // 10, :3].reshape(-1, 3)
    right = pca[height // 4:3 * height // 4, 6 * width // 10:9 * width // 10, :3].reshape(-1, 3)
    assert np.abs(left.mean(0) - right.mean(0)).max() > 100, (left.mean(0), right.mean(0))

    result = browser.execute_script(
        "const r = window.dinov3WebPage.result;"
        "return {model: r.model, gh: r.gridHeight, gw: r.gridWidth, dim: r.dim,"
        " features: Array.from(r.features), scores: r.scores.map((s) => Array.from(s))};")
    size = int(browser.find_element("id", "size").get_attribute("value"))
    max_patches = int(browser.find_element("id", "max-patches").get_attribute("value"))
    features, grid_height, grid_width = reference_features(port, image_path, size, max_patches)
    assert (result["model"], result["gh"], result["gw"]) == (MODEL, grid_height, grid_width)
    page_features = np.array(result["features"]).reshape(features.shape)
    np.testing.assert_allclose(page_features, features, rtol=1e-6, atol=1e-6)
    # numpy's components, each signed so that its largest-magnitude loading is positive (the
    # page's rule, as dinov3_client's pictures).
    centred = features - features.mean(0)
    _, _, directions = np.linalg.svd(centred, full_matrices=False)
    for k in range(3):
        direction = directions[k] * np.sign(directions[k][np.argmax(np.abs(directions[k]))])
        correlation = np.corrcoef(np.array(result["scores"][k]), centred @ direction)[0, 1]
        assert correlation > 0.999, (k, correlation)

    # Click a patch in the middle of the right half.
    row, col = grid_height // 2, 3 * grid_width // 4
    from selenium.webdriver.common.action_chains import ActionChains
    canvas = browser.find_element("id", "pca")
    box = canvas.rect
    dx = (col + 0.5) / grid_width * box["width"] - box["width"] / 2  # from the element's centre
    dy = (row + 0.5) / grid_height * box["height"] - box["height"] / 2
    ActionChains(browser).move_to_element_with_offset(canvas, round(dx), round(dy)).click() \
        .perform()
    picked = browser.execute_script(
        "const p = window.dinov3WebPage;"
        "return p.selected && {selected: p.selected, similarity: Array.from(p.similarity)};")
    assert picked is not None, "the click selected no patch"
    assert picked["selected"] == {"row": row, "col": col}
    similarity = np.array(picked["similarity"])
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    np.testing.assert_allclose(similarity, unit @ unit[row * grid_width + col], atol=1e-5)
    assert int(np.argmax(similarity)) == row * grid_width + col
    assert similarity[row * grid_width + col] == pytest.approx(1.0, abs=1e-6)

    screenshot(browser, os.path.join(artifacts, "similarity.png"))
    heat = canvas_pixels(browser, "sim", os.path.join(artifacts, "similarity_canvas.png"))
    y = int((row + 0.5) / grid_height * heat.shape[0])
    x = int((col + 0.5) / grid_width * heat.shape[1])
    assert np.abs(heat[y, x, :3] - HOT).max() <= 2, heat[y, x]
    cold = heat[heat.shape[0] // 4:3 * heat.shape[0] // 4, width // 10:4 * width // 10, :3]
    assert np.abs(cold.reshape(-1, 3).mean(0) - COLD).max() <= 40, cold.reshape(-1, 3).mean(0)

    # The same file dropped on the drop zone is analysed again (the drop handler).
    browser.execute_script("window.dinov3WebPage.result = null;")
    browser.execute_script(
        "const file = document.getElementById('file').files[0];"
        "const transfer = new DataTransfer(); transfer.items.add(file);"
        "document.getElementById('drop').dispatchEvent("
        "  new DragEvent('drop', {dataTransfer: transfer, bubbles: true, cancelable: true}));")
    deadline = time.monotonic() + WAIT_SECONDS
    while not browser.execute_script("return window.dinov3WebPage.result !== null"):
        assert time.monotonic() < deadline, browser.find_element("id", "status").text
        assert browser.execute_script("return document.body.dataset.state") != "error", \
            browser.find_element("id", "status").text
        time.sleep(0.05)

    # The one expected failure: the first GET /v1/models, before the key was given.
    errors = [entry["message"] for entry in browser.get_log("browser")
              if entry["level"] == "SEVERE"]
    expected = [m for m in errors if "/v1/models - " in m and "status of 401" in m]
    assert len(expected) == 1 and errors == expected, errors
