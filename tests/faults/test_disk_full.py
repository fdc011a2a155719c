"""A full disk: a failed checkpoint keeps the previous one, a failed final save fails the run."""

import logging

import pytest
import torch
import transformers
from conftest import write_tiny_data
from fault_tools import one_thread, read_json
from safetensors import SafetensorError
from typer.testing import CliRunner

from privft.cli import app
from privft.config import TrainConfig
from privft.recipes import checkpoint, train
from privft.recipes.checkpoint import (
    TrainerState,
    load_training_state,
    restore_training_state,
    save_training_state,
)

NO_SPACE = "No space left on device"


def no_space(error: BaseException):
    def writer(*args, **kwargs):
        raise error

    return writer


@pytest.fixture
def parts():
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters())
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    return {"model": model, "optimizer": optimizer, "scheduler": scheduler}


# Each writer a checkpoint uses, failing the way it does when the disk is full.
FAILURES = {
    "safetensors-oserror": ("save_file", OSError(28, NO_SPACE)),
    "safetensors-error": ("save_file", SafetensorError(f"I/O error: {NO_SPACE} (os error 28)")),
    "torch-save": ("torch_save", RuntimeError("PytorchStreamWriter failed writing file")),
    "json": ("atomic_write_json", OSError(28, NO_SPACE)),
}


@pytest.mark.parametrize("failure", FAILURES.values(), ids=FAILURES.keys())
def test_failed_save_keeps_previous(tmp_path, monkeypatch, caplog, parts, failure):
    writer, error = failure
    assert save_training_state(tmp_path, **parts, state=TrainerState(step=1))
    if writer == "torch_save":
        monkeypatch.setattr(checkpoint.torch, "save", no_space(error))
    else:
        monkeypatch.setattr(checkpoint, writer, no_space(error))
    with caplog.at_level(logging.ERROR, logger="privft"):
        saved = save_training_state(tmp_path, **parts, state=TrainerState(step=2))
    assert saved is False
    assert not (tmp_path / "state" / "step-000002").exists()
    state, folder = load_training_state(tmp_path)
    assert state.step == 1
    restore_training_state(folder, **parts)
    assert "saving the checkpoint of step 2" in caplog.text
    assert "the checkpoint of step 1 is kept" in caplog.text
    assert str(error) in caplog.text


def test_first_failed_save_says_none_kept(tmp_path, monkeypatch, caplog, parts):
    monkeypatch.setattr(checkpoint, "save_file", no_space(OSError(28, NO_SPACE)))
    with caplog.at_level(logging.ERROR, logger="privft"):
        assert not save_training_state(tmp_path, **parts, state=TrainerState(step=4))
    assert load_training_state(tmp_path) is None
    assert "there is no earlier checkpoint" in caplog.text


def tiny_config(tmp_path, model_dir) -> TrainConfig:
    # 26 records in batches of 2: 13 steps, checkpoints after steps 4, 8 and 12.
    return TrainConfig(
        recipe="full",
        data=str(write_tiny_data(tmp_path / "data")),
        out=str(tmp_path / "run"),
        model=str(model_dir),
        epochs=1,
        batch_size=2,
        max_length=32,
        checkpoint_every=4,
    )


def test_training_goes_on_after_failed_save(tmp_path, tiny_model_dir, monkeypatch, caplog):
    config = tiny_config(tmp_path, tiny_model_dir("gpt_neox"))
    real_save_file = checkpoint.save_file
    calls = []

    def second_save_fails(*args, **kwargs):
        calls.append(args)
        if len(calls) == 2:
            raise OSError(28, NO_SPACE)
        return real_save_file(*args, **kwargs)

    monkeypatch.setattr(checkpoint, "save_file", second_save_fails)
    with one_thread(), caplog.at_level(logging.ERROR, logger="privft"):
        info = train(config, show_progress=False)
    assert len(calls) == 3
    assert info.status == "completed"
    assert caplog.text.count("saving the checkpoint of step") == 1
    assert "saving the checkpoint of step 8" in caplog.text
    assert "the checkpoint of step 4 is kept" in caplog.text


def test_final_save_failure_fails_run(tmp_path, tiny_model_dir, monkeypatch):
    config = tiny_config(tmp_path, tiny_model_dir("gpt_neox"))
    run = tmp_path / "run"
    args = [
        "train", "--recipe", "full", "--data", config.data, "--out", run, "--model", config.model,
        "--epochs", 1, "--batch-size", 2, "--max-length", 32, "--checkpoint-every", 4,
        "--no-progress",
    ]  # fmt: skip
    monkeypatch.setattr(
        transformers.PreTrainedModel, "save_pretrained", no_space(OSError(28, NO_SPACE))
    )
    with one_thread():
        result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 1
    assert "error: saving the final model" in result.output
    assert NO_SPACE in result.output
    assert f"privft resume {run}" in result.output
    info = read_json(run / "run_info.json")
    assert info["status"] == "failed"
    assert NO_SPACE in info["error"]
    assert not (run / "checkpoint").exists()
    assert not (run / "checkpoint.tmp").exists()
    assert load_training_state(run)[0].step == 12

    monkeypatch.undo()
    with one_thread():
        result = CliRunner().invoke(app, ["resume", str(run), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert read_json(run / "run_info.json")["status"] == "completed"
    assert (run / "checkpoint" / "model.safetensors").exists()
