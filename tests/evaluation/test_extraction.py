import pytest
import torch
from transformers import AutoTokenizer

from privft.data.records import Canary, Record, Span
from privft.evaluation.extraction import (
    ExtractionTarget,
    canary_targets,
    count_copies,
    extraction_report,
    greedy_decode,
    record_targets,
    run_extraction,
    summarize,
    taxonomy,
)
from privft.models import load_model

TEXT = "Customer: Hi, I am Dana Whitfield and my email is dana7@example.com. Thanks."
SPANS = [Span(19, 33, "PERSON"), Span(50, 67, "EMAIL")]


@pytest.fixture(scope="module")
def tokenizer(tokenizer_dir):
    return AutoTokenizer.from_pretrained(tokenizer_dir)


def reference_greedy(model, prompt: list[int], steps: int) -> list[int]:
    """Greedy decoding without cache or padding: the whole sequence every step."""
    ids = list(prompt)
    with torch.no_grad():
        for _ in range(steps):
            ids.append(int(model(input_ids=torch.tensor([ids])).logits[0, -1].argmax()))
    return ids[len(prompt) :]


@pytest.mark.parametrize("arch", ["gpt_neox", "gpt2", "llama"])
def test_batched_greedy_matches_reference(tiny_model_dir, tokenizer, arch):
    model = load_model(str(tiny_model_dir(arch)))
    texts = ["Hi", "My name is Dana", "Please send the invoice to", "The code is 4"]
    prompts = [[0, *tokenizer.encode(t, add_special_tokens=False)] for t in texts]
    steps = [5, 3, 6, 4]
    got = greedy_decode(model, prompts, steps, pad_token_id=tokenizer.pad_token_id, batch_size=3)
    for prompt, count, tokens in zip(prompts, steps, got, strict=True):
        assert tokens == reference_greedy(model, prompt, count)


def test_prompt_stops_before_span(tokenizer):
    extraction = record_targets([Record("r", TEXT, SPANS)], tokenizer, "train", max_length=128)
    person = extraction.targets[0]
    assert tokenizer.decode(person.prompt_ids[1:]).rstrip() == TEXT[:18]
    assert tokenizer.decode(person.target_ids).strip() == "Dana Whitfield"
    assert person.kind == "PERSON"
    assert person.value == "Dana Whitfield"


def test_target_cut_from_sequence(tokenizer):
    extraction = record_targets([Record("r", TEXT, SPANS)], tokenizer, "train", max_length=128)
    sequence = extraction.sequences[0]
    for target in extraction.targets:
        assert sequence[: len(target.prompt_ids)] == target.prompt_ids
        end = len(target.prompt_ids) + len(target.target_ids)
        assert sequence[len(target.prompt_ids) : end] == target.target_ids


def test_prompt_starts_with_start_token(tokenizer):
    extraction = record_targets([Record("r", TEXT, SPANS)], tokenizer, "train", max_length=128)
    assert extraction.targets[0].prompt_ids[0] == tokenizer.bos_token_id


def test_long_prompt_skipped(tokenizer):
    extraction = record_targets([Record("r", TEXT, SPANS)], tokenizer, "train", max_length=12)
    assert extraction.targets == []


def test_sets_concatenate(tokenizer):
    first = record_targets([Record("a", TEXT, SPANS)], tokenizer, "train", max_length=128)
    second = record_targets([Record("b", TEXT, SPANS)], tokenizer, "test", max_length=128)
    both = first + second
    assert len(both.sequences) == 2
    assert [t.sequence for t in both.targets] == [0, 0, 1, 1]


def test_canary_target_is_secret(tokenizer):
    canary = Canary("c0", "Note: the verification code is ", "482913", ".", 3)
    target = canary_targets([canary], tokenizer, max_length=64).targets[0]
    assert tokenizer.decode(target.target_ids) == "482913"
    assert target.repetitions == 3
    assert target.split == "canaries"


def memorizing_model(tiny_model_dir, tokenizer, text: str):
    """A tiny GPT-NeoX trained on one text until it reproduces it."""
    model = load_model(str(tiny_model_dir("gpt_neox")))
    model = type(model)(model.config)
    ids = torch.tensor([[tokenizer.bos_token_id, *tokenizer.encode(text)]])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    torch.manual_seed(0)
    for _ in range(50):
        model(input_ids=ids, labels=ids).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    return model.eval()


