"""The gallery in a real browser: Debian's Chromium driven by selenium through chromedriver.

Skipped where Chromium or chromedriver is missing, unless ``CI`` is set: then it fails (CI
installs them, see ``.ci/run``). Screenshots go to the test's temp directory.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from served import run_in_thread

from mediastore import MediaStore
from mediastore.testing import image_bytes, pdf_bytes

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


def _need(what: str, found: object) -> None:
    if found:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{what} is missing, and CI must run the browser tests")
    pytest.skip(f"{what} is not installed")


FFMPEG = ("ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25")


def make_video(dest: Path) -> Path:
    """A 3-second test pattern: H.264 in MP4 where ffmpeg has libx264, else VP8 in WebM."""
    encoders = subprocess.run(
        ["ffmpeg", "-hide_banner", "-encoders"], capture_output=True, text=True, check=True
    ).stdout
    if "libx264" in encoders:
        out, codec = dest / "out.mp4", ["-c:v", "libx264", "-pix_fmt", "yuv420p"]
        codec += ["-movflags", "+faststart"]
    else:
        out, codec = dest / "out.webm", ["-c:v", "libvpx", "-b:v", "300k"]
    subprocess.run(
        [*FFMPEG, "-t", "3", *codec, str(out)],
        check=True,
        timeout=120,
    )
    return out


@pytest.fixture
def gallery(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """A store of 70 small images, a video and a PDF, served on loopback."""
    _need("ffmpeg", shutil.which("ffmpeg"))
    root = tmp_path / "store"
    with MediaStore(root) as writer:
        for i in range(70):
            writer.add_bytes(image_bytes("PNG", (40 + i, 30), (i * 3, 80, 200 - i)))
        video = writer.add_file(make_video(tmp_path), url="https://example.com/v").md5
        pdf = writer.add_bytes(pdf_bytes(), url="https://example.com/d.pdf").md5
    store = MediaStore(root, read_only=True)
    url, stop = run_in_thread(store)
    try:
        yield url, {"video": video, "pdf": pdf}
    finally:
        stop()
        store.close()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    """Headless Chromium with its console log kept."""
    _need("chromium", CHROMIUM)
    _need("chromedriver", CHROMEDRIVER)
    webdriver = pytest.importorskip("selenium.webdriver")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1200,900"):
        options.add_argument(flag)
    options.add_argument("--autoplay-policy=no-user-gesture-required")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = webdriver.ChromeService(executable_path=CHROMEDRIVER)
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def _errors(driver: Any) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def _wait(predicate: Any, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("timed out waiting")


def test_gallery_in_chromium(
    gallery: tuple[str, dict[str, str]], browser: Any, tmp_path: Path
) -> None:
    """Open the grid (thumbnails load), page, filter, open a video's page and play it until
    its time advances, seek it (byte ranges), open a PDF's page, the stats page; no console
    error anywhere."""
    from selenium.webdriver.common.by import By

    url, md5s = gallery
    shots = tmp_path / "screenshots"
    shots.mkdir()
    browser.get(url)
    assert len(browser.find_elements(By.CSS_SELECTOR, ".grid li")) == 60
    images = browser.find_elements(By.CSS_SELECTOR, ".grid img")
    assert len(images) >= 58  # the video and the PDF may sort among the first 60
    loaded = "return arguments[0].complete && arguments[0].naturalWidth > 0"
    _wait(lambda: all(browser.execute_script(loaded, i) for i in images[:12]))
    assert all(i.get_attribute("alt") for i in images)
    browser.save_screenshot(str(shots / "grid.png"))

    browser.find_element(By.LINK_TEXT, "Next page").click()
    _wait(lambda: "after=" in browser.current_url)
    _wait(lambda: len(browser.find_elements(By.CSS_SELECTOR, ".grid li")) == 12)  # 72 files
    browser.find_element(By.LINK_TEXT, "First page").click()
    _wait(lambda: "after=" not in browser.current_url)
    _wait(lambda: len(browser.find_elements(By.CSS_SELECTOR, ".grid li")) == 60)

    select = browser.find_element(By.NAME, "type")
    select.find_element(By.CSS_SELECTOR, "option[value=video]").click()
    browser.find_element(By.CSS_SELECTOR, "form.filters button").click()
    _wait(lambda: "type=video" in browser.current_url)
    _wait(lambda: len(browser.find_elements(By.CSS_SELECTOR, ".grid a")) == 1)
    tiles = browser.find_elements(By.CSS_SELECTOR, ".grid a")
    browser.save_screenshot(str(shots / "filtered.png"))

    tiles[0].click()
    _wait(lambda: md5s["video"] in browser.current_url)
    video = _wait(lambda: browser.find_elements(By.TAG_NAME, "video"))[0]
    browser.execute_script("arguments[0].muted = true; arguments[0].play();", video)
    _wait(lambda: browser.execute_script("return arguments[0].currentTime", video) > 0.3)
    browser.execute_script("arguments[0].currentTime = 2.5;", video)
    _wait(lambda: browser.execute_script("return arguments[0].currentTime", video) >= 2.5)
    assert browser.execute_script("return arguments[0].error", video) is None
    browser.save_screenshot(str(shots / "video.png"))

    browser.get(f"{url}item/{md5s['pdf']}")
    assert "https://example.com/d.pdf" in browser.page_source
    browser.get(f"{url}stats")
    assert browser.find_elements(By.CSS_SELECTOR, "svg[role=img]")
    browser.save_screenshot(str(shots / "stats.png"))
    assert _errors(browser) == []
    assert len(list(shots.iterdir())) == 4


def test_keyboard_and_phone(
    gallery: tuple[str, dict[str, str]], browser: Any, tmp_path: Path
) -> None:
    """On a phone-sized window nothing scrolls sideways; Tab reaches a tile and Enter opens it."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    url, _ = gallery
    browser.set_window_size(390, 844)
    browser.get(url)
    wide = "return document.documentElement.scrollWidth <= window.innerWidth"
    assert browser.execute_script(wide)
    browser.save_screenshot(str(tmp_path / "phone.png"))
    in_grid = "return document.activeElement.closest('.grid') !== null"
    body = browser.find_element(By.TAG_NAME, "body")
    body.send_keys(Keys.TAB)
    for _ in range(30):
        if browser.execute_script(in_grid):
            break
        browser.switch_to.active_element.send_keys(Keys.TAB)
    assert browser.execute_script(in_grid)
    browser.switch_to.active_element.send_keys(Keys.ENTER)
    _wait(lambda: "/item/" in browser.current_url)
    assert _errors(browser) == []


def test_missing_browser_fails_in_ci_and_skips_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a browser: a failure when CI is set, a skip on a developer's machine."""
    monkeypatch.setenv("CI", "1")
    with pytest.raises(pytest.fail.Exception):
        _need("chromium", None)
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception):
        _need("chromium", None)
