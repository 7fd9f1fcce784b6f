"""Which `tf.distribute` strategy training uses, read from the environment and never hard-wired.

- `TF_CONFIG` naming more than one chief/worker task (Vertex AI sets it for a chief + workers job; so can you,
  for processes on one or several machines): `MultiWorkerMirroredStrategy`, synchronous data parallelism with
  collective all-reduce across every worker's devices.
- Otherwise, several visible GPUs: `MirroredStrategy` over them.
- Otherwise: TensorFlow's default strategy (one device).

The configured batch size is per replica; each step consumes `batch_size x num_replicas_in_sync` examples.
Only the chief writes what a run leaves behind (the SavedModel, history, TensorBoard); the others take part in
every collective step, saving included, but write to scratch directories that are removed.
"""

import json
import os
from typing import Optional

import tensorflow as tf

TF_CONFIG = 'TF_CONFIG'
_TRAINING_TASKS = ('chief', 'master', 'worker')


def _tf_config(tf_config: Optional[str]) -> dict:
    text = os.environ.get(TF_CONFIG, '') if tf_config is None else tf_config
    try:
        return json.loads(text) if text.strip() else {}
    except json.JSONDecodeError as e:
        raise ValueError(f'{TF_CONFIG} is not valid JSON ({e}): {text[:200]!r}') from None


def training_tasks(tf_config: Optional[str] = None) -> int:
    """How many processes train together according to `TF_CONFIG` (chief, master and worker tasks); 1 without it."""
    cluster = _tf_config(tf_config).get('cluster', {})
    return max(1, sum(len(cluster.get(kind, [])) for kind in _TRAINING_TASKS))


def is_chief(tf_config: Optional[str] = None) -> bool:
    """Whether this process writes the run's outputs: the chief, or worker 0 of a cluster without a chief."""
    config = _tf_config(tf_config)
    cluster, task = config.get('cluster', {}), config.get('task', {})
    if not cluster or not task:
        return True
    kind, index = task.get('type'), int(task.get('index', 0))
    if kind in ('chief', 'master'):
        return index == 0
    return kind == 'worker' and index == 0 and not cluster.get('chief') and not cluster.get('master')


def task_name(tf_config: Optional[str] = None) -> str:
    """'chief', 'worker-1', ... of this process, for scratch paths and logs."""
    task = _tf_config(tf_config).get('task', {})
    return f'{task.get("type", "chief")}-{task.get("index", 0)}'


def choose_strategy(tf_config: Optional[str] = None, gpus: Optional[int] = None) -> tf.distribute.Strategy:
    """The strategy the environment calls for (see the module's docstring).

    Args:
      tf_config: the `TF_CONFIG` JSON; None reads the environment.
      gpus: visible GPUs; None asks TensorFlow.

    Returns:
      MultiWorkerMirroredStrategy, MirroredStrategy or the default strategy.
    """
    if training_tasks(tf_config) > 1:
        if tf_config is not None:
            os.environ[TF_CONFIG] = tf_config  # the strategy's cluster resolver reads the environment
        return tf.distribute.MultiWorkerMirroredStrategy()
    if gpus is None:
        gpus = len(tf.config.list_physical_devices('GPU'))
    if gpus > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def describe(strategy: tf.distribute.Strategy) -> str:
    """'MultiWorkerMirroredStrategy: 2 replica(s)' and the like, for the log."""
    # TF 2.16's MultiWorkerMirroredStrategy is a class named CollectiveAllReduceStrategy; say the public name.
    name = ('MultiWorkerMirroredStrategy' if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
            else type(strategy).__name__)
    return f'{name}: {strategy.num_replicas_in_sync} replica(s)'


def shard_by_data(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """Shards a dataset across workers element by element.

    Transform writes few files per split (often one), too few to give each worker its own; sharding by data
    gives each worker every N-th element instead of failing or repeating files.
    """
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)
