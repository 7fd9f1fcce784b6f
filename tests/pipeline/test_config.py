"""Presets are valid, nonsense is rejected with the field's name, overrides go through one path, and the
training settings round-trip through the Trainer's custom_config."""

import dataclasses
import json
import subprocess
import sys

import pytest

from modules import hparams
from pipeline import config as config_lib


@pytest.mark.parametrize('name', sorted(config_lib.PRESETS))
def test_presets_validate(name):
    config_lib.preset(name).validate()


def test_tutorial_preset_reproduces_the_seed():
    training = config_lib.preset('tutorial').training
    assert (training.batch_size, training.epochs, training.shuffle_buffer, training.encoder_weights) == (64, 20, 1000, 'imagenet')
    assert config_lib.preset('tutorial').data.dataset == 'oxford_iiit_pet'


@pytest.mark.parametrize('key, value, message', [
    ('training.epochs', 0, 'training.epochs must be >= 1, got 0'),
    ('training.batch_size', -4, 'training.batch_size must be >= 1, got -4'),
    ('training.seed', -1, 'training.seed must be >= 0, got -1'),
    ('training.learning_rate', 5.0, 'learning_rate must be in'),
    ('training.encoder_weights', 'resnet', 'encoder_weights must be one of'),
    ('training.class_weights', (1.0, 2.0), 'class_weights needs 3 positive values'),
    ('training.steps_per_epoch', 0, 'training.steps_per_epoch must be None or >= 1, got 0'),
    ('evaluation.min_mean_iou', 1.5, 'evaluation.min_mean_iou must be in'),
    ('data.max_skipped_fraction', 1.0, 'max_skipped_fraction must be in'),
    ('data.anomalies', 'ignore', "data.anomalies must be one of"),
    ('tflite.tflite_variants', ('float32', 'int4'), 'tflite.tflite_variants must be distinct values of'),
    ('tflite.tflite_variants', ('int8', 'int8'), 'tflite.tflite_variants must be distinct values of'),
    ('tflite.int8_tolerance', 1.5, 'tflite.int8_tolerance must be in'),
    ('tflite.representative_examples', 0, 'tflite.representative_examples must be >= 1, got 0'),
    ('training.augmentation.rotation', -5.0, 'training.augmentation.rotation must be >= 0, got -5.0'),
    ('training.augmentation.shift', 1.0, 'training.augmentation.shift x strength must be < 1'),
    ('training.lr_schedule', 'step', "training.lr_schedule must be one of \\('constant', 'cosine'\\)"),
    ('training.warmup_epochs', 12, r'training.warmup_epochs must be in \[0, epochs\), got 12'),
    ('training.validation_split', 0.7, r'training.validation_split must be in \[0, 0.5\]'),
    ('training.early_stopping_patience', 3, 'early_stopping_patience needs training.validation_split > 0'),
    ('tuning.tune', True, 'tuning.tune needs training.validation_split > 0'),
    ('tuning.max_trials', 0, 'tuning.max_trials must be >= 1, got 0'),
])
def test_validate_names_the_bad_field(key, value, message):
    with pytest.raises(ValueError, match=message):
        config_lib.preset('default').with_overrides({key: value})


def test_validate_refuses_both_forms_of_the_transposed_convolutions():
    with pytest.raises(ValueError, match='training.speed.subpixel_upsampling and gemm_upsampling'):
        config_lib.preset('default').with_overrides({'training.speed.subpixel_upsampling': True,
                                                     'training.speed.gemm_upsampling': True})
    with pytest.raises(ValueError, match='training.speed.subpixel_upsampling and split_skip_logits'):
        config_lib.preset('default').with_overrides({'training.speed.subpixel_upsampling': True,
                                                     'training.speed.split_skip_logits': True})
    sub_pixel = config_lib.preset('default').with_overrides({'training.speed.subpixel_upsampling': True})
    assert sub_pixel.training.speed.subpixel_upsampling


def test_nested_sections_are_replaced_setting_by_setting():
    real = config_lib.preset('real')
    config = real.with_overrides({'training.augmentation.color': 0.0, 'training.speed.jit_compile': True})
    assert config.training.augmentation == dataclasses.replace(real.training.augmentation, color=0.0)
    assert config.training.speed.jit_compile and config.training.epochs == real.training.epochs


def test_with_overrides_replaces_only_what_is_given():
    base = config_lib.preset('default')
    config = base.with_overrides({'training.epochs': 3, 'evaluation.max_regression': 0.05, 'training.dropout': None})
    assert config.training.epochs == 3 and config.evaluation.max_regression == 0.05
    assert config.training.dropout == base.training.dropout and config.training.batch_size == base.training.batch_size
    assert config.data == base.data


