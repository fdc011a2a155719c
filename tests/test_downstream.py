"""Downstream tasks through lm-evaluation-harness: a local task, and the skip paths."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from privft import downstream
from privft.downstream import add_downstream, evaluate_downstream, parse_tasks

HAS_LM_EVAL = importlib.util.find_spec("lm_eval") is not None


def needs_lm_eval(test):
    """Slow (importing lm-eval and indexing its tasks takes 20 s or more); skipped without it."""
    reason = f"lm-eval is not installed; {downstream.INSTALL}"
    return pytest.mark.slow(pytest.mark.skipif(not HAS_LM_EVAL, reason=reason)(test))


TASK_YAML = """task: privft_tiny_choice
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{question}}}}"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: "{{{{label}}}}"
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
"""


@pytest.fixture
def no_lm_eval(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "lm_eval" else real(name, *a)
    )


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    from privft.models import load_model, load_tokenizer

    folder = tiny_model_dir("llama")
    return load_model(str(folder)), load_tokenizer(str(folder))


@pytest.fixture(scope="module")
def task_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("lm-eval-tasks")
    rows = [
        {"question": f"Customer {i}: the order", "choices": [" arrived", " the the"], "label": 0}
        for i in range(4)
    ]
    data = folder / "test.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    (folder / "tiny.yaml").write_text(TASK_YAML.format(data=data), encoding="utf-8")
    return folder


def test_parse_tasks():
    assert parse_tasks(" hellaswag, arc_easy,,") == ["hellaswag", "arc_easy"]


def test_parse_none():
    assert parse_tasks(None) == []


def test_missing_package(no_lm_eval):
    block = evaluate_downstream(None, None, ["hellaswag"])
    assert 'pip install "privft[lm-eval]"' in block["reason"]


def test_missing_package_status(no_lm_eval):
    assert evaluate_downstream(None, None, ["hellaswag"])["status"] == "skipped"


def test_block_stored(no_lm_eval, tmp_path):
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"schema_version": 1}), encoding="utf-8")
    add_downstream(path, None, None, ["hellaswag"])
    stored = json.loads(path.read_text(encoding="utf-8"))
    assert stored["downstream"]["tasks"] == ["hellaswag"]


def test_describe_skip():
    line = downstream.describe({"status": "skipped", "reason": "no data"})
    assert line == "downstream tasks skipped: no data"


def test_scores_flattened():
    scores = downstream._scores({"t": {"acc,none": 0.5, "acc_stderr,none": 0.1, "alias": "t"}})
    assert scores == {"t/acc": 0.5}


@needs_lm_eval
def test_local_task(tiny, task_dir):
    model, tokenizer = tiny
    block = evaluate_downstream(
        model, tokenizer, ["privft_tiny_choice"], include_path=task_dir, batch_size=4
    )
    assert set(block["scores"]) == {"privft_tiny_choice/acc"}


@needs_lm_eval
def test_missing_data(tiny, task_dir):
    model, tokenizer = tiny
    # The same include path reuses the task index built for the local task.
    block = evaluate_downstream(model, tokenizer, ["hellaswag"], include_path=task_dir)
    assert "could not be loaded offline" in block["reason"]


@needs_lm_eval
def test_unknown_task(tiny, task_dir):
    model, tokenizer = tiny
    block = evaluate_downstream(model, tokenizer, ["no_such_task_xyz"], include_path=task_dir)
    assert "unknown lm-eval task(s) no_such_task_xyz" in block["reason"]
