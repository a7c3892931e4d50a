"""The web page in a real browser (Playwright driving Debian's Chromium, headless) against a
real service: search by photo, a category filter, an error, an ingest with live progress.

Screenshots go to $LOOKALIKE_SCREENSHOTS (default: pytest's tmp dir); when that is
docs/images, the search one is the README's docs/images/web-search.png:
    LOOKALIKE_SCREENSHOTS=docs/images .venv/bin/python -m pytest tests/test_browser.py
"""

from __future__ import annotations

import csv
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(300)
CHROMIUM = [os.environ.get("LOOKALIKE_CHROMIUM", ""), "/usr/bin/chromium",
            "/usr/bin/chromium-browser", shutil.which("chromium") or ""]
DOCS_IMAGES = Path(__file__).resolve().parents[1] / "docs" / "images"
README_IMAGE = "web-search.png"  # the search screenshot, when the folder is docs/images


def chromium() -> str:
    found = next((p for p in CHROMIUM if p and Path(p).is_file()), None)
    if not found:
        pytest.skip("no Chromium at /usr/bin/chromium (or LOOKALIKE_CHROMIUM): `make test` installs "
                    "it with apt where it can (scripts/ensure-chromium); Playwright's own download "
                    "is not used")
    return found


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = Path(os.environ.get("LOOKALIKE_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    executable = chromium()
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package (test extra)")
    with sync_api.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=executable, headless=True,
                                     args=["--no-sandbox", "--disable-dev-shm-usage"])
        yield launched
        launched.close()


@pytest.fixture
def page(browser, web):
    context = browser.new_context(viewport={"width": 1200, "height": 860})
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.goto(web.url + "/")
    page.fill("#key", web.write_key)
    page.dispatch_event("#key", "change")
    page.wait_for_selector("#category option[value='posters']", state="attached")
    yield page
    context.close()


def snap(page, shots: Path, name: str) -> None:
    """A screenshot; into docs/images only the README's (search.png as web-search.png)."""
    if shots.resolve() != DOCS_IMAGES:
        page.screenshot(path=str(shots / f"{name}.png"))
    elif name == "search":
        page.screenshot(path=str(shots / README_IMAGE))


def query_file(sample: Path, product_id: str) -> Path:
    with (sample / "queries.csv").open() as f:
        row = next(r for r in csv.DictReader(f) if r["product_id"] == product_id)
    return sample / "queries" / row["query_file"]


def until(page, check, timeout_s: float = 30.0):
    """Poll `check` (the page's CSP forbids Playwright's string evaluation)."""
    for _ in range(int(timeout_s * 10)):
        if result := check():
            return result
        page.wait_for_timeout(100)
    raise AssertionError(f"not true after {timeout_s:.0f} s")


def cards(page) -> list[tuple[str, str]]:
    return [(c.get_attribute("data-product-id"), c.locator(".muted").inner_text())
            for c in page.locator("#results .card").all()]


def test_search_by_photo_then_filter(page, web, shots: Path) -> None:
    page.check("input[name=per_object]")  # outlines of the products found, on the photo
    page.set_input_files("#photo", str(query_file(web.sample, "astronaut-print")))
    page.wait_for_selector("#search-status:has-text('results in')")
    page.wait_for_selector("#results img[src^='blob:']")
    found = cards(page)
    assert found[0][0] == "astronaut-print", found
    assert "results in" in page.inner_text("#search-status")
    snap(page, shots, "search")
    page.uncheck("input[name=per_object]")
    page.select_option("#category", "posters")
    page.click("#search-form button[type=submit]")
    page.wait_for_selector("#search-status:has-text('results in')")  # "Searching…" until then
    narrowed = cards(page)
    assert len(narrowed) < len(found)
    assert narrowed and all(text.endswith("posters") for _, text in narrowed), narrowed
    assert narrowed[0][0] == "astronaut-print"
    snap(page, shots, "search-posters")


def test_bad_file_shows_the_error(page, shots: Path) -> None:
    page.set_input_files("#photo", {"name": "notes.jpg", "mimeType": "image/jpeg",
                                    "buffer": b"these are not pixels" * 20})
    page.wait_for_selector("#search-status.error")
    assert page.inner_text("#search-status").startswith("INVALID_ARGUMENT: image rejected")
    assert page.locator("#results .card").count() == 0
    snap(page, shots, "search-error")


def test_ingest_csv_shows_progress_then_done(page, web, shots: Path) -> None:
    rows = ("image_uri,product_id,product_set,category,title\n"
            "catalogue/moon-lamp.png,page-lamp,browser,home,Lamp from the page\n"
            "catalogue/coin-set.png,page-coins,browser,collectibles,Coins from the page\n"
            "/nowhere/else.png,page-missing,browser,home,Outside the roots\n")
    page.click("nav button[data-tab=ingest]")
    page.set_input_files("#csv-form input[name=catalogue]", {"name": "small.csv", "mimeType": "text/csv",
                                                             "buffer": rows.encode()})
    page.click("#csv-form button[type=submit]")
    page.wait_for_selector("#progress:not([hidden])")
    page.wait_for_selector("#ingest-status:has-text('DONE')")
    assert "2 of 3 stored, 1 failed" in page.inner_text("#ingest-status")
    assert "outside the ingest roots" in page.inner_text("#failures")
    snap(page, shots, "ingest")


def test_catalogue_browser_pages(page) -> None:
    page.click("nav button[data-tab=browse]")
    page.wait_for_selector("#products .card")
    assert page.locator("#products .card").count() >= 14 or page.locator("#next").is_enabled()
    page.click("#counts button:has-text('posters')")
    until(page, lambda: all(t.endswith("posters") for t in page.locator("#products .card .muted").all_inner_texts()))