@pytest.mark.parametrize("memorized", [True, False])
def test_methods_agree(tiny_model_dir, tokenizer, memorized):
    if memorized:
        model = memorizing_model(tiny_model_dir, tokenizer, TEXT)
    else:
        model = load_model(str(tiny_model_dir("gpt2")))
    records = [
        Record("tr", TEXT, SPANS),
        Record("te", TEXT.replace("Dana Whitfield", "Omar Lund"), [Span(19, 28, "PERSON")]),
    ]
    canary = Canary("c0", "Note: the verification code is ", "482913", ".", 3)
    extraction = record_targets(records, tokenizer, "train", max_length=128) + canary_targets(
        [canary], tokenizer, max_length=64
    )
    fast = run_extraction(model, tokenizer, extraction, method="teacher_forced")
    slow = run_extraction(model, tokenizer, extraction, method="generate", batch_size=2)
    assert fast == slow
    # The memorizing model reproduces its two training spans, and not the unseen ones.
    assert fast == ([True, True, False, False] if memorized else [False] * 4)


def test_unknown_method_rejected(tiny_model_dir, tokenizer):
    model = load_model(str(tiny_model_dir("gpt_neox")))
    with pytest.raises(ValueError, match="valid: teacher_forced, generate"):
        run_extraction(
            model, tokenizer, record_targets([], tokenizer, "train", max_length=8), method="beam"
        )


@pytest.fixture(scope="module")
def extraction(tiny_model_dir, tokenizer):
    model = memorizing_model(tiny_model_dir, tokenizer, TEXT)
    base = load_model(str(tiny_model_dir("gpt_neox")))
    train = [Record("tr", TEXT, SPANS)]
    test = [Record("te", TEXT.replace("Dana Whitfield", "Omar Lund"), [Span(19, 28, "PERSON")])]
    return extraction_report(
        model, base, tokenizer, train=train, test=test, train_texts=[TEXT], max_length=128
    )


def test_memorized_spans_extracted(extraction):
    assert extraction["finetuned"]["train"]["extracted"] == 2
    assert extraction["finetuned"]["train"]["by_kind"]["EMAIL"]["share"] == 1.0


def test_unseen_span_not_extracted(extraction):
    assert extraction["finetuned"]["test"]["extracted"] == 0


def test_base_extracts_nothing(extraction):
    assert extraction["base"]["train"]["extracted"] == 0


def test_single_copy_is_recollection(extraction):
    assert extraction["taxonomy"]["counts"] == {
        "recitation": 0,
        "reconstruction": 0,
        "recollection": 2,
    }


def target(split: str, kind: str, value: str, repetitions=None) -> ExtractionTarget:
    return ExtractionTarget("id", split, kind, [0], [5, 6], value, repetitions)


def test_taxonomy_hand_case():
    targets = [
        target("train", "PERSON", "Dana Whitfield"),  # in two records: recitation
        target("train", "EMAIL", "dana@example.com"),  # base extracts it: reconstruction
        target("train", "PHONE", "555 0134"),  # once, base fails: recollection
        target("train", "PHONE", "555 0199"),  # not extracted: not memorized
        target("test", "PERSON", "Omar Lund"),  # test span: never memorized
        target("canaries", "SECRET", "482913", repetitions=4),  # four insertions: recitation
        target("canaries", "SECRET", "105577", repetitions=0),  # reference: not memorized
    ]
    finetuned = [True, True, True, False, True, True, True]
    base = [False, True, False, False, True, False, False]
    texts = [
        "Hi, I am Dana Whitfield.",
        "Dana Whitfield again, mail dana@example.com or call 555 0134.",
        *["The code is 482913."] * 4,
    ]
    report = taxonomy(targets, finetuned, base, texts)
    assert report["memorized"] == 4
    assert report["counts"] == {"recitation": 2, "reconstruction": 1, "recollection": 1}
    assert report["shares"]["recitation"] == pytest.approx(0.5)
    assert report["by_kind"]["SECRET"] == {
        "recitation": 1,
        "reconstruction": 0,
        "recollection": 0,
    }


def test_summary_by_repetitions():
    targets = [
        target("canaries", "SECRET", "1", repetitions=4),
        target("canaries", "SECRET", "2", repetitions=4),
        target("canaries", "SECRET", "3", repetitions=0),
        target("train", "PERSON", "x"),
    ]
    report = summarize(targets, [True, False, False, True])
    assert report["canaries"]["by_repetitions"]["4"] == {"spans": 2, "extracted": 1, "share": 0.5}
    assert report["canaries"]["by_repetitions"]["0"]["share"] == 0.0
    assert report["train"]["share"] == 1.0
    assert report["test"]["share"] is None


def test_count_copies():
    assert count_copies(["ab", "zz"], ["xaby", "ab", "b"]) == [2, 0]


def test_invalid_cap_rejected(tiny_model_dir, tokenizer):
    model = load_model(str(tiny_model_dir("gpt_neox")))
    with pytest.raises(ValueError, match="invalid max_records 0: extraction needs at least 1"):
        extraction_report(model, None, tokenizer, train=[], test=[], max_records=0)
