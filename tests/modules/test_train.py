"""modules.train helpers: which precision training uses, and the float32 model it exports."""

import dataclasses

import numpy as np
import pytest

from modules import keys, model as model_lib, train
from pipeline import config as config_lib


@pytest.mark.parametrize('setting', [True, False])
def test_an_explicit_precision_wins_over_the_hardware(setting):
    training = dataclasses.replace(config_lib.TrainingConfig(), mixed_bfloat16=setting)
    assert train.use_mixed_bfloat16(training) is setting


def test_unset_precision_follows_the_hardware():
    assert train.use_mixed_bfloat16(config_lib.TrainingConfig()) == model_lib.native_bfloat16()


def test_a_bfloat16_trained_model_is_exported_as_a_float32_twin():
    training = dataclasses.replace(config_lib.TrainingConfig(), mixed_bfloat16=True)
    model = train.build_model(training)
    twin = train.float32_twin(model, training)
    assert twin is not model
    assert {layer.compute_dtype for layer in twin.get_layer('encoder').layers} == {'float32'}
    images = np.random.default_rng(1).random((1, keys.IMAGE_SIZE, keys.IMAGE_SIZE, 3), 'float32')
    assert np.mean(np.argmax(model(images), -1) == np.argmax(twin(images), -1)) > 0.95


def test_a_float32_model_is_exported_as_is():
    training = dataclasses.replace(config_lib.TrainingConfig(), mixed_bfloat16=False)
    model = train.build_model(training)
    assert train.float32_twin(model, training) is model
