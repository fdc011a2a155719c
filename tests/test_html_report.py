"""frontier.html: self-contained, tooltips on every point, and a page that renders."""

import json
import re
import shutil
import subprocess

import numpy as np
import pytest
from matplotlib.image import imread
from test_frontier import fake_result

from privft.frontier import build_frontier

CHROMIUM = next(
    (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)),
    None,
)
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium on PATH; install it with apt-get install -y chromium"
)
MEASURES = {"exposure_max": 3.0, "mia_auc": 0.6, "train_time_s": 12.0}


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("frontier")
    runs = [
        fake_result(tmp_path, "full", "full", 0, 0.5, 2.0, measures={**MEASURES, "epsilon": None}),
        fake_result(tmp_path, "lora", "lora", 0, 0.6, 2.6, measures=MEASURES),
        fake_result(tmp_path, "dp-s0", "dp_sgd", 0, 0.05, 2.5, measures={"epsilon": 7.9}),
        fake_result(tmp_path, "dp-s1", "dp_sgd", 1, 0.07, 2.7, measures={"epsilon": 7.8}),
        fake_result(tmp_path, "odd", "dp_lora", 0, 0.2, 2.2, data="<script>x</script>"),
    ]
    build_frontier(runs, tmp_path / "out", title="test page")
    return tmp_path / "out" / "frontier.html"


def test_page_loads_nothing(page):
    text = page.read_text()
    assert "http" not in text
    assert "<link" not in text
    assert " src=" not in text


def test_every_point_has_tooltip(page):
    text = page.read_text()
    groups = re.findall(r'<g class="pt" data-point="\d+"><title>([^<]*)</title>', text)
    # 4 settings in the first panel (the two dp_sgd seeds are one setting).
    assert len(groups) >= 4
    assert all("learning_rate = 0.001" in g for g in groups)


def test_tooltip_shows_interval(page):
    text = page.read_text()
    assert "sensitive_gap = 0.06 [" in text


def test_settings_escaped(page):
    text = page.read_text()
    assert "<script>x</script>" not in text
    assert "&lt;script&gt;x&lt;/script&gt;" in text


def test_point_data_parses(page):
    text = page.read_text()
    raw = re.search(r'id="points-data">(.*?)</script>', text, re.S).group(1)
    names = sorted(p["name"] for p in json.loads(raw))
    assert len(names) == 4
    assert "dp_sgd" in names


def chromium(*args, timeout=60):
    return subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.slow
@needs_chromium
def test_screenshot_not_blank(page, tmp_path):
    shot = tmp_path / "shot.png"
    done = chromium(
        f"--user-data-dir={tmp_path / 'profile'}",
        "--window-size=1400,1000",
        f"--screenshot={shot}",
        page.as_uri(),
    )
    assert shot.exists(), done.stderr
    pixels = (imread(shot)[..., :3] * 255).astype(np.uint8).reshape(-1, 3)
    colors = np.unique(pixels, axis=0)
    not_white = (pixels < 245).any(axis=1).mean()
    assert len(colors) > 50
    assert not_white > 0.03


@pytest.mark.slow
@needs_chromium
def test_hover_script_fills_detail(page, tmp_path):
    done = chromium(
        f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", page.as_uri() + "#point=0"
    )
    detail = re.search(r'<div id="detail">(.*?)</div>', done.stdout, re.S)
    assert detail is not None, done.stderr
    assert "learning_rate" in detail.group(1)
