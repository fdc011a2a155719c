"""A checkpoint's accountant history must match the run it resumes."""

import pytest
import torch

from privft.config import DPSettings
from privft.privacy import make_private_training, plan_privacy


def private_run(noise: float):
    model = torch.nn.Sequential(torch.nn.Linear(4, 2))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    plan = plan_privacy(
        DPSettings(epsilon=None, noise_multiplier=noise), num_records=100, batch_size=10, epochs=1
    )
    return make_private_training(model, optimizer, plan=plan, grad_sample_mode="hooks", seed=0)


def test_matching_history_restored():
    private = private_run(1.0)
    private.restore_history([[1.0, 0.1, 4]], step=4)
    assert private.steps_taken == 4


def test_changed_noise_rejected():
    private = private_run(1.0)
    with pytest.raises(RuntimeError, match=r"noise 2, .*does not match this run"):
        private.restore_history([[2.0, 0.1, 4]], step=4)


def test_changed_sample_rate_rejected():
    private = private_run(1.0)
    with pytest.raises(RuntimeError, match="sample rate 0.05"):
        private.restore_history([[1.0, 0.05, 4]], step=4)


def test_step_count_mismatch_rejected():
    private = private_run(1.0)
    with pytest.raises(RuntimeError, match="3 steps"):
        private.restore_history([[1.0, 0.1, 3]], step=4)
