"""local_runner flags (one override path, validated like the config), and paths normalized for the cache."""

import dataclasses
import os

import pytest

import local_runner
from pipeline import config as config_lib, flags


def _config(*argv):
    return local_runner.config_from_args(list(argv))[1]


def test_relative_and_absolute_source_paths_give_the_same_config(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    relative = _config('--source_dir', 'pets', '--data_dir', '~/tfds')
    absolute = _config('--source_dir', str(tmp_path / 'pets'), '--data_dir', os.path.expanduser('~/tfds'))
    assert relative == absolute
    assert relative.data.source_dir == str(tmp_path / 'pets')


def test_remote_paths_and_flags_pass_through():
    config = _config('--preset', 'tutorial', '--data_dir', 'gs://bucket/tfds', '--epochs', '3')
    assert config.data.data_dir == 'gs://bucket/tfds'
    assert config.training.epochs == 3 and config.training.batch_size == 64


def test_every_setting_of_the_config_is_a_flag():
    parser_dests = {action.dest for action in local_runner.build_parser()._actions}

    def leaves(settings, prefix=''):
        for field in dataclasses.fields(settings):
            value = getattr(settings, field.name)
            if dataclasses.is_dataclass(value) and field.name != 'sample':
                yield from leaves(value, f'{prefix}{field.name}.')
            else:
                yield prefix + field.name
    settings = set(leaves(config_lib.PipelineConfig()))
    assert {'tuning.max_trials', 'tflite.int8_tolerance', 'data.image_size', 'name', 'training.augmentation.scale',
            'training.speed.mixed_bfloat16'} <= settings
    assert flags.NOT_FLAGS <= settings, 'a setting kept from the flags must exist'
    missing = sorted(settings - flags.NOT_FLAGS - parser_dests)
    assert not missing, f'settings without a flag: {missing}'


@pytest.mark.parametrize('argv, expected', [
    (['--max_skipped_fraction', '0.2'], ('data', 'max_skipped_fraction', 0.2)),
    (['--anomalies', 'warn'], ('data', 'anomalies', 'warn')),
    (['--batchnorm_momentum', '0.8'], ('training', 'batchnorm_momentum', 0.8)),
    (['--class_weights', '2', '2', '1'], ('training', 'class_weights', (2.0, 2.0, 1.0))),
    (['--no-mixed_bfloat16'], ('training.speed', 'mixed_bfloat16', False)),
    (['--augment_scale', '0.3'], ('training.augmentation', 'scale', 0.3)),
    (['--train_encoder'], ('training', 'train_encoder', True)),
    (['--min_mean_iou', '0.55'], ('evaluation', 'min_mean_iou', 0.55)),
    (['--tflite_variants', 'float16', 'int8'], ('tflite', 'tflite_variants', ('float16', 'int8'))),
    (['--tflite_variants'], ('tflite', 'tflite_variants', ())),
    (['--int8_tolerance', '0.02'], ('tflite', 'int8_tolerance', 0.02)),
])
def test_settings_named_by_error_messages_are_flags(argv, expected):
    section, field, value = expected
    settings = _config(*argv)
    for name in section.split('.'):
        settings = getattr(settings, name)
    assert getattr(settings, field) == value


@pytest.mark.parametrize('argv, message', [
    (['--epochs', '0'], 'training.epochs must be >= 1, got 0'),
    (['--epochs', '-3'], 'training.epochs must be >= 1, got -3'),
    (['--batch_size', '0'], 'training.batch_size must be >= 1, got 0'),
    (['--learning_rate', '0'], 'training.learning_rate must be in (0, 1), got 0.0'),
    (['--max_skipped_fraction', '-0.1'], 'data.max_skipped_fraction must be in [0, 1), got -0.1'),
    (['--steps_per_epoch', '0'], 'training.steps_per_epoch must be None or >= 1, got 0'),
    (['--direct_num_workers', '0'], 'must be >= 1, got 0'),
    (['--wait', '-1'], '--wait must be >= 0, got -1.0'),
])
def test_bad_numbers_are_refused_with_validates_message(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        local_runner.config_from_args(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_any_data_source_turns_the_generated_sample_off():
    config = _config('--dataset', 'other', '--data_dir', '/data/tfds')
    assert config.data.sample is None and config.data.dataset == 'other'
    assert _config().data.sample is not None, 'the default preset trains on generated data'
