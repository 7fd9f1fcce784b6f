"""Precise BatchNorm statistics: what `recompute` leaves in each layer, which layers it touches, and that the
Trainer exports the recomputed model (tests/scenario.py's Transform output, trained in a fresh process)."""

import dataclasses
import json
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras

from modules import classes, data, hparams, model as model_lib, precise_batchnorm, train
from tests.scenario import train_in_process


def _model(frozen_first: bool = False) -> keras.Model:
    """Input -> BatchNorm -> Conv -> BatchNorm: the first layer's batch statistics are the images' own."""
    inputs = keras.Input([8, 8, 3])
    first = keras.layers.BatchNormalization(name='first')
    x = first(inputs)
    x = keras.layers.Conv2D(4, 3, padding='same', kernel_initializer=keras.initializers.RandomNormal(seed=1))(x)
    outputs = keras.layers.BatchNormalization(name='second')(x)
    first.trainable = not frozen_first
    return keras.Model(inputs, outputs)


def _images(count: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    # Far from the layers' initial statistics (mean 0, variance 1), and different per channel.
    return (rng.normal(size=(count, 8, 8, 3)) * [2.0, 0.5, 3.0] + [5.0, -1.0, 0.5]).astype(np.float32)


def test_each_layer_gets_the_size_weighted_mean_of_its_batch_statistics():
    model, images = _model(), _images(10)
    batches = tf.data.Dataset.from_tensor_slices(images).batch(4)  # 4, 4 and a partial 2
    assert precise_batchnorm.recompute(model, batches, max_images=100) == 10
    first = model.get_layer('first')
    parts = [images[:4], images[4:8], images[8:]]
    expected_mean = sum(len(p) * p.mean(axis=(0, 1, 2)) for p in parts) / 10
    np.testing.assert_allclose(first.moving_mean.numpy(), expected_mean, rtol=1e-5)
    # Each batch's variance as the layer keeps it for inference (TensorFlow's: Bessel-corrected), then averaged.
    expected_variance = sum(len(p) * p.var(axis=(0, 1, 2), ddof=1) for p in parts) / 10
    np.testing.assert_allclose(first.moving_variance.numpy(), expected_variance, rtol=1e-4)
    assert first.momentum == 0.99 and model.get_layer('second').momentum == 0.99, 'momenta are given back'


def test_on_one_batch_inference_normalizes_as_training_did():
    model, images = _model(), _images(16, seed=3)
    before = np.abs(model(images, training=False) - model(images, training=True)).max()
    precise_batchnorm.recompute(model, tf.data.Dataset.from_tensor_slices(images).batch(16), max_images=16)
    after = np.abs(model(images, training=False) - model(images, training=True)).max()
    assert before > 1.0 and after < 0.02, (before, after)


def test_it_stops_after_the_batch_that_reaches_max_images_and_takes_image_mask_pairs():
    model, images = _model(), _images(12)
    pairs = tf.data.Dataset.from_tensor_slices((images, np.zeros([12, 8, 8, 1], np.uint8))).batch(4)
    assert precise_batchnorm.recompute(model, pairs, max_images=6) == 8
    np.testing.assert_allclose(model.get_layer('first').moving_mean.numpy(), images[:8].mean(axis=(0, 1, 2)),
                               rtol=1e-5)


def test_frozen_layers_keep_their_statistics_and_nothing_changes_without_images():
    model = _model(frozen_first=True)
    first, second = model.get_layer('first'), model.get_layer('second')
    assert precise_batchnorm.trained_batchnorms(model) == [second]
    before = [w.numpy().copy() for w in (first.moving_mean, first.moving_variance, second.moving_mean)]
    assert precise_batchnorm.recompute(model, tf.data.Dataset.from_tensor_slices(_images(4)).batch(4), 0) == 0
    assert precise_batchnorm.recompute(model, tf.data.Dataset.from_tensor_slices(_images(4)).batch(4).take(0), 8) == 0
    np.testing.assert_array_equal(second.moving_mean.numpy(), before[2])
    precise_batchnorm.recompute(model, tf.data.Dataset.from_tensor_slices(_images(4)).batch(4), 8)
    np.testing.assert_array_equal(first.moving_mean.numpy(), before[0])
    np.testing.assert_array_equal(first.moving_variance.numpy(), before[1])
    assert not np.allclose(second.moving_mean.numpy(), before[2])


def test_the_unets_trained_batchnorms_are_found_inside_its_encoder():
    unet = model_lib.build_unet(image_size=64, encoder_weights='none')
    found = precise_batchnorm.trained_batchnorms(unet)
    # MobileNetV2's: bn_Conv1, expanded_conv's two, three in each of blocks 1-16 but block_16_project's (the skip
    # is the convolution before it); then the decoder's four.
    assert len(found) == 1 + 2 + 16 * 3 - 1 + 4
    assert found[0].name == 'bn_Conv1' and not any(layer.name == 'block_16_project_BN' for layer in found)


@pytest.mark.e2e
def test_the_trainer_exports_the_model_with_recomputed_statistics(scenario, tmp_path):
    # One batch holds every training image, unaugmented, so recomputing again below sees the very batch the
    # Trainer saw.
    args = scenario.training_job(str(tmp_path), epochs=1, batch_size=32, steps_per_epoch=2, validation_steps=1,
                                 mixed_bfloat16=False, augmentation=hparams.AugmentationConfig(flip=False))
    output = train_in_process(args)
    record = json.load(open(os.path.join(args['run'], hparams.BATCHNORM_FILE)))
    train_count = data.count_examples(args['train'])
    assert record['images'] == train_count and record['layers'] > 50, record
    assert set(record['before']) == set(record['after']) == {'val_pixel_accuracy', 'val_mean_iou'}
    assert f'BatchNorm statistics recomputed from {train_count} training images' in output
    # Recomputing the exported model's statistics again changes nothing: they are the recomputed ones, not the
    # moving averages two steps of training left.
    exported = keras.models.load_model(args['serving'], compile=False)
    layers = precise_batchnorm.trained_batchnorms(exported)
    saved = [(layer.moving_mean.numpy(), layer.moving_variance.numpy()) for layer in layers]
    images = data.input_fn(args['train'], tft.TFTransformOutput(args['transform']), 32, training=False,
                           augmentation=None, cache=False)
    assert precise_batchnorm.recompute(exported, images, train_count) == train_count
    for layer, (mean, variance) in zip(layers, saved):
        np.testing.assert_allclose(layer.moving_mean.numpy(), mean, rtol=1e-3, atol=1e-4, err_msg=layer.name)
        np.testing.assert_allclose(layer.moving_variance.numpy(), variance, rtol=1e-3, atol=1e-4, err_msg=layer.name)


@pytest.mark.e2e
def test_the_trainers_statistics_come_from_the_training_split_augmented_as_in_training(scenario, tmp_path):
    args = scenario.training_job(str(tmp_path))
    transform = tft.TFTransformOutput(args['transform'])
    inputs = keras.Input(transform.transformed_feature_spec()['image_xf'].shape)
    first = keras.layers.BatchNormalization()
    model = keras.Model(inputs, keras.layers.Conv2D(3, 1)(first(inputs)))
    plain = dataclasses.replace(hparams.from_custom_config(args), augmentation=hparams.AugmentationConfig(flip=False))
    validation = data.input_fn(args['eval'], transform, 4, training=False, cache=False)
    record = train.recompute_batchnorm(model, plain, args['train'], transform, validation, classes.OXFORD_IIIT_PET)
    images = np.concatenate([batch[0].numpy() for batch in data.input_fn(args['train'], transform, 64,
                                                                          training=False, cache=False)])
    assert record['images'] == len(images) and record['layers'] == 1
    np.testing.assert_allclose(first.moving_mean.numpy(), images.mean(axis=(0, 1, 2)), rtol=1e-4)
    jittered = dataclasses.replace(plain, augmentation=hparams.AugmentationConfig(flip=False, color=1.0))
    train.recompute_batchnorm(model, jittered, args['train'], transform, validation, classes.OXFORD_IIIT_PET)
    assert not np.allclose(first.moving_mean.numpy(), images.mean(axis=(0, 1, 2)), rtol=1e-3)
