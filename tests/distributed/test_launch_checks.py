"""World size and launch type checks, and the launcher's command line, in one process."""

from __future__ import annotations

import pytest
from accelerate.utils import DistributedType

from privft.config import TrainConfig
from privft.distributed import (
    EXPECTED_WORLD_SIZE_ENV,
    LaunchError,
    check_launch_type,
    check_world_size,
    expected_world_size,
)
from privft.launch import build_command, parse_args
from privft.recipes import train

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")


def test_unset_expectation_is_none():
    assert expected_world_size({}) is None


def test_expectation_read():
    assert expected_world_size({EXPECTED_WORLD_SIZE_ENV: "4"}) == 4


@pytest.mark.parametrize("value", ["0", "-2", "two"])
def test_bad_expectation_rejected(value):
    with pytest.raises(LaunchError, match="positive integer"):
        expected_world_size({EXPECTED_WORLD_SIZE_ENV: value})


def test_matching_world_size_passes():
    check_world_size(2, 2)


def test_no_expectation_passes():
    check_world_size(3, None)


def test_smaller_world_rejected():
    with pytest.raises(LaunchError, match="started 1"):
        check_world_size(1, 2)


@pytest.mark.parametrize("kind", [DistributedType.NO, DistributedType.MULTI_CPU])
def test_data_parallel_accepted(kind):
    check_launch_type(kind)


@pytest.mark.parametrize("kind", [DistributedType.FSDP, DistributedType.DEEPSPEED])
def test_sharded_launch_rejected(kind):
    with pytest.raises(LaunchError, match=f"uses {kind.value}, which privft does not support"):
        check_launch_type(kind)


def test_sharded_launch_points_to_sharding_option():
    with pytest.raises(LaunchError, match="set `sharding: fsdp`"):
        check_launch_type(DistributedType.FSDP)


def expect_two(monkeypatch, tmp_path) -> TrainConfig:
    monkeypatch.setenv(EXPECTED_WORLD_SIZE_ENV, "2")
    return TrainConfig(recipe="full", data="unused", out=str(tmp_path / "run"))


def test_one_process_run_fails_when_two_expected(monkeypatch, tmp_path):
    with pytest.raises(LaunchError, match="expected 2 processes"):
        train(expect_two(monkeypatch, tmp_path), show_progress=False)


def test_failed_check_writes_nothing(monkeypatch, tmp_path):
    with pytest.raises(LaunchError):
        train(expect_two(monkeypatch, tmp_path), show_progress=False)
    assert not (tmp_path / "run").exists()


def launch_command(*argv: str) -> list[str]:
    return build_command(parse_args(list(argv)))


def test_launcher_uses_multi_gpu():
    assert "--multi_gpu" in launch_command("--num-processes", "2", "train", "--recipe", "full")


def test_launcher_passes_process_count():
    command = launch_command("--num-processes", "2", "train")
    assert command[command.index("--num_processes") + 1] == "2"


def test_launcher_runs_privft_module():
    command = launch_command("--num-processes", "2", "train", "--recipe", "full")
    assert command[-5:] == ["-m", "privft", "train", "--recipe", "full"]


def test_launcher_rendezvous_is_loopback():
    command = launch_command("--num-processes", "2", "train")
    assert command[command.index("--main_process_ip") + 1] == "127.0.0.1"


def test_launcher_config_file_replaces_defaults():
    command = launch_command("--num-processes", "2", "--config-file", "c.yaml", "train")
    assert "--multi_gpu" not in command


def test_launcher_needs_address_across_machines():
    with pytest.raises(SystemExit):
        parse_args(["--num-processes", "4", "--num-machines", "2", "train"])
