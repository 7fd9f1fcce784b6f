"""The request log: sampled, written off the request path, rotated, bounded, and harmless when the disk fails."""

import io

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from modules import classes, keys, request_log

PETS = classes.OXFORD_IIIT_PET


def _jpeg(width=40, height=30, mode='RGB'):
    data = io.BytesIO()
    Image.new(mode, (width, height)).save(data, 'JPEG')
    return data.getvalue()


def _records(log_dir):
    return [tf.train.Example.FromString(r) for path in request_log.log_files(log_dir)
            for r in tf.data.TFRecordDataset(path).as_numpy_iterator()]


def test_a_logged_request_has_the_features_example_gen_computes_and_the_predicted_fractions(tmp_path):
    log = request_log.RequestLog(str(tmp_path / 'log'), sample_rate=1.0)
    mask = np.array([[0, 0, 1, 255], [2, 1, 1, 255]], np.uint8)  # 255: full-size padding, not counted
    log.offer([_jpeg(40, 30), _jpeg(8, 6, 'L')], [mask, mask], PETS, version=7, latency_ms=12.5)
    log.flush()
    first, second = _records(str(tmp_path / 'log'))
    features = first.features.feature
    assert [features[k].int64_list.value[0] for k in keys.IMAGE_FEATURES] == [30, 40, 3]
    assert second.features.feature[keys.IMAGE_CHANNELS_KEY].int64_list.value[0] == 1
    assert features['pet_fraction'].float_list.value[0] == pytest.approx(2 / 6)
    assert features['background_fraction'].float_list.value[0] == pytest.approx(3 / 6)
    assert features[request_log.MODEL_VERSION_KEY].int64_list.value[0] == 7
    assert keys.IMAGE_KEY not in features, 'image bytes only with log_images'
    assert log.counts == {'offered': 2, 'logged': 2, 'dropped': 0, 'failed': 0}


def test_sampling_logs_about_the_share_asked_for_and_images_only_when_asked(tmp_path):
    log = request_log.RequestLog(str(tmp_path / 'log'), sample_rate=0.25, log_images=True, seed=3)
    image, mask = _jpeg(), np.zeros((4, 4), np.uint8)
    for _ in range(400):
        log.offer([image], [mask], PETS, 1, 1.0)
    log.flush()
    records = _records(str(tmp_path / 'log'))
    assert 70 <= len(records) <= 130 and log.counts['logged'] == len(records)
    assert records[0].features.feature[keys.IMAGE_KEY].bytes_list.value[0] == image


def test_files_rotate_by_size_and_the_oldest_go_beyond_the_total_bound(tmp_path):
    log_dir = str(tmp_path / 'log')
    log = request_log.RequestLog(log_dir, sample_rate=1.0, max_file_bytes=1, max_total_bytes=600)
    for _ in range(12):
        log.offer([_jpeg()], [np.zeros((4, 4), np.uint8)], PETS, 1, 1.0)
        log.flush()
    files = request_log.log_files(log_dir)
    sizes = [tf.io.gfile.stat(path).length for path in files]
    assert log.counts['logged'] == 12 and 1 < len(files) < 12, 'one record per file, the oldest deleted'
    assert sum(sizes[:-1]) <= 600


def test_a_failing_disk_loses_records_but_never_raises(tmp_path):
    blocked = tmp_path / 'not_a_directory'
    blocked.write_text('a file where the log directory should be')
    log = request_log.RequestLog(str(blocked / 'log'), sample_rate=1.0)
    log.offer([_jpeg()], [np.zeros((4, 4), np.uint8)], PETS, 1, 1.0)
    log.offer([b'not an image'], [np.zeros((4, 4), np.uint8)], PETS, 1, 1.0)
    log.flush()
    assert log.counts['failed'] == 2 and log.counts['logged'] == 0


def test_a_full_queue_drops_instead_of_waiting(tmp_path):
    log = request_log.RequestLog(str(tmp_path / 'log'), sample_rate=1.0, queue_size=1)
    images = [_jpeg()] * 200
    log.offer(images, [np.zeros((4, 4), np.uint8)] * 200, PETS, 1, 1.0)
    log.flush()
    assert log.counts['dropped'] > 0 and log.counts['logged'] + log.counts['dropped'] == 200
