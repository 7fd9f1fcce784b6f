"""local_runner.py as a user runs it: a readable console, the run report, and two runs on one output directory.

Real processes of `python local_runner.py --preset smoke`: while the first trains, a second is refused with a
clear message and changes nothing; two cached reruns started together with `--wait` run one after the other.
MLMD stays readable and exactly one version is pushed.
"""

import os
import re
import subprocess
import sys
import time

import pytest

from modules import paths
from pipeline.local import run_lock, run_summary

pytestmark = [pytest.mark.e2e, pytest.mark.slow]  # ~7 min: a full smoke run plus two cached reruns
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMPONENT_LINES = ('TfdsExampleGen', 'StatisticsGen', 'ImportSchemaGen', 'ExampleValidator', 'Transform', 'Trainer',
                   'Evaluator', 'TfliteExport', 'ServingCheck', 'Pusher')


def _runner(output_dir, *flags):
    return subprocess.Popen([sys.executable, 'local_runner.py', '--preset', 'smoke', '--output_dir', output_dir, *flags],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    output_dir = str(tmp_path_factory.mktemp('runner'))
    first = _runner(output_dir)
    logs = os.path.join(output_dir, 'petseg', 'logs')
    deadline = time.monotonic() + 300
    while not (os.path.isdir(logs) and os.listdir(logs)) and time.monotonic() < deadline:
        time.sleep(0.5)  # the log appears once the first run holds the lock
    second = _runner(output_dir)
    refused = second.communicate(timeout=300)
    completed = first.communicate(timeout=1500)
    waiting = [_runner(output_dir, '--wait', '900') for _ in range(2)]
    reruns = [(process.communicate(timeout=1500), process.returncode) for process in waiting]
    return {'dir': output_dir, 'first': (completed, first.returncode), 'second': (refused, second.returncode),
            'reruns': reruns}


def test_console_is_component_and_epoch_lines_then_less_than_a_screen_of_tables(runs):
    (stdout, stderr), code = runs['first']
    assert code == 0, stdout + stderr
    lines = stdout.splitlines()
    head, _, tables = stdout.partition('\n\n')
    header, *progress = head.splitlines()
    assert header.startswith("petseg: pipeline 'petseg', log "), header
    for line in progress:  # nothing from TensorFlow, Beam or TFX between them
        assert re.match(r'[A-Za-z]+ +(started$|ran in \d+ s)|    epoch \d+/\d+ \(\d+ s\): ', line), line
    ran = {line.split()[0] for line in progress if ' ran in ' in line}
    assert len(progress) == 2 * len(ran) + 1  # each component started and ran; the smoke preset's one epoch
    assert len(tables.splitlines()) < 35, tables
    for component in COMPONENT_LINES:
        assert any(line.startswith(f'{component} ') and ' ran in ' in line for line in lines), component
    assert any(line.strip().startswith('epoch 1/1 (') for line in lines)
    assert '| metric | candidate | baseline |' in stdout and '**BLESSED**' in stdout
    assert 'WARNING' not in stdout + stderr and 'AutoGraph' not in stdout + stderr and 'cuda' not in stdout + stderr
    log_path = lines[-1].split('Full log:', 1)[1].strip()
    log = open(log_path).read()
    assert 'Component Trainer is finished.' in log and len(log.splitlines()) > 10 * len(lines)


def test_report_and_summary_are_written_where_the_console_says(runs):
    (stdout, _), _ = runs['first']
    printed = dict(line.split(':', 1) for line in stdout.splitlines() if line.startswith(('Run report', 'Evaluation')))
    report_path, summary_path = printed['Run report'].strip(), printed['Evaluation summary'].strip()
    report = open(report_path).read()
    assert 'pixel_accuracy' in report and '![training_curves](training_curves.png)' in report
    assert os.path.exists(os.path.join(os.path.dirname(report_path), 'eval_predictions.png'))
    assert '**BLESSED**' in open(summary_path).read()


def test_a_second_run_on_the_same_directory_is_refused_and_changes_nothing(runs):
    (stdout, stderr), code = runs['second']
    assert code == 1 and stdout == ''
    assert f'Not started: another run is using {os.path.join(runs["dir"], "petseg")}' in stderr
    assert '--wait SECONDS' in stderr


def test_waiting_runs_take_turns_and_mlmd_and_versions_stay_intact(runs):
    for (stdout, stderr), code in runs['reruns']:
        assert code == 0, stdout + stderr
        assert 'Pusher             cached' in stdout or 'Pusher             ran' in stdout
    run_dir = os.path.join(runs['dir'], 'petseg')
    summary = run_summary.read_run_summary(os.path.join(run_dir, 'metadata.db'), 'petseg')
    assert {c.state for c in summary.components if not c.node_id.endswith('resolver')} == {'CACHED'}
    assert len(paths.numbered_versions(os.path.join(run_dir, 'serving_model'))) == 1
    with run_lock.acquire(run_dir):
        pass  # released by every run
