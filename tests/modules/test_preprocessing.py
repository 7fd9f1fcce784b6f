"""The real preprocessing_fn through tft_beam.AnalyzeAndTransformDataset on generated examples."""

import io

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform.beam as tft_beam
from PIL import Image
from tensorflow_transform.tf_metadata import dataset_metadata

from components.tfds_example_gen import sample_data
from modules import keys, preprocessing

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
        assert image.shape == (keys.IMAGE_SIZE, keys.IMAGE_SIZE, 3) and image.dtype == np.float32
        assert 0.0 <= image.min() and image.max() <= 1.0 and image.max() > 0.5
        assert mask.shape == (keys.IMAGE_SIZE, keys.IMAGE_SIZE, 1)
        assert set(np.unique(mask)) == {0, 1, 2}, 'trimap {1,2,3} shifted to exactly {0,1,2}, no blends'


def test_values_match_tutorial_resize_and_nearest_masks(transformed):
    data, sources = transformed
    for row, (encoded, trimap) in zip(data, sources):
        decoded = tf.io.decode_image(encoded, channels=3)
        expected_image = tf.image.resize(decoded, (keys.IMAGE_SIZE, keys.IMAGE_SIZE)) / 255.0  # the seed's load_image
        np.testing.assert_allclose(row[IMAGE_XF], expected_image, atol=1e-6)
        expected_mask = tf.image.resize(trimap[..., None], (keys.IMAGE_SIZE, keys.IMAGE_SIZE), method='nearest') - 1
        np.testing.assert_array_equal(row[MASK_XF], expected_mask)


def test_empty_strings_decode_to_zeros():
    # What the TFT layer feeds for a raw feature the serving request lacks (the mask).
    masks = preprocessing.decode_masks(tf.constant([b'', b'']))
    images = preprocessing.decode_images(tf.constant([b'']))
    assert masks.shape == (2, keys.IMAGE_SIZE, keys.IMAGE_SIZE, 1) and not np.any(masks)
    assert images.shape == (1, keys.IMAGE_SIZE, keys.IMAGE_SIZE, 3) and not np.any(images)
