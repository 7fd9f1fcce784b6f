"""materialize_sample_data: the default run's generated dataset is written once and becomes the source."""

import dataclasses
import os

from pipeline import config as config_lib
from pipeline.data_source import materialize_sample_data


def _small_default():
    config = config_lib.preset('default')
    sample = config_lib.SampleData(num_train=3, num_test=2, seed=5)
    return dataclasses.replace(config, data=dataclasses.replace(config.data, sample=sample))


def test_sample_data_is_generated_once_and_used_as_the_source(tmp_path):
    config = _small_default()
    materialized = materialize_sample_data(config, str(tmp_path))
    source = materialized.data.source_dir
    assert source == str(tmp_path / 'pets_3_2_seed5')
    assert len(os.listdir(os.path.join(source, 'images'))) == 5
    assert open(os.path.join(source, 'annotations', 'test.txt')).read().count('\n') == 2
    stamp = os.stat(os.path.join(source, 'images', sorted(os.listdir(os.path.join(source, 'images')))[0])).st_mtime_ns
    again = materialize_sample_data(config, str(tmp_path))
    assert again == materialized
    first_image = os.path.join(source, 'images', sorted(os.listdir(os.path.join(source, 'images')))[0])
    assert os.stat(first_image).st_mtime_ns == stamp, 'a second call must not rewrite the data (cache key)'


def test_a_config_with_its_own_source_is_left_alone(tmp_path):
    config = config_lib.preset('default').with_overrides({'data.source_dir': '/data/pets'})
    assert materialize_sample_data(config, str(tmp_path)) == config
    assert os.listdir(tmp_path) == []
