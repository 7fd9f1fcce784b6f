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
