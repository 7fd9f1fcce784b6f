"""Input pipeline pieces: the joint flip keeps image and mask aligned; class weights are normalized."""

import numpy as np
import tensorflow as tf

from modules import augment, data


def test_joint_flip_keeps_image_and_mask_aligned():
    masks = tf.random.uniform([32, 8, 8, 1], maxval=3, dtype=tf.int64, seed=1)
    images = tf.concat([tf.cast(masks, tf.float32), tf.random.uniform([32, 8, 8, 2], seed=2)], axis=-1)
    flipped_images, flipped_masks = augment.random_flip(images, masks, seed=3)
    np.testing.assert_array_equal(flipped_images[..., 0], tf.cast(flipped_masks[..., 0], tf.float32))
    changed = np.any(flipped_masks.numpy() != masks.numpy(), axis=(1, 2, 3))
    assert 0 < changed.sum() < 32, 'each example draws its own flip'
    np.testing.assert_array_equal(flipped_masks.numpy()[changed], masks.numpy()[changed][:, :, ::-1])


def test_pixel_weights_follow_the_tutorial():
    masks = tf.constant([[[[0], [1], [2]]]], tf.int64)
    weights = data.pixel_weights(masks, (2.0, 2.0, 1.0))
    np.testing.assert_allclose(weights.numpy().ravel(), [0.4, 0.4, 0.2])


def test_the_training_data_is_cached_only_within_the_memory_budget(scenario, caplog):
    import logging

    import pytest
    import tensorflow_transform as tft

    from modules import hparams, train
    job = scenario.training_job('/tmp/unused')
    output = tft.TFTransformOutput(job['transform'])
    count = data.count_examples(job['train'])
    assert count == sum(1 for _ in tf.data.TFRecordDataset(job['train'], compression_type='GZIP'))
    per_example = data.example_bytes(output)
    assert per_example == 128 * 128 * 3 * 4 + 128 * 128 * 1 * 8, 'float32 image, int64 mask'
    needed_mb = count * per_example / 2 ** 20
    roomy = hparams.TrainingConfig().with_speed(cache_budget_mb=int(needed_mb) + 1)
    tight = hparams.TrainingConfig().with_speed(cache_budget_mb=int(needed_mb) - 1)
    with caplog.at_level(logging.INFO, logger=hparams.PROGRESS_LOGGER):
        assert train.cache_in_memory(roomy, job['train'], output) is True
        assert train.cache_in_memory(tight, job['train'], output) is False
    assert f'input: {count} examples' in caplog.text and "read from Transform's files every epoch" in caplog.text
    # Streamed or cached, an epoch yields the same examples.
    cached, streamed = (list(data.input_fn(job['train'], output, 4, training=False, cache=c).as_numpy_iterator())
                        for c in (True, False))
    for (image, mask), (image2, mask2) in zip(cached, streamed):
        np.testing.assert_array_equal(image, image2)
        np.testing.assert_array_equal(mask, mask2)
    assert len(cached) == len(streamed) == pytest.approx(np.ceil(count / 4))
