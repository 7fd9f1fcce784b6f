"""Logged request images become the next data span: written from the request log beside the newest span,
labelled, renamed, and read by ExampleGen as span N+1 (a real TfdsExampleGen run by LocalDagRunner)."""

import io
import os

import numpy as np
import pytest
from PIL import Image
from tfx import v1 as tfx

from components.tfds_example_gen import sample_shapes, sources
from modules import classes, request_log
from pipeline import config as config_lib, data_source, platform, span_from_log
from pipeline.local import run_summary
from pipeline.pipeline import create_data_components


def _photo(seed, size=(72, 56)):
    data = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (*size[::-1], 3), np.uint8)).save(data, 'JPEG')
    return data.getvalue()


def _log(log_dir, images):
    log = request_log.RequestLog(log_dir, sample_rate=1.0, log_images=True)
    for image in images:
        log.offer([image], [np.zeros((4, 4), np.int64)], classes.OXFORD_IIIT_PET, 1, 5.0)
    log.flush()


@pytest.fixture()
def spans(tmp_path):
    sample_shapes.write_shapes(str(tmp_path / 'spans' / 'span-1'), 12, 4, num_classes=3, seed=0)
    return tmp_path / 'spans'


def test_the_newest_span_is_read_and_a_pending_one_is_not(spans):
    (spans / 'span-7.pending').mkdir()
    (spans / 'span-2').mkdir()
    assert sources.resolve_span(str(spans / 'span-{SPAN}')) == (str(spans / 'span-2'), 2)
    assert sources.resolve_span(str(spans / 'span-1')) == (str(spans / 'span-1'), None)
    with pytest.raises(sources.DataSourceError, match="matches 'week-{SPAN}'"):
        sources.resolve_span(str(spans / 'week-{SPAN}'))
    with pytest.raises(sources.DataSourceError, match='last folder name'):
        sources.resolve_span(str(spans / 'span-{SPAN}' / 'images'))


def test_logged_images_join_the_training_split_of_a_pending_span(spans, tmp_path):
    log_dir = str(tmp_path / 'log')
    _log(log_dir, [_photo(i) for i in range(3)])
    pending = span_from_log.write_pending_span(log_dir, str(spans))
    assert pending == str(spans / 'span-2.pending')
    new = open(os.path.join(pending, span_from_log.TO_LABEL)).read().split()
    assert len(new) == 3 and all(os.path.exists(os.path.join(pending, 'images', f'{s}.jpg')) for s in new)
    old_train = open(spans / 'span-1' / 'splits' / 'train.txt').read().split()
    assert open(os.path.join(pending, 'splits', 'train.txt')).read().split() == old_train + new
    assert open(os.path.join(pending, 'splits', 'eval.txt')).read() == open(spans / 'span-1' / 'splits' /
                                                                           'eval.txt').read()
    assert len(os.listdir(os.path.join(pending, 'masks'))) == len(os.listdir(spans / 'span-1' / 'masks'))
    with pytest.raises(ValueError, match='exists: label it'):
        span_from_log.write_pending_span(log_dir, str(spans))
    with pytest.raises(ValueError, match='No logged image'):
        span_from_log.write_pending_span(str(tmp_path / 'no_log'), str(tmp_path / 'other_spans'))


@pytest.mark.e2e
def test_example_gen_reads_the_labelled_span_as_the_next_one(spans, tmp_path):
    def run_example_gen():
        config = data_source.resolve_classes(config_lib.preset('smoke').with_overrides(
            {'data.source_dir': str(spans / 'span-{SPAN}')}))
        root = str(tmp_path / 'run')
        tfx.orchestration.LocalDagRunner().run(tfx.dsl.Pipeline(
            pipeline_name=config.name, pipeline_root=os.path.join(root, 'pipeline_root'),
            components=create_data_components(config)[:1],
            metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
                os.path.join(root, 'metadata.db')), beam_pipeline_args=platform.direct_beam_args(1)))
        return config, run_summary.read_run_summary(os.path.join(root, 'metadata.db'), config.name)

    config, first = run_example_gen()
    assert config.data.description.num_classes == 3, "span 1's classes.json"
    assert first.data_version['span'] == 1 and first.num_examples == {'eval': 4, 'train': 12}
    log_dir = str(tmp_path / 'log')
    _log(log_dir, [_photo(i) for i in range(3)])
    pending = span_from_log.write_pending_span(log_dir, str(spans))
    for stem in open(os.path.join(pending, span_from_log.TO_LABEL)).read().split():  # the labeller's work
        width, height = Image.open(os.path.join(pending, 'images', f'{stem}.jpg')).size
        mask = np.zeros((height, width), np.uint8)
        mask[10:40, 10:50] = 1
        Image.fromarray(mask, 'L').save(os.path.join(pending, 'masks', f'{stem}.png'))
    os.rename(pending, spans / 'span-2')
    _, second = run_example_gen()
    assert second.data_version['span'] == 2 and second.num_examples == {'eval': 4, 'train': 15}
    assert second.data_version['fingerprint'] != first.data_version['fingerprint']
    assert 'span-2' in second.data_version['fingerprint']
