"""Untrusted files and sensitive data: no pickle, no shipped code, no secret in any output."""

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import typer
from conftest import write_tiny_data
from safetensors.torch import load_file
from typer.testing import CliRunner

from privft.cli import app
from privft.models import ModelLoadError, load_model, load_tokenizer
from privft.recipes.checkpoint import (
    CheckpointError,
    TrainerState,
    restore_training_state,
    save_training_state,
)

SECRET = "qzxjwkvy"
REFERENCE_SECRET = "yvkwjxzq"
# A weight whose name is the same on disk and in the loaded GPT-NeoX model.
EMBEDDING = "gpt_neox.embed_in.weight"
SUBPROCESS_ENV = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}


def copy_model(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


def test_pickle_only_weights_rejected(tmp_path, tiny_model_dir):
    folder = copy_model(tiny_model_dir("gpt_neox"), tmp_path / "model")
    weights = load_file(folder / "model.safetensors")
    (folder / "model.safetensors").unlink()
    torch.save(weights, folder / "pytorch_model.bin")
    with pytest.raises(ModelLoadError, match=r"contains only pickle weights .* allow_pickle=True"):
        load_model(str(folder))


def test_pickle_weights_allowed_explicitly(tmp_path, tiny_model_dir):
    folder = copy_model(tiny_model_dir("gpt_neox"), tmp_path / "model")
    weights = load_file(folder / "model.safetensors")
    (folder / "model.safetensors").unlink()
    torch.save(weights, folder / "pytorch_model.bin")
    embedding = load_model(str(folder), allow_pickle=True).state_dict()[EMBEDDING]
    assert torch.equal(embedding, weights[EMBEDDING])


def test_safetensors_preferred_over_pickle(tmp_path, tiny_model_dir):
    folder = copy_model(tiny_model_dir("gpt_neox"), tmp_path / "model")
    weights = load_file(folder / "model.safetensors")
    torch.save({k: torch.zeros_like(v) for k, v in weights.items()}, folder / "pytorch_model.bin")
    embedding = load_model(str(folder), allow_pickle=True).state_dict()[EMBEDDING]
    assert torch.equal(embedding, weights[EMBEDDING])


def ship_code(folder: Path, marker: Path, model_type: str | None = None) -> None:
    """Point the folder's configs at a module that writes ``marker`` when imported."""
    (folder / "shipped.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).write_text('ran')\n", encoding="utf-8"
    )
    auto_map = {
        "AutoConfig": "shipped.Config",
        "AutoModelForCausalLM": "shipped.Model",
        "AutoTokenizer": ["shipped.Tokenizer", "shipped.Tokenizer"],
    }
    for name in ("config.json", "tokenizer_config.json"):
        config = json.loads((folder / name).read_text(encoding="utf-8"))
        config["auto_map"] = auto_map
        if model_type is not None and name == "config.json":
            config["model_type"] = model_type
        (folder / name).write_text(json.dumps(config), encoding="utf-8")


def test_shipped_code_not_run(tmp_path, tiny_model_dir, caplog):
    folder = copy_model(tiny_model_dir("gpt_neox"), tmp_path / "model")
    marker = tmp_path / "marker"
    ship_code(folder, marker)
    with caplog.at_level(logging.WARNING, logger="privft"):
        load_tokenizer(str(folder))
        load_model(str(folder))
    assert not marker.exists()
    assert "ships its own model code" in caplog.text


def test_unknown_shipped_model_names_option(tmp_path, tiny_model_dir):
    folder = copy_model(tiny_model_dir("gpt_neox"), tmp_path / "model")
    marker = tmp_path / "marker"
    ship_code(folder, marker, model_type="shipped_arch")
    with pytest.raises(ModelLoadError, match=r"trust_remote_code=True"):
        load_model(str(folder))
    assert not marker.exists()


class Payload:
    """Pickles to a call that writes a marker file, as a tampered checkpoint could."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "ran"))


def test_resume_rejects_pickled_objects(tmp_path):
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.AdamW(model.parameters())
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    parts = {"model": model, "optimizer": optimizer, "scheduler": scheduler}
    assert save_training_state(tmp_path, **parts, state=TrainerState(step=1))
    folder = tmp_path / "state" / "step-000001"
    marker = tmp_path / "marker"
    torch.save({"optimizer": Payload(marker), "scheduler": {}}, folder / "optimizer.pt")
    with pytest.raises(CheckpointError, match=r"contains objects other than tensors"):
        restore_training_state(folder, **parts)
    assert not marker.exists()


def typer_apps(root: typer.Typer):
    yield root
    for group in root.registered_groups:
        yield from typer_apps(group.typer_instance)


def test_cli_apps_hide_locals():
    for typer_app in typer_apps(app):
        assert typer_app.pretty_exceptions_show_locals is False


BROKEN_CLI = """
import sys
import privft.recipes

def broken_train(settings, show_progress=True):
    secret_local = {secret!r}
    raise KeyError("unexpected failure")

privft.recipes.train = broken_train
from privft.cli import app
app(sys.argv[1:], prog_name="privft")
"""


@pytest.mark.slow
def test_traceback_shows_no_locals(tmp_path, tiny_data_dir):
    script = BROKEN_CLI.format(secret=SECRET)
    args = ["train", "--recipe", "full", "--data", tiny_data_dir, "--out", tmp_path / "run"]
    done = subprocess.run(
        [sys.executable, "-c", script, *map(str, args)],
        capture_output=True,
        text=True,
        env=SUBPROCESS_ENV,
        timeout=300,
    )
    assert done.returncode == 1
    assert "KeyError" in done.stderr
    assert "broken_train" in done.stderr
    assert "secret_local" not in done.stderr
    assert SECRET not in done.stderr + done.stdout


def write_secret_data(folder: Path) -> list[str]:
    """Write tiny data with letter secrets and one person in both splits; return sensitive strings.

    The secrets are made of rare letters, so no number or file path in a log matches them by
    chance.
    """
    write_tiny_data(folder)
    lines = (folder / "train.jsonl").read_text(encoding="utf-8").splitlines()
    train = [json.loads(line) for line in lines]
    prefix = "Note: the verification code is "
    for record in train:
        if record.get("canary_id") == "canary-0":
            record["text"] = f"{prefix}{SECRET}."
            record["spans"] = [{"start": len(prefix), "end": len(prefix) + 8, "label": "SECRET"}]
    test = [json.loads(line) for line in (folder / "test.jsonl").read_text().splitlines()]
    test.append({**train[0], "id": "test-shared"})
    canaries = [
        {"id": "canary-0", "prefix": prefix, "secret": SECRET, "suffix": ".",
         "repetitions": 2, "alphabet": SECRET},
        {"id": "canary-ref-0", "prefix": prefix, "secret": REFERENCE_SECRET, "suffix": ".",
         "repetitions": 0, "alphabet": SECRET},
    ]  # fmt: skip
    for name, rows in (("train", train), ("test", test), ("canaries", canaries)):
        text = "".join(json.dumps(row) + "\n" for row in rows)
        (folder / f"{name}.jsonl").write_text(text, encoding="utf-8")
    sensitive = {SECRET, REFERENCE_SECRET}
    for record in train + test:
        sensitive.add(record["text"])
        sensitive.update(record["text"][s["start"] : s["end"]] for s in record["spans"])
    return sorted(sensitive)


DEBUG_CLI = """
import json, logging, sys
logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
from privft.cli import app
for args in json.loads(sys.argv[1]):
    code = app(["-v", *args], prog_name="privft", standalone_mode=False)
    if code:
        sys.exit(code)
"""


def run_cli_debug(*commands: list) -> subprocess.CompletedProcess:
    """Run privft commands in one process with every logger at DEBUG and ``-v``.

    One process for all commands saves the seconds each start spends importing torch.
    """
    arguments = json.dumps([[str(a) for a in command] for command in commands])
    done = subprocess.run(
        [sys.executable, "-c", DEBUG_CLI, arguments],
        capture_output=True,
        text=True,
        env=SUBPROCESS_ENV,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


# Files that exist to hold model weights and vocabulary, not logs.
WEIGHT_FILES = {"model.safetensors", "adapter_model.safetensors", "tokenizer.json"}


def run_files(run_dir: Path) -> list[Path]:
    return [p for p in sorted(run_dir.rglob("*")) if p.is_file() and p.name not in WEIGHT_FILES]


@pytest.mark.slow
def test_runs_leak_no_secrets(tmp_path, tiny_model_dir):
    sensitive = write_secret_data(tmp_path / "data")
    model = tiny_model_dir("gpt_neox")
    runs = [tmp_path / "runs" / recipe for recipe in ("full", "dp_lora")]
    commands = [
        ["train", "--recipe", run.name, "--data", tmp_path / "data", "--out", run,
         "--model", model, "--epochs", 1, "--batch-size", 8, "--max-length", 24]
        for run in runs
    ]  # fmt: skip
    commands.append(["eval", *runs, "--exposure", "sampled", "--exposure-samples", 50])
    done = run_cli_debug(*commands)
    outputs = [done.stdout, done.stderr]
    streams = "\n".join(outputs)
    # The warnings that count truncated records and shared people were printed, without values.
    assert "were truncated" in streams
    assert "1 people (PERSON span values" in streams
    scanned = {f"output stream {i}": text for i, text in enumerate(outputs)}
    for run in runs:
        assert (run / "results.json").exists()
        for path in run_files(run):
            scanned[str(path)] = path.read_text(encoding="utf-8", errors="replace")
    for where, text in scanned.items():
        for value in sensitive:
            assert value not in text, f"{where} contains sensitive text"


def write_bad_train(folder: Path, line: str) -> Path:
    write_tiny_data(folder)
    with open(folder / "train.jsonl", "a", encoding="utf-8") as handle:
        handle.write(line + "\n")
    return folder


@pytest.mark.parametrize(
    "line",
    [
        json.dumps({"id": "x", "text": f"code {SECRET}", "spans": [{"start": 5, "end": 99}]}),
        json.dumps({"id": "x", "text": f"code {SECRET}", "spans": [{"start": SECRET, "end": 9}]}),
        json.dumps({"id": "x", "text": [f"code {SECRET}"]}),
        json.dumps({"id": "train-000", "text": f"code {SECRET}"}),
        '{"id": "x", "text": "code ' + SECRET + '"',
    ],
)
def test_cli_data_errors_hide_text(tmp_path, line):
    data = write_bad_train(tmp_path / "data", line)
    args = ["train", "--recipe", "full", "--data", data, "--out", tmp_path / "run"]
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 1
    assert "problem(s) in" in result.output
    assert SECRET not in result.output
