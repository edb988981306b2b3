"""The circuit page in a real browser: a prune cell and the report on tiny inputs, opened in headless Chromium.

Needs Debian's chromium and chromium-driver (/usr/bin/chromium, /usr/bin/chromedriver); `.ci/run` installs
them and sets REQUIRE_BROWSER_TEST=1 (not a SPARSEPIPE_ variable: those are config keys), so in CI a missing
browser fails the test instead of skipping it.
The screenshots go to $BROWSER_TEST_SCREENSHOTS, else <tmp>/sparsepipe-screenshots, which CI keeps.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest
from stage_inputs import TASK, small_prune_config, write_checkpoint, write_mean_cache, write_tokens

from sparsepipe.workers.context import local_context
from sparsepipe.workers.mean_cache.config import MeanCacheConfig
from sparsepipe.workers.prune.config import ViewerConfig
from sparsepipe.workers.prune.worker import run_prune
from sparsepipe.workers.report.worker import page_name, run_report

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
CELL = "pretrain/tiny"
# The random model never reaches the target, so the circuit is the whole model (304 nodes): the page must
# stay usable and small for a large circuit, with every node's examples and its loss when removed.
PARAMS = small_prune_config(
    curve_points=0,
    viewer=ViewerConfig(example_rows=16, examples=8, task_pairs=3, ablate_each_max_nodes=400),
)


def screenshot_dir() -> Path:
    folder = Path(os.environ.get("BROWSER_TEST_SCREENSHOTS") or Path(tempfile.gettempdir()) / "sparsepipe-screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("viewer")
    tokens = write_tokens(root / "tokens")
    checkpoint = write_checkpoint(root / "checkpoint")
    write_mean_cache(root / "mean_cache", tokens, checkpoint, MeanCacheConfig(batches=2, batch_size=4))
    inputs = {"checkpoint": checkpoint, "tokens": tokens, "mean_cache": root / "mean_cache"}
    run_prune(local_context(root / "prune", inputs=inputs, cell=f"{CELL}:{TASK}"), PARAMS, TASK)
    run_report(local_context(root / "report", inputs={f"{CELL}:{TASK}": root / "prune"}))
    return root / "report", json.loads((root / "prune" / "circuit.json").read_text())


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        if os.environ.get("REQUIRE_BROWSER_TEST"):
            pytest.fail(f"{CHROMIUM} or {CHROMEDRIVER} is missing (apt-get install chromium chromium-driver)")
        pytest.skip(f"no {CHROMIUM} / {CHROMEDRIVER}: apt-get install chromium chromium-driver (.ci/run does)")
    webdriver = pytest.importorskip("selenium.webdriver")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1600,1000",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=str(CHROMEDRIVER)))
    driver.implicitly_wait(5)
    yield driver
    driver.quit()


def number(element) -> float:
    return float(element.text.replace("−", "-"))


def close(shown: float, stored: float) -> bool:
    """The page shows 4 significant digits of the stored value."""
    return abs(shown - stored) <= 5e-4 * abs(stored) + 1e-12


def test_circuit_page_in_a_browser(report_dir, browser):
    from selenium.webdriver.common.by import By

    report, circuit = report_dir
    page = report / "circuits" / page_name(CELL, TASK)
    size = page.stat().st_size
    assert size < 3_000_000, f"{page} is {size} bytes"
    assert "http://" not in page.read_text().replace("http://www.w3.org/2000/svg", "")  # no network

    browser.get((report / "index.html").as_uri())
    browser.find_element(By.LINK_TEXT, TASK).click()
    assert browser.current_url == page.as_uri()
    assert browser.execute_script("return document.readyState") == "complete"
    logs = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert not logs, logs

    # Every kept node is drawn, and nothing else but the embedding/unembedding endpoints.
    drawn = {e.get_attribute("data-node") for e in browser.find_elements(By.CSS_SELECTOR, "svg g.node")}
    kept = {node["id"] for node in circuit["nodes"]}
    assert kept <= drawn and all(n.split(":")[0] in ("embed", "unembed") for n in drawn - kept)
    assert close(number(browser.find_element(By.ID, "abl-circuit")), circuit["losses"]["circuit"])
    assert close(number(browser.find_element(By.ID, "abl-full")), circuit["losses"]["full_model"])
    assert close(number(browser.find_element(By.ID, "headline-circuit-loss")), circuit["losses"]["circuit"])

    # Click the node with the largest activation example; its panel shows the numbers of circuit.json.
    examples = circuit["activations"]["nodes"]
    node_key = max(examples, key=lambda k: max((s["acts"][s["focus"]] for s in examples[k]["top"]), default=0))
    node = next(n for n in circuit["nodes"] if n["id"] == node_key)
    browser.find_element(By.CSS_SELECTOR, f'svg g.node[data-node="{node_key}"] circle').click()
    assert browser.find_element(By.ID, "node-name").text == node["name"] == f"{node['location']}[{node['index']}]"
    assert close(number(browser.find_element(By.ID, "node-ablation-value")), node["ablation_value"])
    strips = browser.find_elements(By.CSS_SELECTOR, "#panel .examples-top .strip")
    top = examples[node_key]["top"]
    assert len(strips) == len(top) > 0
    values = [number(s.find_element(By.CSS_SELECTOR, ".val")) for s in strips]
    assert all(close(v, s["acts"][s["focus"]]) for v, s in zip(values, top))
    tokens = strips[0].find_elements(By.CSS_SELECTOR, ".tok")
    assert len(tokens) == len(top[0]["tokens"]) and tokens[top[0]["focus"]].get_attribute("class") == "tok focus"
    pairs = circuit["activations"]["task_prompts"]
    assert len(browser.find_elements(By.CSS_SELECTOR, "#panel .task-examples td .strip")) == 2 * len(pairs) > 0
    if circuit.get("node_ablation"):
        without = circuit["node_ablation"]["without_node"]
        assert set(without) == kept
        assert close(number(browser.find_element(By.ID, "node-without-loss")), without[node_key])
        assert len(browser.find_elements(By.CSS_SELECTOR, "#ablation tr.node-row")) == len(without)
    incoming = sorted(
        (e["weight"] for e in circuit["edges"] if e["target"] == node_key and "weight" in e), key=lambda w: -abs(w)
    )
    cells = browser.find_elements(By.CSS_SELECTOR, "#panel table.in-edges td.weight")
    shown = [number(e) for e in cells if e.text]  # residual links have no weight: an empty cell, listed last
    assert len(shown) == min(60, len(incoming)) and all(close(s, w) for s, w in zip(shown, incoming))

    # Search by name selects the node and opens its panel.
    other = next(n for n in circuit["nodes"] if n["id"] != node_key)
    search = browser.find_element(By.ID, "search")
    search.send_keys(other["name"] + "\n")
    assert browser.find_element(By.ID, "node-name").text == other["name"]
    search.clear()
    search.send_keys(node["name"] + "\n")  # back to the first node (search pans to it) for the screenshot
    assert browser.find_element(By.ID, "node-name").text == node["name"]

    shot = screenshot_dir() / f"circuit-{TASK}.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    print(f"screenshot: {shot} ({len(kept)} nodes, page {size} bytes)")
