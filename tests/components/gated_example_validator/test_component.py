"""Data anomalies stop the run before training, naming the feature and the bound; 'warn' lets it through.

Runs the real data half of the pipeline (TfdsExampleGen, StatisticsGen, ImportSchemaGen and the gated
ExampleValidator) with LocalDagRunner on generated pets, one of whose trimaps marks a single pet pixel (below
the schema's 0.1% bound; a trimap with none at all never gets this far: ExampleGen skips it as a broken
annotation).
"""

import io
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from tfx import v1 as tfx

from components.gated_example_validator import executor
from modules import classes, keys, paths
from pipeline import config as config_lib, node_ids, platform
from pipeline.local import run_summary
from pipeline.pipeline import create_data_components

pytestmark = pytest.mark.e2e


@pytest.fixture(scope='module')
def petless_source(sample_folders, tmp_path_factory):
    source = tmp_path_factory.mktemp('petless') / 'pets'
    shutil.copytree(sample_folders, source)
    name = open(source / 'annotations' / 'trainval.txt').readline().split(' ')[0]
    trimap = source / 'annotations' / 'trimaps' / f'{name}.png'
    size = Image.open(trimap).size
    petless = np.full(size[::-1], 2, np.uint8)  # background everywhere but one pixel
    petless[0, 0] = 1
    Image.fromarray(petless, 'L').save(trimap)
    return str(source)


def _run_data_half(source, root, anomalies='fail'):
    config = config_lib.preset('smoke').with_overrides({'data.source_dir': source, 'data.anomalies': anomalies})
    pipeline = tfx.dsl.Pipeline(
        pipeline_name=config.name, pipeline_root=os.path.join(root, 'pipeline_root'),
        components=create_data_components(config),
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            os.path.join(root, 'metadata.db')),
        beam_pipeline_args=platform.direct_beam_args(1))
    tfx.orchestration.LocalDagRunner().run(pipeline)
    return run_summary.read_run_summary(os.path.join(root, 'metadata.db'), config.name)


def test_an_image_with_almost_no_pet_stops_the_run_and_names_the_bound(petless_source, tmp_path):
    with pytest.raises(executor.DataAnomaliesError) as error:
        _run_data_half(petless_source, str(tmp_path), 'fail')
    message = str(error.value)
    assert message.startswith('data anomalies, training stopped: train: pet_fraction:')
    assert 'eval:' not in message, 'only the split with the bad trimap is named'
    assert '--anomalies warn' in message


def test_warn_lets_the_run_through_and_reports_the_anomaly(petless_source, tmp_path):
    summary = _run_data_half(petless_source, str(tmp_path), 'warn')
    states = {c.node_id: c.state for c in summary.components}
    assert states[node_ids.EXAMPLE_VALIDATOR] == 'COMPLETE'
    assert list(summary.anomalies) == ['train'] and summary.anomalies['train'][0].startswith('pet_fraction:')
    assert run_summary.component_figure(summary, node_ids.EXAMPLE_VALIDATOR).startswith('train: pet_fraction:')
    assert 'Data anomalies in train: pet_fraction' in run_summary.format_table(summary)


def test_clean_data_has_measured_features_within_bounds(sample_folders, tmp_path):
    summary = _run_data_half(sample_folders, str(tmp_path), 'fail')
    assert summary.anomalies == {}
    record = paths.read_gzip_records(paths.split_dir(summary.examples_uri, 'train'), limit=1)[0]
    features = tf.train.Example.FromString(record).features.feature
    height = features[keys.IMAGE_HEIGHT_KEY].int64_list.value[0]
    width = features[keys.IMAGE_WIDTH_KEY].int64_list.value[0]
    image = Image.open(io.BytesIO(features[keys.IMAGE_KEY].bytes_list.value[0]))
    assert (width, height) == image.size and features[keys.IMAGE_CHANNELS_KEY].int64_list.value[0] == 3
    fractions = [features[key].float_list.value[0] for key in classes.OXFORD_IIIT_PET.fraction_keys]
    assert abs(sum(fractions) - 1.0) < 1e-5 and fractions[0] > 0.01


def test_drift_against_the_previous_data_version_is_reported(sample_folders, tmp_path):
    small = tmp_path / 'small_pets'
    shutil.copytree(sample_folders, small)
    for folder, method in (('images', Image.BILINEAR), ('annotations/trimaps', Image.NEAREST)):
        for path in (small / folder).iterdir():
            Image.open(path).resize((48, 40), method).save(path)  # a camera that now sends thumbnails
    first = _run_data_half(sample_folders, str(tmp_path / 'root'))
    assert first.drift == {}, 'nothing to compare with on the first run'
    second = _run_data_half(str(small), str(tmp_path / 'root'))
    drifted = {line.split(':')[0] for line in second.drift['train']}
    assert {keys.IMAGE_HEIGHT_KEY, keys.IMAGE_WIDTH_KEY} <= drifted
    assert 'drift in ' in run_summary.component_figure(second, node_ids.EXAMPLE_VALIDATOR)
    assert 'Data drift in train against the previous data version: image_height' in run_summary.format_table(second)
