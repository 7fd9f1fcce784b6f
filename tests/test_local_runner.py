"""local_runner flags: presets and overrides, and data paths normalized so the cache sees one source."""

import os

import local_runner


def test_relative_and_absolute_source_paths_give_the_same_config(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    relative = local_runner.config_from_args(local_runner.parse_args(['--source_dir', 'pets', '--data_dir', '~/tfds']))
    absolute = local_runner.config_from_args(local_runner.parse_args(
        ['--source_dir', str(tmp_path / 'pets'), '--data_dir', os.path.expanduser('~/tfds')]))
    assert relative == absolute
    assert relative.data.source_dir == str(tmp_path / 'pets')


def test_remote_paths_and_flags_pass_through():
    config = local_runner.config_from_args(local_runner.parse_args(
        ['--preset', 'tutorial', '--data_dir', 'gs://bucket/tfds', '--epochs', '3']))
    assert config.data.data_dir == 'gs://bucket/tfds'
    assert config.training.epochs == 3 and config.training.batch_size == 64
