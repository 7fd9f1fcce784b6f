"""build_unet: output shape, skips, frozen/trainable split, local weights, clear errors."""

import numpy as np
import pytest
import tf_keras as keras

from modules import keys, model as model_lib


@pytest.fixture(scope='module')
def random_unet():
    return model_lib.build_unet(encoder_weights='none')


def test_output_is_per_pixel_logits(random_unet):
    logits = random_unet(np.random.rand(2, keys.IMAGE_SIZE, keys.IMAGE_SIZE, 3).astype('float32'))
    assert logits.shape == (2, keys.IMAGE_SIZE, keys.IMAGE_SIZE, keys.NUM_CLASSES)


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
    logits = unet(np.zeros((1, keys.IMAGE_SIZE, keys.IMAGE_SIZE, 3), 'float32'))
    assert logits.dtype == 'float32'
    assert keras.mixed_precision.global_policy().name == 'float32'


def test_batchnorm_momentum_reaches_every_batchnorm():
    unet = model_lib.build_unet(encoder_weights='none', batchnorm_momentum=0.9)
    momenta = {layer.momentum for layer in model_lib._all_layers(unet)
               if isinstance(layer, keras.layers.BatchNormalization)}
    assert momenta == {0.9}


def test_copy_weights_turns_a_bfloat16_model_into_a_float32_twin_with_the_same_predictions(weights_file):
    mixed = model_lib.build_unet(encoder_weights=weights_file[0], mixed_bfloat16=True)
    twin = model_lib.build_unet(encoder_weights='none')  # encoder trainable here, frozen there: order differs
    images = np.random.default_rng(0).random((2, keys.IMAGE_SIZE, keys.IMAGE_SIZE, 3), 'float32')
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
