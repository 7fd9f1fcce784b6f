"""bench/upsample_rewrites.py: both rewrites compute what Conv2DTranspose computes, and the timing table is written."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from bench import upsample_rewrites


@pytest.mark.parametrize('height, width', [(5, 6), (4, 4)])
def test_both_rewrites_equal_the_keras_layer(height, width):
    keras.utils.set_random_seed(0)
    layer = keras.layers.Conv2DTranspose(4, 3, strides=2, padding='same', use_bias=False)
    decoder, skip = tf.random.normal([2, height, width, 3]), tf.random.normal([2, height, width, 5])
    expected = layer(tf.concat([decoder, skip], -1)).numpy()
    np.testing.assert_allclose(upsample_rewrites.stock(tf.concat([decoder, skip], -1), layer.kernel), expected, atol=1e-5)
    np.testing.assert_allclose(upsample_rewrites.gemm(tf.concat([decoder, skip], -1), layer.kernel), expected, atol=1e-5)
    np.testing.assert_allclose(upsample_rewrites.split_skip(decoder, skip, layer.kernel), expected, atol=1e-5)


def test_the_decoders_shapes_are_the_unets():
    shapes = upsample_rewrites.decoder_shapes()
    assert [(s['size'], s['decoder_channels'], s['skip_channels'], s['filters']) for s in shapes] == [
        (4, 320, 0, 512), (8, 512, 576, 256), (16, 256, 192, 128), (32, 128, 144, 64), (64, 64, 96, 3)]


def test_every_layer_is_timed_in_every_form(tmp_path):
    results = upsample_rewrites.main(['--batch_size', '2', '--repeats', '1', '--results_dir', str(tmp_path)])
    assert len(results['layers']) == 5 and 'split_skip_s' not in results['layers'][0]
    assert all(r['stock_s'] > 0 and r['gemm_speedup'] > 0 for r in results['layers'])
    assert '| logits |' in open(next(tmp_path.glob('upsample-rewrites-*.md'))).read()
