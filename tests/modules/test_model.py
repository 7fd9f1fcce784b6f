"""build_unet: output shape, skips, frozen/trainable split, local weights, clear errors."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from modules import classes, layers, model as model_lib


@pytest.fixture(scope='module')
def random_unet():
    return model_lib.build_unet(encoder_weights='none')


def test_output_is_per_pixel_logits(random_unet):
    logits = random_unet(np.random.rand(2, classes.DEFAULT_IMAGE_SIZE, classes.DEFAULT_IMAGE_SIZE, 3).astype('float32'))
    assert logits.shape == (2, classes.DEFAULT_IMAGE_SIZE, classes.DEFAULT_IMAGE_SIZE, classes.OXFORD_IIIT_PET.num_classes)


def test_skips_and_decoder_follow_the_tutorial(random_unet):
    encoder = random_unet.get_layer('encoder')
    assert [tuple(o.shape[1:3]) for o in encoder.outputs] == [(64, 64), (32, 32), (16, 16), (8, 8), (4, 4)]
    assert [l.name for l in encoder.layers if l.name in model_lib.SKIP_LAYERS] == list(model_lib.SKIP_LAYERS)
    filters = [random_unet.get_layer(f'upsample_{i}').output_shape[-1] for i in range(4)]
    assert filters == [512, 256, 128, 64]
    assert random_unet.get_layer('logits').strides == (2, 2)


def test_random_encoder_is_trained(random_unet):
    assert random_unet.get_layer('encoder').trainable
    assert len(random_unet.non_trainable_weights) == sum(
        1 for w in random_unet.weights if 'moving_' in w.name), 'only BatchNorm statistics are non-trainable'


@pytest.fixture(scope='module')
def weights_file(tmp_path_factory):
    path = str(tmp_path_factory.mktemp('weights') / model_lib.KERAS_WEIGHTS_FILE.format(size=128))
    reference = keras.applications.MobileNetV2(input_shape=[128, 128, 3], include_top=False, weights=None)
    reference.save_weights(path)
    return path, reference.get_layer('Conv1').get_weights()[0]


def test_local_weights_load_and_freeze_the_encoder(weights_file):
    path, expected_kernel = weights_file
    unet = model_lib.build_unet(encoder_weights=path)
    encoder = unet.get_layer('encoder')
    np.testing.assert_array_equal(encoder.get_layer('Conv1').get_weights()[0], expected_kernel)
    assert not encoder.trainable
    trainable = sum(np.prod(w.shape) for w in unet.trainable_weights)
    frozen = sum(np.prod(w.shape) for w in encoder.weights)
    assert frozen > 1_500_000 and trainable > 0
    assert not any(w is e for w in unet.trainable_weights for e in encoder.weights)


def test_fine_tuning_unfreezes_the_encoder(weights_file):
    unet = model_lib.build_unet(encoder_weights=weights_file[0], train_encoder=True)
    assert unet.get_layer('encoder').trainable


def test_missing_weights_file_names_path_and_source(tmp_path):
    missing = str(tmp_path / 'nope.h5')
    with pytest.raises(FileNotFoundError, match=r"nope\.h5' not found.*storage.googleapis.com.*_128_no_top\.h5"):
        model_lib.build_unet(encoder_weights=missing)


def test_image_size_must_suit_the_encoder():
    with pytest.raises(ValueError, match='multiple of 32'):
        model_lib.build_unet(image_size=100)


def test_mixed_bfloat16_computes_in_bf16_returns_float32_and_restores_policy():
    unet = model_lib.build_unet(encoder_weights='none', mixed_bfloat16=True)
    assert unet.get_layer('upsample_0').layers[0].compute_dtype == 'bfloat16'
    assert unet.get_layer('upsample_0').layers[0].variable_dtype == 'float32'
    logits = unet(np.zeros((1, classes.DEFAULT_IMAGE_SIZE, classes.DEFAULT_IMAGE_SIZE, 3), 'float32'))
    assert logits.dtype == 'float32'
    assert keras.mixed_precision.global_policy().name == 'float32'


@pytest.mark.parametrize('train_encoder, encoder_dtype', [(False, 'float32'), (True, 'bfloat16')])
def test_mixed_bfloat16_logits_in_bf16_cast_to_float32_and_a_frozen_encoder_in_float32(weights_file, train_encoder,
                                                                                      encoder_dtype):
    unet = model_lib.build_unet(encoder_weights=weights_file[0], mixed_bfloat16=True, train_encoder=train_encoder)
    assert unet.get_layer('logits').compute_dtype == 'bfloat16'
    assert unet.layers[-1].name == 'logits_float32' and unet.output.dtype == 'float32'
    assert {layer.compute_dtype for layer in unet.get_layer('encoder').layers
            if not isinstance(layer, keras.layers.InputLayer)} == {encoder_dtype}
    assert unet.get_layer('skip_0').compute_dtype == 'bfloat16'
    float32 = model_lib.build_unet(encoder_weights=weights_file[0], train_encoder=train_encoder)
    assert float32.layers[-1].name == 'logits' and float32.get_layer('logits').compute_dtype == 'float32'


def test_batchnorm_momentum_reaches_every_batchnorm():
    unet = model_lib.build_unet(encoder_weights='none', batchnorm_momentum=0.9)
    momenta = {layer.momentum for layer in model_lib.all_layers(unet)
               if isinstance(layer, keras.layers.BatchNormalization)}
    assert momenta == {0.9}


def test_copy_weights_turns_a_bfloat16_model_into_a_float32_twin_with_the_same_predictions(weights_file):
    mixed = model_lib.build_unet(encoder_weights=weights_file[0], mixed_bfloat16=True)
    twin = model_lib.build_unet(encoder_weights='none')  # encoder trainable here, frozen there: order differs
    images = np.random.default_rng(0).random((2, classes.DEFAULT_IMAGE_SIZE, classes.DEFAULT_IMAGE_SIZE, 3), 'float32')
    model_lib.copy_weights(mixed, twin)
    for ours, theirs in zip(twin.weights, mixed.weights):
        assert ours.dtype == theirs.dtype == 'float32'
    assert twin.get_layer('upsample_0').layers[0].compute_dtype == 'float32'
    expected, got = mixed(images, training=False).numpy(), twin(images, training=False).numpy()
    assert np.mean(np.argmax(expected, -1) == np.argmax(got, -1)) > 0.95
    np.testing.assert_allclose(got, expected, atol=0.1 * np.abs(expected).max())


def test_copy_weights_names_the_layer_that_does_not_match():
    with pytest.raises(ValueError, match='upsample_0'):
        model_lib.copy_weights(model_lib.build_unet(encoder_weights='none'),
                               model_lib.build_unet(encoder_weights='none', decoder_filters=(256, 256, 128, 64)))


REWRITES = [layers.SubPixelConv2DTranspose, layers.GemmConv2DTranspose]


@pytest.mark.parametrize('rewrite', REWRITES)
@pytest.mark.parametrize('use_bias', [False, True])
def test_rewritten_layers_compute_the_transposed_convolution_and_its_gradients_exactly(rewrite, use_bias):
    rng = np.random.default_rng(0)
    inputs = tf.constant(rng.normal(size=(2, 7, 9, 5)), tf.float32)
    stock = keras.layers.Conv2DTranspose(6, 3, strides=2, padding='same', use_bias=use_bias)
    rewritten = rewrite(6, 3, strides=2, padding='same', use_bias=use_bias)
    stock.build(inputs.shape)
    rewritten.build(inputs.shape)
    weights = [rng.normal(size=w.shape).astype(np.float32) for w in stock.weights]
    stock.set_weights(weights)
    rewritten.set_weights(weights)
    upstream = tf.constant(rng.normal(size=(2, 14, 18, 6)), tf.float32)  # a loss that weighs every output
    results = []
    for layer in (stock, rewritten):
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            outputs = layer(inputs)
            loss = tf.reduce_sum(outputs * upstream)
        results.append([outputs] + tape.gradient(loss, [inputs] + layer.trainable_weights))
    assert results[1][0].shape == results[0][0].shape == (2, 14, 18, 6)
    np.testing.assert_allclose(results[1][0].numpy(), results[0][0].numpy(), atol=1e-5, rtol=1e-5)
    for expected, actual in zip(results[0][1:], results[1][1:]):
        # the sub-pixel layer's kernel gradient comes as IndexedSlices (its kernel goes through tf.gather)
        np.testing.assert_allclose(tf.convert_to_tensor(actual), tf.convert_to_tensor(expected), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize('use_bias', [False, True])
def test_split_skip_layer_computes_the_transposed_convolution_of_the_concatenation_and_its_gradients(use_bias):
    rng = np.random.default_rng(1)
    decoder = tf.constant(rng.normal(size=(2, 7, 9, 5)), tf.float32)
    skip = tf.constant(rng.normal(size=(2, 7, 9, 4)), tf.float32)
    stock = keras.layers.Conv2DTranspose(3, 3, strides=2, padding='same', use_bias=use_bias)
    split = layers.SplitSkipConv2DTranspose(3, 3, strides=2, padding='same', use_bias=use_bias)
    stock.build(tf.TensorShape([2, 7, 9, 9]))
    split.build([decoder.shape, skip.shape])
    assert [w.shape for w in split.weights] == [w.shape for w in stock.weights]
    weights = [rng.normal(size=w.shape).astype(np.float32) for w in stock.weights]
    stock.set_weights(weights)
    split.set_weights(weights)
    upstream = tf.constant(rng.normal(size=(2, 14, 18, 3)), tf.float32)
    results = []
    for layer, call in ((stock, lambda: stock(tf.concat([decoder, skip], -1))), (split, lambda: split([decoder, skip]))):
        with tf.GradientTape() as tape:
            tape.watch([decoder, skip])
            outputs = call()
            loss = tf.reduce_sum(outputs * upstream)
        results.append([outputs] + tape.gradient(loss, [decoder, skip] + layer.trainable_weights))
    assert results[1][0].shape == (2, 14, 18, 3)
    for expected, actual in zip(results[0], results[1]):
        np.testing.assert_allclose(actual.numpy(), expected.numpy(), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize('rewrite', REWRITES + [layers.SplitSkipConv2DTranspose])
def test_rewritten_layers_refuse_shapes_they_are_not_exact_for(rewrite):
    with pytest.raises(ValueError, match=f'{rewrite.__name__} is exact for kernel_size=3, strides=2'):
        rewrite(6, 4, strides=2, padding='same')


def test_gemm_upsampling_rewrites_the_decoders_4x4_and_8x8_blocks_only():
    unet = model_lib.build_unet(gemm_upsampling=True, mixed_bfloat16=True)
    rewritten = [layer.name for layer in model_lib.all_layers(unet) if isinstance(layer, layers.GemmConv2DTranspose)]
    assert len(rewritten) == 2
    assert [unet.get_layer(f'upsample_{i}').input_shape[1] for i in range(4)] == [4, 8, 16, 32]
    assert [isinstance(unet.get_layer(f'upsample_{i}').layers[0], layers.GemmConv2DTranspose)
            for i in range(4)] == [True, True, False, False]
    assert type(unet.get_layer('logits')) is keras.layers.Conv2DTranspose
    assert unet.get_layer('upsample_1').layers[0].compute_dtype == 'bfloat16'


def test_both_rewrites_at_once_are_refused():
    with pytest.raises(ValueError, match='subpixel or gemm, not both'):
        model_lib.build_unet(image_size=64, subpixel=True, gemm_upsampling=True)
    with pytest.raises(ValueError, match='subpixel or split_skip_logits, not both'):
        model_lib.build_unet(image_size=64, subpixel=True, split_skip_logits=True)


def test_split_skip_logits_takes_the_last_block_and_the_first_skip_apart():
    unet = model_lib.build_unet(image_size=64, split_skip_logits=True)
    logits = unet.get_layer('logits')
    assert isinstance(logits, layers.SplitSkipConv2DTranspose)
    assert [tuple(shape) for shape in logits.input_shape] == [(None, 32, 32, 64), (None, 32, 32, 96)]
    assert [layer.name for layer in unet.layers if isinstance(layer, keras.layers.Concatenate)] == [
        'skip_0', 'skip_1', 'skip_2'], 'no concatenation before the logits layer'


@pytest.mark.parametrize('rewrite, option', [(layers.SubPixelConv2DTranspose, 'subpixel'),
                                              (layers.GemmConv2DTranspose, 'gemm_upsampling'),
                                              (layers.SplitSkipConv2DTranspose, 'split_skip_logits')])
def test_weights_saved_with_stock_layers_load_into_a_rewritten_unet(rewrite, option, tmp_path):
    keras.utils.set_random_seed(1)
    stock = model_lib.build_unet(image_size=64, batchnorm_momentum=0.9)
    images = tf.random.uniform([2, 64, 64, 3], seed=3)
    stock(images, training=True)  # moves the BatchNorm statistics away from their initial values
    stock.save_weights(str(tmp_path / 'stock'))
    rewritten = model_lib.build_unet(image_size=64, **{option: True})
    rewritten.load_weights(str(tmp_path / 'stock')).assert_existing_objects_matched()
    assert rewritten.count_params() == stock.count_params()
    assert any(isinstance(layer, rewrite) for layer in model_lib.all_layers(rewritten))
    np.testing.assert_allclose(rewritten(images, training=False).numpy(), stock(images, training=False).numpy(),
                               atol=1e-4, rtol=1e-4)
