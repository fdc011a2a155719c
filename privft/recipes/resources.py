"""Compute cost of a run: wall time, tokens per second and peak memory."""

from __future__ import annotations

import os
import resource
import time

import torch

_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm", encoding="ascii") as handle:
            return int(handle.read().split()[1]) * _PAGE_BYTES
    except OSError:
        # Outside Linux: the process-wide peak, which cannot be reset between runs.
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class ResourceMonitor:
    """Track the peak memory of training, sampled where it is highest (after each backward).

    On CUDA the peak is torch's allocated-memory peak. On CPU it is the largest resident set
    size seen at the sampling points, which covers model, optimizer state, activations and
    per-sample gradients, but can miss a short spike between two samples.
    """

    def __init__(self, device: torch.device):
        self.device = device
        self.start_time = time.perf_counter()
        self.peak_bytes = 0
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)

    @property
    def method(self) -> str:
        return "cuda_max_allocated" if self.device.type == "cuda" else "sampled_rss"

    def sample(self) -> None:
        if self.device.type == "cuda":
            self.peak_bytes = max(self.peak_bytes, torch.cuda.max_memory_allocated(self.device))
        else:
            self.peak_bytes = max(self.peak_bytes, _rss_bytes())

    @property
    def elapsed_s(self) -> float:
        return time.perf_counter() - self.start_time

    @property
    def peak_mb(self) -> float:
        return self.peak_bytes / 2**20
