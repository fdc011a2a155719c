"""Exported runs load with peft and transformers alone, and match privft's own loading."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM
from typer.testing import CliRunner

from privft.cli import app
from privft.config import LoRASettings, TrainConfig
from privft.evaluation.runner import load_finetuned
from privft.export import EXPORT_FILE, ExportError, export_run
from privft.recipes import train

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")
INPUT = torch.tensor([[0, 5, 9, 17, 3, 42, 8]])


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_model_dir) -> dict[str, Path]:
    """One LoRA and one full run of two steps each on a tiny Llama."""
    from conftest import write_tiny_data

    data = write_tiny_data(tmp_path_factory.mktemp("export-data"))
    model = tiny_model_dir("llama")
    made = {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for recipe in ("lora", "full"):
            out = tmp_path_factory.mktemp(f"export-{recipe}") / "run"
            config = TrainConfig(
                recipe=recipe,
                data=str(data),
                out=str(out),
                model=str(model),
                epochs=2 / 7,
                batch_size=4,
                max_length=32,
                learning_rate=1e-2,
                warmup_ratio=0.0,
                lora=LoRASettings(r=2),
            )
            train(config, show_progress=False)
            made[recipe] = out
    finally:
        torch.set_num_threads(threads)
    made["base"] = model
    return made


def _logits(model: torch.nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(INPUT).logits


def test_adapter_loads_with_peft(runs, tmp_path):
    export_run(runs["lora"], tmp_path / "adapter")
    base = AutoModelForCausalLM.from_pretrained(runs["base"])
    loaded = PeftModel.from_pretrained(base, tmp_path / "adapter")
    expected = _logits(load_finetuned(runs["lora"], str(runs["base"])))
    assert torch.allclose(_logits(loaded), expected, atol=1e-5)


def test_merged_loads_alone(runs, tmp_path):
    export_run(runs["lora"], tmp_path / "merged", merge=True)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path / "merged")
    expected = _logits(load_finetuned(runs["lora"], str(runs["base"])))
    assert torch.allclose(_logits(loaded), expected, atol=1e-5)


def test_merged_has_no_adapter(runs, tmp_path):
    export_run(runs["lora"], tmp_path / "merged", merge=True)
    assert not (tmp_path / "merged" / "adapter_config.json").exists()


def test_full_loads(runs, tmp_path):
    export_run(runs["full"], tmp_path / "full")
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path / "full")
    expected = _logits(load_finetuned(runs["full"], str(runs["base"])))
    assert torch.equal(_logits(loaded), expected)


def test_adapter_names_base(runs, tmp_path):
    export_run(runs["lora"], tmp_path / "adapter")
    adapter = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text("utf-8"))
    assert adapter["base_model_name_or_path"] == str(runs["base"])


def test_record_kind(runs, tmp_path):
    export_run(runs["lora"], tmp_path / "merged", merge=True)
    record = json.loads((tmp_path / "merged" / EXPORT_FILE).read_text("utf-8"))
    assert record["kind"] == "merged"


def test_existing_out_refused(runs, tmp_path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "file.txt").write_text("x", encoding="utf-8")
    with pytest.raises(ExportError, match="not empty"):
        export_run(runs["full"], tmp_path / "taken")


def test_cli_merge(runs, tmp_path):
    args = ["export", str(runs["lora"]), "--out", str(tmp_path / "m"), "--merge"]
    result = CliRunner().invoke(app, args)
    assert "AutoModelForCausalLM" in result.output


def test_unfinished_refused(tmp_path):
    (tmp_path / "config.yaml").write_text("recipe: lora\n", encoding="utf-8")
    (tmp_path / "run_info.json").write_text(
        json.dumps({"recipe": "lora", "status": "failed"}), encoding="utf-8"
    )
    with pytest.raises(ExportError, match="privft resume"):
        export_run(tmp_path, tmp_path / "out")
