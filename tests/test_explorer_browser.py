"""The data explorer in a real browser: Debian's headless ``chromium`` driven by Selenium
through Debian's ``chromedriver`` (``bin/install test`` installs both; nothing downloads a
browser), against ``panoptes-network explore`` serving a processed synthetic night.

The home page lists the night; the search form finds it by field name and by coordinates; its
page shows the stack image (decoded: ``naturalWidth > 0``), the timelapse plays (``readyState >=
2`` and ``currentTime`` advances) and a download link returns the stored file byte for byte.
Every page's screenshot is saved under ``test-artifacts/explorer/`` (git-ignored; the README names it).
"""

from __future__ import annotations

import os
import shutil
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fixtures_explorer import ProcessedNight
from polling import wait_for

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = ROOT / "test-artifacts" / "explorer"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless chromium; skipped without it (bin/install test installs it), a failure in CI."""
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not shutil.which(path)]
    if missing:
        reason = f"{', '.join(missing)} not installed (Debian chromium and chromium-driver: bin/install test)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1600"):
        options.add_argument(argument)
    options.add_argument("--autoplay-policy=no-user-gesture-required")
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(60)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    try:
        yield driver
    finally:
        driver.quit()


def visit(browser: Any, url: str, screenshot: str) -> None:
    browser.get(url)
    assert "PANOPTES data explorer" in browser.title, browser.page_source[:2000]
    browser.save_screenshot(str(SCREENSHOTS / f"{screenshot}.png"))


def observation_links(browser: Any) -> list[str]:
    from selenium.webdriver.common.by import By

    return [a.get_attribute("href") for a in browser.find_elements(By.CSS_SELECTOR, ".cards a")]


def search_with_the_form(browser: Any, explorer_url: str, fields: dict[str, str], screenshot: str) -> list[str]:
    """Type into the search form as a person does and submit it; the observations found."""
    from selenium.webdriver.common.by import By

    browser.get(explorer_url + "search")
    for name, value in fields.items():
        browser.find_element(By.NAME, name).send_keys(value)
    browser.find_element(By.CSS_SELECTOR, "#search button[type=submit]").click()
    wait_for(lambda: "/search?" in browser.current_url, "the search's result page", 30)
    browser.save_screenshot(str(SCREENSHOTS / f"{screenshot}.png"))
    return observation_links(browser)


def test_the_home_page_lists_the_night(browser: Any, explorer_url: str, processed_night: ProcessedNight) -> None:
    visit(browser, explorer_url, "home")
    assert observation_links(browser) == [f"{explorer_url}observations/{processed_night.sequence_id}"]
    thumbnail = browser.execute_script("return document.querySelector('.cards img').naturalWidth")
    assert thumbnail > 0


def test_search_finds_it_by_field_name_and_by_coordinates(
    browser: Any, explorer_url: str, processed_night: ProcessedNight
) -> None:
    night = processed_night
    page = f"{explorer_url}observations/{night.sequence_id}"
    assert search_with_the_form(browser, explorer_url, {"target": night.field_name.lower()}, "search-name") == [page]
    near = {"ra": f"{night.field_ra + 0.3:.4f}", "dec": f"{night.field_dec - 0.3:.4f}", "radius": "1"}
    assert search_with_the_form(browser, explorer_url, near, "search-cone") == [page]
    far = {"ra": f"{(night.field_ra + 180) % 360:.4f}", "dec": f"{-night.field_dec:.4f}", "radius": "1"}
    assert search_with_the_form(browser, explorer_url, far, "search-cone-elsewhere") == []


def test_the_observation_page_shows_the_stack_and_plays_the_timelapse(
    browser: Any, explorer_url: str, processed_night: ProcessedNight
) -> None:
    visit(browser, f"{explorer_url}observations/{processed_night.sequence_id}", "observation")
    for image in ("stack_png", "difference_png", "quality_plot"):
        wait_for(
            lambda image=image: browser.execute_script(f"return document.getElementById('{image}').naturalWidth"),
            f"{image} decoded",
            30,
        )
    browser.execute_script("document.getElementById('timelapse').play()")
    ready = wait_for(
        lambda: browser.execute_script("return document.getElementById('timelapse').readyState"),
        "the timelapse's readyState >= 2 (HAVE_CURRENT_DATA)",
        30,
        until=lambda state: state >= 2,
    )
    assert ready >= 2
    first = browser.execute_script("return document.getElementById('timelapse').currentTime")
    wait_for(
        lambda: browser.execute_script("return document.getElementById('timelapse').currentTime"),
        "the timelapse playing (currentTime advancing)",
        30,
        until=lambda now: now != first,
    )
    error = browser.execute_script("const e = document.getElementById('timelapse').error; return e && e.message")
    assert error is None
    browser.save_screenshot(str(SCREENSHOTS / "observation-playing.png"))


def test_a_download_link_returns_the_stored_file(
    browser: Any, explorer_url: str, processed_night: ProcessedNight
) -> None:
    from selenium.webdriver.common.by import By

    browser.get(f"{explorer_url}observations/{processed_night.sequence_id}")
    link = browser.find_element(By.PARTIAL_LINK_TEXT, "stamps.fits").get_attribute("href")
    with urllib.request.urlopen(link, timeout=30) as response:
        body = response.read()
        assert response.headers["Content-Type"] == "application/fits"
        assert "attachment" in response.headers["Content-Disposition"]
    stored = processed_night.processed_file(link.split("/files/processed/", 1)[1]).read_bytes()
    assert body == stored and body.startswith(b"SIMPLE  =")


def test_the_image_and_unit_pages(browser: Any, explorer_url: str, processed_night: ProcessedNight) -> None:
    from selenium.webdriver.common.by import By

    browser.get(f"{explorer_url}observations/{processed_night.sequence_id}")
    frame = browser.find_elements(By.CSS_SELECTOR, "table.frames a")[1].get_attribute("href")
    visit(browser, frame, "image")
    wait_for(
        lambda: browser.execute_script("return document.getElementById('quick_look').naturalWidth"), "quick look", 30
    )
    assert browser.find_element(By.ID, "header").text.count("SEQID") == 1
    visit(browser, f"{explorer_url}units/{processed_night.sequence_id.split('_')[0]}", "unit")
    assert len(observation_links(browser)) == 1
    visit(browser, f"{explorer_url}observations/PAN999_abc123_20200101T000000", "not-found")
    assert "no observation" in browser.find_element(By.CSS_SELECTOR, ".message").text
