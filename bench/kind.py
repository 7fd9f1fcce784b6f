"""Every per-CPU-kind figure in one command: what a session on a CPU kind not yet measured runs (~1 h, 2 cores).

    .venv/bin/python -m bench.kind                      # this machine's kind
    .venv/bin/python -m bench.kind --emulate_no_bf16    # a CPU without bfloat16, emulated (oneDNN capped at AVX2)
    .venv/bin/python -m bench.kind --dry_run            # the commands, not run

In order, each in its own process on a quiet machine: `bench.run`; `bench.train_speed`; `bench.time_to_quality`
from random weights; the pretrained encoder (the pipeline trained on other generated pets, seed 1, saved by
`bench.encoder_weights`; made once per `--work_dir`, not a measurement); `bench.time_to_quality` from it,
frozen; then `bench.report --write`. Each benchmark writes its own results with the CPU kind. Emulating a
kind without bfloat16 leaves out what only emulated bfloat16 would measure (~10x slower there): the tutorial's
one-line bfloat16 control, and `bench.train_speed` unless asked for (its bfloat16 side). Results' notes are
still yours to write.
"""

import argparse
import os
import subprocess
import sys
from typing import Dict, List, Optional, Sequence, Tuple

from bench import results_file

STEPS = ('run', 'train_speed', 'time_to_quality', 'encoder', 'time_to_quality_pretrained', 'report')


def commands(work_dir: str, emulate_no_bf16: bool = False,
             steps: Sequence[str] = STEPS) -> List[Tuple[str, List[str], Dict[str, str]]]:
    """(step, argv, extra environment) of each step, in order."""
    python = sys.executable
    capped = {'ONEDNN_MAX_CPU_ISA': 'AVX2'} if emulate_no_bf16 else {}
    sides = ['--sides', 'tutorial', 'project'] if emulate_no_bf16 else []
    pets = os.path.join(work_dir, 'pets_seed1')
    outputs = os.path.join(work_dir, 'encoder_run')
    encoder = os.path.join(work_dir, 'encoder_seed1.h5')
    planned = {
        'run': [([python, '-m', 'bench.run'], capped)],
        'train_speed': [([python, '-m', 'bench.train_speed'], capped)],
        'time_to_quality': [([python, '-m', 'bench.time_to_quality', *sides], capped)],
        'encoder': [] if os.path.isfile(encoder) else [
            ([python, '-m', 'components.tfds_example_gen.sample_data', pets, '--num-train', '240', '--num-test', '60',
              '--seed', '1'], {}),
            ([python, 'local_runner.py', '--source_dir', pets, '--output_dir', outputs], {}),
            ([python, '-m', 'bench.encoder_weights', os.path.join(outputs, 'petseg', 'serving_model'), encoder], {})],
        'time_to_quality_pretrained': [([python, '-m', 'bench.time_to_quality', '--encoder_weights', encoder, *sides],
                                        capped)],
        'report': [([python, '-m', 'bench.report', '--write'], {})],
    }
    return [(step, argv, env) for step in steps for argv, env in planned[step]]


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--emulate_no_bf16', action='store_true',
                        help='cap oneDNN at AVX2: a CPU without bfloat16, emulated (results tagged -no-bf16-capped)')
    parser.add_argument('--steps', nargs='+', choices=STEPS,
                        help='which steps (default: all; emulating, all but train_speed)')
    parser.add_argument('--work_dir', default='/tmp/petseg_kind', help='the pretrained encoder and its data')
    parser.add_argument('--dry_run', action='store_true', help='print the commands only')
    args = parser.parse_args(argv)
    steps = args.steps or [step for step in STEPS if not (args.emulate_no_bf16 and step == 'train_speed')]
    os.makedirs(args.work_dir, exist_ok=True)
    for step, command, env in commands(args.work_dir, args.emulate_no_bf16, steps):
        shown = ' '.join([*(f'{k}={v}' for k, v in env.items()), os.path.basename(command[0]), *command[1:]])
        print(f'[{step}] {shown}', flush=True)
        if not args.dry_run:
            subprocess.run(command, cwd=results_file.ROOT, env={**os.environ, 'TF_USE_LEGACY_KERAS': '1', **env},
                           check=True)


if __name__ == '__main__':
    main()
