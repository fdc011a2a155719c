"""Atomic writes: a killed or failing writer leaves the old file or the new one, never a part."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from fault_tools import SUBPROCESS_ENV

from privft import storage
from privft.storage import append_jsonl, atomic_write_json, atomic_write_jsonl, atomic_write_text

SIZE = 4_000_000

WRITER = """
import sys
from privft.storage import atomic_write_text
path = sys.argv[1]
step = 0
while True:
    atomic_write_text(path, str(step % 10) * {size})
    step += 1
"""


@pytest.mark.parametrize("delay_s", [0.0, 0.05, 0.13])
def test_killed_writer_leaves_whole_file(tmp_path, delay_s):
    path = tmp_path / "payload.txt"
    process = subprocess.Popen(
        [sys.executable, "-c", WRITER.format(size=SIZE), str(path)], env=SUBPROCESS_ENV
    )
    deadline = time.monotonic() + 60
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.002)
    time.sleep(delay_s)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    text = path.read_text(encoding="utf-8")
    assert len(text) == SIZE
    assert len(set(text)) == 1


def test_failed_replace_keeps_old_file(tmp_path, monkeypatch):
    path = tmp_path / "results.json"
    atomic_write_json(path, {"version": 1})

    def full_disk(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(storage.os, "replace", full_disk)
    with pytest.raises(OSError, match="No space left on device"):
        atomic_write_json(path, {"version": 2})
    assert json.loads(path.read_text()) == {"version": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]


def test_failed_write_leaves_no_temp(tmp_path, monkeypatch):
    def full_disk(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(storage.os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space left on device"):
        atomic_write_text(tmp_path / "config.yaml", "recipe: full\n")
    assert list(tmp_path.iterdir()) == []


def test_jsonl_written_whole(tmp_path):
    rows = [{"id": "a", "text": "Zoë"}, {"id": "b", "text": "x"}]
    atomic_write_jsonl(tmp_path / "rows.jsonl", rows)
    lines = (tmp_path / "rows.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == rows


def test_append_failure_cuts_partial_line(tmp_path, monkeypatch):
    path = tmp_path / "train_log.jsonl"
    append_jsonl(path, {"step": 5, "loss": 1.0})
    real_write = os.write

    def half_then_full_disk(fd, data):
        real_write(fd, bytes(data[: len(data) // 2]))
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(storage.os, "write", half_then_full_disk)
    with pytest.raises(OSError, match="No space left on device"):
        append_jsonl(path, {"step": 10, "loss": 0.5})
    assert path.read_text(encoding="utf-8") == json.dumps({"step": 5, "loss": 1.0}) + "\n"


def test_append_adds_lines(tmp_path):
    path = tmp_path / "train_log.jsonl"
    for step in (5, 10):
        append_jsonl(path, {"step": step})
    lines = path.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["step"] for line in lines] == [5, 10]


def test_written_file_has_umask_mode(tmp_path):
    import os

    from privft.storage import atomic_write_text

    mask = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "out.json", "{}")
    finally:
        os.umask(mask)
    assert (tmp_path / "out.json").stat().st_mode & 0o777 == 0o644
