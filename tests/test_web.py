"""The web page in headless Chromium (Debian's chromium + chromedriver, via selenium).

Upload a real X-ray from ../shared/data, run a grounding request, and check that the page
draws exactly the boxes the API returned (count, label, and pixel coordinates), with a
screenshot. The model is the tiny one fine-tuned to emit a known box (serve_model.py), so
boxes exist on every run; the count check holds for any model. Then a DICOM: the window
controls appear and a preset re-requests the preview.

Set MEDMO_WEB_SCREENSHOT=docs/web_ground.png to also write the screenshot for the README.
Without chromium the test skips, unless MEDMO_REQUIRE_BROWSER=1 (set by .ci/run).
"""
from __future__ import annotations

import base64
import os
import shutil
from pathlib import Path

import httpx
import pytest

from medmo.serve.api import ServeConfig, create_app

pytestmark = pytest.mark.browser

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--window-size=1280,900"]


@pytest.fixture(scope="module")
def trained_dir(tiny_dir, tmp_path_factory):
    from serve_model import train_fixed_answers

    return train_fixed_answers(tiny_dir, tmp_path_factory.getbasetemp() / "fixed_answers")


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if not (chromium and driver_path):
        message = "needs Debian's chromium and chromium-driver (apt-get install -y chromium chromium-driver)"
        if os.environ.get("MEDMO_REQUIRE_BROWSER"):
            pytest.fail(message)
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in FLAGS + [f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def _wait(driver, condition, timeout: float = 60):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(lambda d: condition(d))


def test_upload_ground_and_draw_boxes(browser, trained_dir, shared_data, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select
    from serve_model import TARGET, running_server

    image = sorted((shared_data / "vqa_rad" / "images").glob("*.jpg"))[0]
    with running_server(create_app(ServeConfig(model=str(trained_dir), max_new_tokens=32))) as url:
        expected = httpx.post(f"{url}/v1/ground", timeout=60, json={
            "image": "data:image/jpeg;base64," + base64.b64encode(image.read_bytes()).decode(), "target": TARGET,
        }).json()["boxes"]
        assert expected, "the fine-tuned model must answer with a box"

        browser.get(url + "/")
        browser.find_element(By.ID, "file").send_keys(str(image))
        _wait(browser, lambda d: d.find_element(By.ID, "preview").get_attribute("naturalWidth") not in (None, "0"))
        Select(browser.find_element(By.ID, "task")).select_by_value("ground")
        target = browser.find_element(By.ID, "target")
        target.clear()
        target.send_keys(TARGET)
        browser.find_element(By.ID, "run").click()
        _wait(browser, lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-done"))

        rects = browser.find_elements(By.CSS_SELECTOR, "#overlay rect.box")
        labels = [t.text for t in browser.find_elements(By.CSS_SELECTOR, "#overlay text.box-label")]
        assert len(rects) == len(expected)
        assert labels == [b["label"] for b in expected]
        for rect, box in zip(rects, expected):
            x1, y1, x2, y2 = box["bbox"]
            got = [float(rect.get_attribute(k)) for k in ("x", "y", "width", "height")]
            assert got == pytest.approx([x1, y1, x2 - x1, y2 - y1])
            assert rect.is_displayed() and rect.size["width"] > 20  # drawn at a visible size on screen
        assert TARGET in browser.find_element(By.ID, "answer").text
        shot = tmp_path / "web_ground.png"
        browser.save_screenshot(str(shot))
        assert shot.stat().st_size > 10_000
        if os.environ.get("MEDMO_WEB_SCREENSHOT"):
            shutil.copy(shot, os.environ["MEDMO_WEB_SCREENSHOT"])


def test_dicom_window_controls_re_request_the_preview(browser, tiny_dir):
    from pydicom.data import get_testdata_file
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select
    from serve_model import running_server

    with running_server(create_app(ServeConfig(model=str(tiny_dir), max_new_tokens=4))) as url:
        browser.get(url + "/")
        browser.find_element(By.ID, "file").send_keys(get_testdata_file("CT_small.dcm"))
        _wait(browser, lambda d: d.find_element(By.ID, "windowing").is_displayed())
        assert "CT" in browser.find_element(By.ID, "status").text
        before = browser.find_element(By.ID, "preview").get_attribute("src")
        Select(browser.find_element(By.ID, "preset")).select_by_value("bone")
        _wait(browser, lambda d: d.find_element(By.ID, "preview").get_attribute("src") != before)
        assert browser.find_element(By.ID, "wc").get_attribute("value") == "400"
        assert "CompressedSamples" not in browser.page_source  # the file's PatientName never reaches the page


def test_page_asks_for_the_api_key_once_and_keeps_it(browser, tiny_dir, shared_data):
    """A server started with --api-key: the first request prompts, the key is sent from then on."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.expected_conditions import alert_is_present
    from selenium.webdriver.support.ui import WebDriverWait
    from serve_model import running_server

    image = sorted((shared_data / "vqa_rad" / "images").glob("*.jpg"))[0]
    with running_server(create_app(ServeConfig(model=str(tiny_dir), max_new_tokens=2, api_key="s3cret"))) as url:
        browser.get(url + "/")
        browser.execute_script("localStorage.removeItem('medmo-api-key')")
        browser.find_element(By.ID, "file").send_keys(str(image))
        prompt = WebDriverWait(browser, 60).until(alert_is_present())  # the preview request got 401
        assert "API key" in prompt.text
        prompt.send_keys("s3cret")
        prompt.accept()
        _wait(browser, lambda d: d.find_element(By.ID, "preview").get_attribute("naturalWidth") not in (None, "0"))
        assert browser.execute_script("return localStorage.getItem('medmo-api-key')") == "s3cret"
