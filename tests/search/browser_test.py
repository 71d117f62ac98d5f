"""The page in a real browser: headless Chromium against a live uvicorn on 127.0.0.1.

Skipped only where Chromium or its driver is absent (`.ci/run` and `make test` install the
Debian packages `chromium` and `chromium-driver`).
"""

from __future__ import annotations

import shutil
import socket
import threading
import time

import httpx
import pytest
import uvicorn

from search import configs
from search import service
from tests.search import conftest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and DRIVER),
    reason="headless test needs the chromium and chromium-driver packages "
           "(apt-get install chromium chromium-driver; .ci/run installs them)")
WAIT_S = 30


@pytest.fixture(scope="module")
def base_url(served_model):
  app = service.build_app(configs.ServeConfig(
      data_dir=served_model.data_dir, model_dir=served_model.model_dir,
      index_dir=served_model.index_dir, model=conftest.MODEL))
  with socket.socket() as probe:
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
  server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
  thread = threading.Thread(target=server.run, daemon=True)
  thread.start()
  deadline = time.monotonic() + WAIT_S
  while not server.started:
    assert time.monotonic() < deadline, "uvicorn did not start"
    time.sleep(0.05)
  yield f"http://127.0.0.1:{port}"
  server.should_exit = True
  thread.join(WAIT_S)


@pytest.fixture(scope="module")
def browser():
  webdriver = pytest.importorskip("selenium.webdriver")
  options = webdriver.ChromeOptions()
  options.binary_location = CHROMIUM
  for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                   "--disable-gpu", "--window-size=1400,1000"):
    options.add_argument(argument)
  driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=DRIVER),
                            options=options)
  driver.set_page_load_timeout(WAIT_S)
  yield driver
  driver.quit()


def _rendered(browser) -> dict[str, list[str]]:
  """Result rows on the page: category -> item ids, best first."""
  from selenium.webdriver.common.by import By  # pylint: disable=g-import-not-at-top
  return {row.get_attribute("data-category"): [
      c.get_attribute("data-item-id") for c in row.find_elements(By.CSS_SELECTOR, ".card")]
          for row in browser.find_elements(By.CSS_SELECTOR, "[data-testid=result]")}


def test_page_opens_on_a_completed_test_set(base_url, browser):
  from selenium.webdriver.common.by import By  # pylint: disable=g-import-not-at-top
  from selenium.webdriver.support import ui  # pylint: disable=g-import-not-at-top

  browser.get(base_url + "/")
  ui.WebDriverWait(browser, WAIT_S).until(
      lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready"))
  source = browser.find_element(By.ID, "query-source").text
  assert source.startswith("set ") and source.endswith("(test)"), source
  set_id = source[len("set "):-len(" (test)")]
  detail = httpx.get(f"{base_url}/v1/sets/test/{set_id}", timeout=WAIT_S).json()
  cards = browser.find_elements(By.CSS_SELECTOR, "#query-items .card")
  assert [c.get_attribute("data-item-id") for c in cards] == [
      i["item_id"] for i in detail["items"]]
  held_out = detail["items"][-1]
  assert "held-out" in cards[-1].get_attribute("class")
  answer = httpx.post(base_url + "/v1/complete", timeout=WAIT_S, json={
      "items": [{"item_id": i["item_id"]} for i in detail["items"][:-1]],
      "categories": [held_out["category"]], "k": 5}).json()
  assert _rendered(browser) == {r["category"]: r["item_ids"] for r in answer["results"]}
  assert not browser.find_element(By.ID, "set-photo").is_displayed()  # SYNTHETIC: no photos
  errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
  assert not errors, errors


def test_rendered_results_equal_the_api(base_url, browser):
  from selenium.webdriver.common.by import By  # pylint: disable=g-import-not-at-top
  from selenium.webdriver.support import ui  # pylint: disable=g-import-not-at-top

  wait = ui.WebDriverWait(browser, WAIT_S)
  browser.get(base_url + "/")
  wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready"))
  ui.Select(browser.find_element(By.ID, "split")).select_by_value("val")
  browser.find_element(By.ID, "random-set").click()
  # The page opened on a completed test set: wait for the drawn val set to replace it.
  wait.until(lambda d: d.find_element(By.ID, "query-source").text.endswith("(val)")
             and not d.find_elements(By.CSS_SELECTOR, "[data-testid=result]"))
  cards = browser.find_elements(By.CSS_SELECTOR, "#query-items .card")
  held_out = [c.get_attribute("data-item-id") for c in cards
              if "held-out" in c.get_attribute("class")]
  query = [c.get_attribute("data-item-id") for c in cards
           if "held-out" not in c.get_attribute("class")]
  wanted = [b.get_attribute("value") for b in
            browser.find_elements(By.CSS_SELECTOR, "#categories input") if b.is_selected()]
  assert len(held_out) == 1 and query and wanted
  k = browser.find_element(By.ID, "k")
  k.clear()
  k.send_keys("4")
  browser.find_element(By.ID, "complete").click()
  wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "[data-testid=result]"))
  rendered = _rendered(browser)
  marked = [c.get_attribute("data-item-id")
            for c in browser.find_elements(By.CSS_SELECTOR, "#results .card.true")]
  answer = httpx.post(base_url + "/v1/complete", timeout=WAIT_S, json={
      "items": [{"item_id": i} for i in query], "categories": wanted, "k": 4}).json()
  expected = {r["category"]: r["item_ids"] for r in answer["results"]}
  assert rendered == expected
  assert marked == [i for ids in expected.values() for i in ids if i in held_out]
  errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
  assert not errors, errors
