"""The real preprocessing_fn through tft_beam.AnalyzeAndTransformDataset on generated examples."""

import io

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform.beam as tft_beam
from PIL import Image
from tensorflow_transform.tf_metadata import dataset_metadata

from components.tfds_example_gen import sample_data
from modules import classes, keys, preprocessing

IMAGE_XF, MASK_XF = keys.transformed_name(keys.IMAGE_KEY), keys.transformed_name(keys.MASK_KEY)


def _png(array):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format='PNG')
    return buffer.getvalue()


@pytest.fixture(scope='module')
def transformed(tmp_path_factory):
    raw, sources = [], []
    for index in range(4):
        image, trimap, _ = sample_data.make_example(seed=5, index=index)
        encoded = _png(image) if index == 3 else sample_data.encode_jpeg(image)  # PNG images work too
        raw.append({keys.IMAGE_KEY: [encoded], keys.MASK_KEY: [_png(trimap)]})
        sources.append((encoded, trimap))
    metadata = dataset_metadata.DatasetMetadata.from_feature_spec({
        keys.IMAGE_KEY: tf.io.FixedLenFeature([1], tf.string), keys.MASK_KEY: tf.io.FixedLenFeature([1], tf.string)})
    with tft_beam.Context(temp_dir=str(tmp_path_factory.mktemp('tft'))):
        (data, _), _ = (raw, metadata) | tft_beam.AnalyzeAndTransformDataset(preprocessing.preprocessing_fn)
    return data, sources


def test_shapes_and_ranges(transformed):
    data, _ = transformed
    for row in data:
        image, mask = np.asarray(row[IMAGE_XF]), np.asarray(row[MASK_XF])
        assert image.shape == (classes.DEFAULT_IMAGE_SIZE, classes.DEFAULT_IMAGE_SIZE, 3) and image.dtype == np.float32
        assert 0.0 <= image.min() and image.max() <= 1.0 and image.max() > 0.5
        assert mask.shape == (classes.DEFAULT_IMAGE_SIZE, classes.DEFAULT_IMAGE_SIZE, 1)
        assert set(np.unique(mask)) == {0, 1, 2}, 'trimap {1,2,3} shifted to exactly {0,1,2}, no blends'


def test_values_match_tutorial_resize_and_nearest_masks(transformed):
    data, sources = transformed
    for row, (encoded, trimap) in zip(data, sources):
        decoded = tf.io.decode_image(encoded, channels=3)
        expected_image = tf.image.resize(decoded, (classes.DEFAULT_IMAGE_SIZE, classes.DEFAULT_IMAGE_SIZE)) / 255.0  # the seed's load_image
        np.testing.assert_allclose(row[IMAGE_XF], expected_image, atol=1e-6)
        expected_mask = tf.image.resize(trimap[..., None], (classes.DEFAULT_IMAGE_SIZE, classes.DEFAULT_IMAGE_SIZE), method='nearest') - 1
        np.testing.assert_array_equal(row[MASK_XF], expected_mask)


def test_empty_strings_decode_to_zeros():
    # What the TFT layer feeds for a raw feature the serving request lacks (the mask).
    masks = preprocessing.decode_masks(tf.constant([b'', b'']))
    images = preprocessing.decode_images(tf.constant([b'']))
    assert masks.shape == (2, classes.DEFAULT_IMAGE_SIZE, classes.DEFAULT_IMAGE_SIZE, 1)
    assert np.all(masks.numpy() == classes.IGNORE_LABEL), 'a missing mask labels nothing: every pixel ignored'
    assert images.shape == (1, classes.DEFAULT_IMAGE_SIZE, classes.DEFAULT_IMAGE_SIZE, 3) and not np.any(images)


def test_described_values_map_to_classes_at_the_configured_size(tmp_path):
    # Several values for one class, an ignored value and a value the description does not know.
    description = classes.ClassDescription.from_dict(
        {'names': ['background', 'cat', 'dog'], 'values': [[0], [10, 11], [20]], 'ignore': [255]})
    values = np.array([[0, 10, 11, 20, 255, 7]], np.uint8).repeat(6, axis=0).repeat(32, axis=0).repeat(32, axis=1)
    raw = [{keys.IMAGE_KEY: [sample_data.encode_jpeg(np.zeros((192, 192, 3), np.uint8))], keys.MASK_KEY: [_png(values)]}]
    metadata = dataset_metadata.DatasetMetadata.from_feature_spec({
        keys.IMAGE_KEY: tf.io.FixedLenFeature([1], tf.string), keys.MASK_KEY: tf.io.FixedLenFeature([1], tf.string)})
    custom_config = classes.to_custom_config(description, 96)
    with tft_beam.Context(temp_dir=str(tmp_path)):
        (data, _), _ = (raw, metadata) | tft_beam.AnalyzeAndTransformDataset(
            lambda inputs: preprocessing.preprocessing_fn(inputs, custom_config))
    image, mask = np.asarray(data[0][IMAGE_XF]), np.asarray(data[0][MASK_XF])[..., 0]
    assert image.shape == (96, 96, 3) and mask.shape == (96, 96)
    ignored = classes.IGNORE_LABEL
    np.testing.assert_array_equal(mask[0, ::16], [0, 1, 1, 2, ignored, ignored])