@pytest.mark.parametrize('source', ['data.dataset', 'data.data_dir', 'data.source_dir'])
def test_naming_a_data_source_turns_the_generated_sample_off(source):
    value = 'other_dataset' if source == 'data.dataset' else '/data/pets'
    assert config_lib.preset('default').data.sample is not None
    config = config_lib.preset('default').with_overrides({source: value})
    assert config.data.sample is None


@pytest.mark.parametrize('key', ['training.epoch', 'trainer.epochs', 'data.sample.num_train', 'training',
                                 'training.speed', 'training.speed.fast', 'training.augmentation.scale.x'])
def test_unknown_settings_are_named(key):
    with pytest.raises(ValueError, match=f"unknown setting '{key}'"):
        config_lib.preset('default').with_overrides({key: 1})


def test_unknown_preset():
    with pytest.raises(ValueError, match="Unknown preset 'fast'; choose one of"):
        config_lib.preset('fast')


def test_custom_config_round_trips_through_json():
    config = config_lib.preset('full').with_overrides(
        {'training.epochs': 7, 'training.class_weights': (1.0, 3.0, 2.0), 'training.speed.mixed_bfloat16': False,
         'training.batchnorm_momentum': 0.8, 'training.augmentation.scale': 0.2})
    restored = hparams.from_custom_config(json.loads(json.dumps(config.to_custom_config())))
    assert restored == config.training
    assert restored.class_weights == (1.0, 3.0, 2.0) and restored != config_lib.preset('full').training


def test_custom_configs_of_earlier_runs_with_flat_settings_are_read_into_the_sections():
    # MLMD keeps the custom_configs of runs made before the augmentation and speed settings were nested.
    flat = {name: value for name, value in dataclasses.asdict(hparams.TrainingConfig()).items()
            if name not in ('augmentation', 'speed')}
    flat.update(augment_scale=0.3, augment_flip=False, mixed_bfloat16=True, gemm_upsampling=None, jit_compile=False)
    restored = hparams.from_custom_config({'training': flat})
    assert restored.augmentation == hparams.AugmentationConfig(flip=False, scale=0.3)
    assert restored.speed == hparams.SpeedConfig(mixed_bfloat16=True)
    with pytest.raises(ValueError, match='Unknown training settings in custom_config: speed.fast'):
        hparams.from_custom_config({'training': {'speed': {'fast': True}}})


def test_custom_config_without_or_with_unknown_training_settings_is_refused():
    with pytest.raises(ValueError, match="custom_config has no 'training' settings"):
        hparams.from_custom_config({'dataset': 'oxford_iiit_pet'})
    with pytest.raises(ValueError, match='Unknown training settings in custom_config: warmup'):
        hparams.from_custom_config({'training': {**dataclasses.asdict(hparams.TrainingConfig()), 'warmup': 2}})


def test_trainer_code_imports_neither_the_pipeline_nor_our_tools():
    # (TFX's own fn_args_utils imports matplotlib; what we check is our code's import graph.)
    code = ('import os, sys; os.environ["TF_USE_LEGACY_KERAS"] = "1"; import modules.train; '
            'print(sorted(m for m in sys.modules if m.split(".")[0] in ("pipeline", "local_runner", "bench") '
            'or m in ("modules.visualize", "modules.predict", "modules.batch_predict", "modules.tflite")))')
    imported = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True).stdout
    assert imported.strip().splitlines()[-1] == '[]'


def test_the_real_preset_chooses_nothing_on_the_eval_split():
    real = config_lib.preset('real')
    training = real.training
    # It trains every epoch on all training photos and keeps the last: the eval split, its validation data,
    # is only watched (the ablation found holding 10% out for early stopping cost more than it chose).
    assert training.encoder_weights == 'none' and training.early_stopping_patience is None
    assert training.lr_schedule == 'cosine' and training.class_weights == (2.0, 1.0, 2.0) and training.test_time_flip
    assert training.augmentation.scale > 0 and training.augmentation.color > 0
    assert real.data.sample is None, 'the real preset reads the data it is given (--source_dir), not generated pets'


def test_tuning_settings_reach_the_tuner_only():
    config = config_lib.preset('real').with_overrides({'tuning.tune': True, 'tuning.max_trials': 3,
                                                       'training.validation_split': 0.1})
    assert 'tuning' not in config.to_custom_config()
    assert config.to_tuner_custom_config()['tuning']['max_trials'] == 3
    assert config.to_tuner_custom_config()['training'] == config.to_custom_config()['training']
