"""Two local worker processes train one model with MultiWorkerMirroredStrategy (TF_CONFIG on loopback).

Uses the Transform output of the e2e scenario (tests/scenario.py). Slow: two TensorFlow processes on two cores.
"""

import json
import os
import socket
import subprocess

import pytest
import tensorflow as tf

from modules import classes, signatures
from tests.scenario import training_command

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(('127.0.0.1', 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_two_workers_train_together_and_only_the_chief_exports(scenario, tmp_path):
    args = scenario.training_job(str(tmp_path), epochs=2, batch_size=2, steps_per_epoch=2, validation_steps=1,
                                 mixed_bfloat16=False)
    cluster = {'worker': [f'127.0.0.1:{port}' for port in _free_ports(2)]}
    processes = []
    for index in range(2):
        env = dict(os.environ, TF_CONFIG=json.dumps({'cluster': cluster, 'task': {'type': 'worker', 'index': index}}))
        processes.append(subprocess.Popen(training_command(args), env=env, text=True,
                                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
    outputs = []
    for process in processes:
        try:
            outputs.append(process.communicate(timeout=900)[0])
        except subprocess.TimeoutExpired:
            for p in processes:
                p.kill()
            pytest.fail('the workers did not finish in 15 minutes')
    for index, (process, output) in enumerate(zip(processes, outputs)):
        assert process.returncode == 0, f'worker {index} failed:\n{output[-4000:]}'
        assert 'Distribution: MultiWorkerMirroredStrategy: 2 replica(s); 4 examples per step (2 per replica)' in output
        assert 'EPOCHS 2' in output, output[-2000:]
    assert 'epoch 2/2' in outputs[0] and 'epoch 2/2' not in outputs[1], 'the chief alone reports progress'
    loaded = tf.saved_model.load(args['serving'])
    assert set(signatures.expected_signatures(classes.DEFAULT_IMAGE_SIZE, classes.OXFORD_IIIT_PET.num_classes)) <= set(loaded.signatures)
    history = json.load(open(os.path.join(args['run'], 'history.json')))
    assert len(history['loss']) == 2
    assert os.listdir(tmp_path / 'Trainer' / 'model' / '1') == ['Format-Serving'], 'worker 1 wrote no model here'
    assert not os.path.exists(tmp_path / 'Trainer' / 'backup') or not os.listdir(tmp_path / 'Trainer' / 'backup')
