"""Presets are valid, nonsense is rejected with the field's name, custom_config round-trips."""

import dataclasses
import json

import pytest

from pipeline import config as config_lib


@pytest.mark.parametrize('name', sorted(config_lib.PRESETS))
def test_presets_validate(name):
    config_lib.preset(name).validate()


def test_tutorial_preset_reproduces_the_seed():
    training = config_lib.preset('tutorial').training
    assert (training.batch_size, training.epochs, training.shuffle_buffer, training.encoder_weights) == (64, 20, 1000, 'imagenet')
    assert config_lib.preset('tutorial').data.dataset == 'oxford_iiit_pet'


@pytest.mark.parametrize('section, field, value, message', [
    ('training', 'epochs', 0, 'training.epochs must be >= 1'),
    ('training', 'learning_rate', 5.0, 'learning_rate must be in'),
    ('training', 'encoder_weights', 'resnet', 'encoder_weights must be one of'),
    ('training', 'class_weights', (1.0, 2.0), 'class_weights needs 3 positive values'),
    ('evaluation', 'min_mean_iou', 1.5, 'evaluation.min_mean_iou must be in'),
    ('data', 'max_skipped_fraction', 1.0, 'max_skipped_fraction must be in'),
])
def test_validate_names_the_bad_field(section, field, value, message):
    config = config_lib.preset('default')
    bad = dataclasses.replace(config, **{section: dataclasses.replace(getattr(config, section), **{field: value})})
    with pytest.raises(ValueError, match=message):
        bad.validate()


def test_unknown_preset():
    with pytest.raises(ValueError, match="Unknown preset 'fast'; choose one of"):
        config_lib.preset('fast')


def test_custom_config_round_trips_through_json():
    config = dataclasses.replace(config_lib.preset('full'))
    restored = config_lib.training_config_from_custom_config(json.loads(json.dumps(config.to_custom_config())))
    assert restored == config.training
