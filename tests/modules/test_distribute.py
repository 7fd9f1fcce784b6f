"""The strategy and the chief come from TF_CONFIG and the visible GPUs, never from code."""

import json

import pytest
import tensorflow as tf

from modules import distribute


def _config(cluster, kind, index):
    return json.dumps({'cluster': cluster, 'task': {'type': kind, 'index': index}})


TWO_WORKERS = {'worker': ['localhost:1', 'localhost:2']}
CHIEF_AND_WORKERS = {'chief': ['host0:1'], 'worker': ['host1:1', 'host2:1']}


@pytest.mark.parametrize('tf_config, tasks, chief', [
    ('', 1, True),
    (_config(TWO_WORKERS, 'worker', 0), 2, True),
    (_config(TWO_WORKERS, 'worker', 1), 2, False),
    (_config(CHIEF_AND_WORKERS, 'chief', 0), 3, True),
    (_config(CHIEF_AND_WORKERS, 'worker', 0), 3, False),   # Vertex: pool 0 is the chief, workers are not
    (_config({'chief': ['h:1'], 'worker': ['h:2'], 'ps': ['h:3']}, 'ps', 0), 2, False),
])
def test_tasks_and_chief_from_tf_config(tf_config, tasks, chief):
    assert distribute.training_tasks(tf_config) == tasks
    assert distribute.is_chief(tf_config) is chief


def test_one_process_without_gpus_keeps_the_default_strategy():
    strategy = distribute.choose_strategy(tf_config='', gpus=0)
    assert strategy is tf.distribute.get_strategy() and strategy.num_replicas_in_sync == 1


def test_several_gpus_get_mirrored_strategy():
    assert isinstance(distribute.choose_strategy(tf_config='', gpus=2), tf.distribute.MirroredStrategy)


def test_a_single_task_cluster_is_not_multi_worker():
    strategy = distribute.choose_strategy(tf_config=_config({'worker': ['localhost:1']}, 'worker', 0), gpus=0)
    assert strategy.num_replicas_in_sync == 1 and distribute.describe(strategy).endswith('1 replica(s)')


def test_broken_tf_config_is_named():
    with pytest.raises(ValueError, match='TF_CONFIG is not valid JSON'):
        distribute.training_tasks('{"cluster": ')
