"""What a person sees in a real browser: the overview lists every target with its state, the charts are drawn
(SVG with data points, non-zero size), the incident page shows the verdict and highlights the walked path through
the decision tree, the keyboard reaches everything, and the public status page shows no private field.

``GATEWATCH_SCREENSHOTS=1`` also saves the overview and one incident page as docs/web-*.png."""

from __future__ import annotations

import os
from pathlib import Path

from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from gatewatch.views import status_data, write_status_site
from tests.webstore import private_strings

DOCS = Path(__file__).resolve().parents[2] / "docs"
SCREENSHOTS = os.environ.get("GATEWATCH_SCREENSHOTS") == "1"


def _screenshot(browser, name: str) -> None:
    if not SCREENSHOTS:
        return
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1280, min(max(height, 600), 2600))
    browser.save_screenshot(str(DOCS / name))
    browser.set_window_size(1280, 900)


def test_overview_lists_targets_with_states_and_draws_charts(browser, served):
    url, written = served
    browser.get(url + "/")
    rows = browser.find_elements(By.CSS_SELECTOR, "tr.target-row")
    states = {r.get_attribute("data-target"): r.find_element(By.CSS_SELECTOR, ".badge").text for r in rows}
    assert states == {"admin": "up", "api": "up", "blog": "up", "shop": "down"}  # shown lower-case by the CSS
    charts = browser.find_elements(By.CSS_SELECTOR, "tr.target-row svg.chart")
    assert len(charts) == 4
    for chart in charts:
        assert chart.size["width"] > 100 and chart.size["height"] > 20
        assert len(chart.find_elements(By.CSS_SELECTOR, "circle.pt")) >= 20
    shop = next(r for r in rows if r.get_attribute("data-target") == "shop")
    link = shop.find_element(By.PARTIAL_LINK_TEXT, "proxy_config_invalid")
    assert link.get_attribute("href").endswith(written["incidents"]["shop"])
    _screenshot(browser, "web-overview.png")


def test_keyboard_reaches_the_skip_link_navigation_and_targets(browser, served):
    url, _ = served
    browser.get(url + "/")
    body = browser.find_element(By.TAG_NAME, "body")
    body.send_keys(Keys.TAB)
    focused = browser.switch_to.active_element
    assert focused.text == "Skip to content" and focused.is_displayed()
    reached = []
    for _ in range(12):
        browser.switch_to.active_element.send_keys(Keys.TAB)
        reached.append(browser.switch_to.active_element.text)
    assert {"Overview", "Incidents", "Remediation audit", "admin", "api"} <= set(reached)
    outline = browser.execute_script("return getComputedStyle(document.activeElement).outlineStyle")
    assert outline == "solid"  # focus is visible


def test_target_page_draws_phase_chart_and_marks_failures(browser, served):
    url, _ = served
    browser.get(url + "/targets/shop")
    chart = browser.find_element(By.CSS_SELECTOR, "svg.chart")
    series = {g.get_attribute("data-series") for g in chart.find_elements(By.CSS_SELECTOR, "g.series")}
    assert {"dns", "connect", "ttfb", "total"} <= series
    assert len(chart.find_elements(By.CSS_SELECTOR, "circle.pt")) > 100
    assert len(browser.find_elements(By.CSS_SELECTOR, "tr.fail")) == 10


def test_incident_page_shows_verdict_and_highlights_the_walked_path(browser, served):
    url, written = served
    verdict = written["verdicts"]["api"]
    browser.get(url + f"/incidents/{written['incidents']['api']}")
    section = browser.find_element(By.CSS_SELECTOR, "section.verdict")
    assert section.get_attribute("data-category") == "backend_down"
    assert "backend_down" in section.text and verdict["explanation"][:60] in section.text
    walked = browser.find_elements(By.CSS_SELECTOR, "svg.tree g.row.walked")
    assert [g.get_attribute("data-ref") for g in walked] == [s["node"] for s in verdict["path"]] + [verdict["leaf"]]
    # highlighted means drawn differently: the walked boxes' fill and stroke differ from the others'
    style = "return [getComputedStyle(arguments[0]).fill, getComputedStyle(arguments[0]).strokeWidth]"
    walked_style = browser.execute_script(style, walked[1].find_element(By.TAG_NAME, "rect"))
    other = browser.find_element(By.CSS_SELECTOR, "svg.tree g.row.collapsed rect")
    assert walked_style != browser.execute_script(style, other)
    edges = browser.find_elements(By.CSS_SELECTOR, "svg.tree path.edge.walked")
    assert len(edges) == len(walked) - 1
    timeline = [li.get_attribute("class") for li in browser.find_elements(By.CSS_SELECTOR, "ol.timeline li")]
    assert timeline == ["ev detected", "ev opened", "ev diagnosed", "ev considered", "ev allowed", "ev ran",
                        "ev verified", "ev resolved"]
    _screenshot(browser, "web-incident.png")


def test_status_page_shows_public_facts_and_hides_private_fields(browser, fleet, tmp_path):
    from datetime import UTC, datetime

    from gatewatch.store import SQLiteStore

    db, written = fleet
    store = SQLiteStore(db)
    names = {"api": "Payments API", "shop": "Shop", "admin": "Back office", "blog": "Blog"}
    try:
        secrets = private_strings(store, written) | set(names)
        write_status_site(status_data(store, datetime.now(UTC), names), tmp_path)
    finally:
        store.close()
    browser.get((tmp_path / "index.html").as_uri())
    text = browser.find_element(By.TAG_NAME, "body").text
    assert "Partial outage" in text and "Shop: Gateway errors" in text
    bars = browser.find_elements(By.CSS_SELECTOR, "svg.bars")
    assert len(bars) == 4 and all(len(b.find_elements(By.CSS_SELECTOR, "rect.day")) == 90 for b in bars)
    assert bars[0].size["width"] > 300
    page = browser.page_source
    leaked = sorted(s for s in secrets if s in text or s in page)
    assert leaked == []
    if SCREENSHOTS:
        _screenshot(browser, "status-page.png")
