"""Start a privft command as several processes through ``accelerate launch``.

    python -m privft.launch --num-processes 2 train --recipe dp_lora --data data/cs --out runs/x

runs ``accelerate launch --multi_gpu --num_processes 2 ... -m privft train ...`` with
``PRIVFT_EXPECTED_WORLD_SIZE=2``, so that every rank stops at once if accelerate started another
number of processes. ``--multi_gpu`` also starts several processes on a machine without GPUs
(gloo on the CPU), where ``--cpu`` would silently start one. On one machine the rendezvous is
127.0.0.1 on a free port. Across machines, give ``--main-process-ip`` and ``--main-process-port``
and run the same command on every machine with its ``--machine-rank``.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys

# Defined here rather than in privft.distributed so that the launcher starts without torch.
EXPECTED_WORLD_SIZE_ENV = "PRIVFT_EXPECTED_WORLD_SIZE"


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that was free on ``host`` a moment ago, for a one-machine rendezvous."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m privft.launch",
        description="Run a privft command (train, resume) as several data-parallel processes.",
    )
    parser.add_argument(
        "--num-processes", type=int, required=True, help="Processes in all, over all machines."
    )
    parser.add_argument("--num-machines", type=int, default=1)
    parser.add_argument("--machine-rank", type=int, default=0)
    parser.add_argument(
        "--main-process-ip", help="Rendezvous address; 127.0.0.1 on one machine by default."
    )
    parser.add_argument(
        "--main-process-port", type=int, help="Rendezvous port; a free one on one machine."
    )
    parser.add_argument(
        "--config-file", help="An accelerate config (recipes/accelerate/*.yaml) to start from."
    )
    parser.add_argument("command", nargs=argparse.REMAINDER, help="privft arguments")
    args = parser.parse_args(argv)
    if args.num_processes < 1:
        parser.error("--num-processes must be at least 1")
    if args.num_machines > 1 and (args.main_process_ip is None or args.main_process_port is None):
        parser.error("several machines need --main-process-ip and --main-process-port")
    if args.command[:1] == ["--"]:
        args.command = args.command[1:]
    if not args.command:
        parser.error("name the privft command to run, for example: train --recipe full ...")
    return args


def build_command(args: argparse.Namespace) -> list[str]:
    """Return the ``accelerate launch`` command line for ``args``."""
    command = [sys.executable, "-m", "accelerate.commands.launch"]
    if args.config_file:
        command += ["--config_file", args.config_file]
    else:
        command += ["--multi_gpu", "--mixed_precision", "no", "--dynamo_backend", "no"]
    command += [
        "--num_processes",
        str(args.num_processes),
        "--num_machines",
        str(args.num_machines),
        "--machine_rank",
        str(args.machine_rank),
        "--main_process_ip",
        args.main_process_ip or "127.0.0.1",
        "--main_process_port",
        str(args.main_process_port or free_port()),
    ]
    return [*command, "-m", "privft", *args.command]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    env = {**os.environ, EXPECTED_WORLD_SIZE_ENV: str(args.num_processes)}
    if args.num_processes == 1:
        command = [sys.executable, "-m", "privft", *args.command]
    else:
        command = build_command(args)
    return subprocess.run(command, env=env, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
