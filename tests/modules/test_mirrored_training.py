"""The several-GPU path: `train_and_export` under MirroredStrategy with two replicas, on two logical CPUs.

No GPU here, so the test gives a fresh process two logical CPU devices and hands `train_and_export` the
strategy `choose_strategy` makes for several GPUs, over those two devices: the training code (batch per
replica, metrics across replicas, BackupAndRestore, export from the mirrored model) runs as it would on a
two-GPU machine. Uses the Transform output of the e2e scenario (tests/scenario.py).
"""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from components.tfds_example_gen import sample_data
from modules import classes, signatures
from tests.scenario import train_in_process

pytestmark = pytest.mark.e2e

# Two logical CPU devices, and the strategy several GPUs get, over them.
TWO_DEVICES = """import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from modules import distribute
distribute.choose_strategy = lambda: tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])"""


def test_two_replicas_train_one_model_and_export_it(scenario, tmp_path):
    args = scenario.training_job(str(tmp_path), epochs=2, batch_size=2, steps_per_epoch=2, validation_steps=1,
                                 mixed_bfloat16=False)
    output = train_in_process(args, TWO_DEVICES)
    assert 'Distribution: MirroredStrategy: 2 replica(s); 4 examples per step (2 per replica)' in output
    assert 'EPOCHS 2' in output and 'epoch 2/2' in output
    history = json.load(open(os.path.join(args['run'], 'history.json')))
    assert len(history['loss']) == 2 and all(0 <= value <= 1 for value in history['pixel_accuracy'])
    assert json.load(open(os.path.join(args['run'], 'batchnorm.json'))) == {
        'images': 0, 'why': 'distributed training keeps the moving averages'}
    # One model, not a replica's: it loads without the strategy and segments a served image.
    loaded = tf.saved_model.load(args['serving'])
    assert set(signatures.expected_signatures(classes.DEFAULT_IMAGE_SIZE, classes.OXFORD_IIIT_PET.num_classes)) <= set(loaded.signatures)
    picture, _, _ = sample_data.make_example(seed=9, index=0)
    mask = loaded.signatures['serving_default'](image_bytes=tf.constant([sample_data.encode_jpeg(picture)]))['mask']
    assert mask.shape == (1, classes.DEFAULT_IMAGE_SIZE, classes.DEFAULT_IMAGE_SIZE) and set(np.unique(mask)) <= {0, 1, 2}
    assert os.listdir(tmp_path / 'Trainer' / 'backup') == [], 'the backup goes once the model is exported'
