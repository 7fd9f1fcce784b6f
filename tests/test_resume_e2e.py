"""A Trainer killed mid-training resumes from its backup when the pipeline is run again.

A real `python local_runner.py` process is sent SIGKILL right after its first epoch; the rerun's Trainer
(a new execution, same inputs) continues from the backup instead of epoch 1, exports and the model is pushed.
"""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from modules import paths
from pipeline.local import run_summary

pytestmark = [pytest.mark.e2e, pytest.mark.slow]  # ~6 min: two smoke runs with three epochs
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _command(output_dir):
    # Early stopping on (patience above the epochs, so all three run): its state must survive the kill too.
    return [sys.executable, 'local_runner.py', '--preset', 'smoke', '--output_dir', output_dir, '--epochs', '3',
            '--validation_split', '0.25', '--early_stopping_patience', '5']


def test_a_killed_trainer_resumes_from_its_last_epoch(tmp_path):
    output_dir = str(tmp_path)
    first = subprocess.Popen(_command(output_dir), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen = []
    for line in first.stdout:
        seen.append(line)
        if line.strip().startswith('epoch 1/3'):
            os.kill(first.pid, signal.SIGKILL)
            break
    first.wait(60)
    assert first.returncode == -signal.SIGKILL, ''.join(seen)
    backups = os.listdir(os.path.join(output_dir, 'petseg', 'pipeline_root', 'Trainer', 'backup'))
    assert len(backups) == 1, 'the first epoch was backed up'

    time.sleep(1)
    rerun = subprocess.run(_command(output_dir), cwd=ROOT, capture_output=True, text=True, timeout=1500)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    lines = rerun.stdout.splitlines()
    assert any('resuming from the backup of an interrupted run: 1 of 3 epochs were done' in line for line in lines)
    assert any('early stopping resumes: best val_mean_iou' in line and 'at epoch 1' in line for line in lines), \
        rerun.stdout
    epochs = [line.strip().split(' (')[0] for line in lines if line.strip().startswith('epoch ')]
    assert epochs == ['epoch 2/3', 'epoch 3/3'], rerun.stdout
    run_dir = os.path.join(output_dir, 'petseg')
    summary = run_summary.read_run_summary(os.path.join(run_dir, 'metadata.db'), 'petseg')
    assert summary.pushed_to and len(paths.numbered_versions(os.path.join(run_dir, 'serving_model'))) == 1
    assert len(summary.final_epoch) and os.listdir(os.path.join(run_dir, 'pipeline_root', 'Trainer', 'backup')) == []
    with open(os.path.join(summary.model_run_uri, 'history.json')) as f:
        assert [len(values) for values in json.load(f).values()] == [3] * 6, 'the history has every epoch'
