"""bench/step_profile.py on a one-convolution model: the trace's op times meet tfprof's FLOP counts by op name."""

import pytest
import tensorflow as tf
import tf_keras as keras

from bench import step_profile
from modules import layers, train


def test_a_training_steps_convolutions_are_timed_and_counted(tmp_path):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.layers.Conv2D(4, 3, padding='same', use_bias=False, input_shape=(8, 8, 3)),
                              keras.layers.Flatten(), keras.layers.Dense(1)])
    model.compile(optimizer='sgd', loss='mse')
    train.without_autograph(model)  # as the Trainer does: the first step traces in ~1 s instead of ~20 s
    dataset = tf.data.Dataset.from_tensors((tf.random.uniform((2, 8, 8, 3)), tf.zeros((2, 1)))).repeat()
    iterator, function = iter(dataset), model.make_train_function()
    function(iterator)
    profiled = step_profile.profile_train_function(function, iterator, steps=2, log_dir=str(tmp_path / 'log'))
    # Where TensorFlow turns oneDNN on (x86 CPUs with AVX-512 VNNI or AMX), the ops run as _MklNative<type>.
    rows = {row['op_type'].replace('_MklNative', ''): row for row in profiled['top_op_types']}
    # 2 images x 8 x 8 positions x 4 filters x 27 multiply-adds, 2 FLOPs each: the forward convolution...
    assert rows['Conv2D']['gflop_per_step'] * 1e9 == pytest.approx(2 * 8 * 8 * 4 * 27 * 2)
    # ...and its weight gradient the same again; both were timed.
    assert rows['Conv2DBackpropFilter']['gflop_per_step'] == rows['Conv2D']['gflop_per_step']
    assert rows['Conv2D']['seconds_per_step'] > 0 and rows['Conv2DBackpropFilter']['seconds_per_step'] > 0
    assert profiled['wall_s_per_step'] > 0 and profiled['achieved_gflops'] > 0
    assert profiled['gflop_per_step'] <= profiled['graph_gflop_per_step']


@pytest.mark.parametrize('dtype', [tf.float32, tf.bfloat16])
def test_the_matmul_rate_is_measured_on_the_real_product(dtype):
    # 2 x 256^3 FLOPs: on any CPU this takes between ~1 us (a petaflop machine) and ~3 s (0.01 GFLOP/s), and the
    # figure is 2 n^3 over the best time; a rate outside that range means the wrong thing was timed or counted.
    rate = step_profile.matmul_gflops(dtype, size=256, repeats=3)
    assert 0.01 < rate < 1e6, rate
    # Eight times the work at size 512 takes longer: the timing sees the product, not a cached result.
    small, large = (_best_seconds(size) for size in (128, 512))
    assert large > small


def _best_seconds(size: int) -> float:
    """Seconds of the best multiply at `size`, recovered from the rate."""
    return 2.0 * size ** 3 / step_profile.matmul_gflops(tf.float32, size=size, repeats=3) / 1e9


def test_transposed_convolutions_are_timed_alone_with_their_flops():
    inputs = keras.Input((4, 4, 6))
    model = keras.Model(inputs, keras.layers.Conv2DTranspose(5, 3, strides=2, padding='same', name='up')(
        keras.layers.Conv2D(6, 1)(inputs)))
    [row] = step_profile.transposed_convolution_rates(model, batch_size=2, repeats=1)
    assert row['layer'] == 'up' and row['input_shape'] == [4, 4, 6] and row['filters'] == 5
    assert row['gflop'] * 1e9 == pytest.approx(3 * 2 * 2 * 4 * 4 * 6 * 5 * 9)
    assert row['seconds'] > 0 and row['gflops'] > 0


def test_a_split_skip_layer_is_timed_with_the_input_gradient_of_its_decoder_part_only():
    decoder, skip = keras.Input((4, 4, 6)), keras.Input((4, 4, 2))
    model = keras.Model([decoder, skip], layers.SplitSkipConv2DTranspose(5, 3, strides=2, padding='same',
                                                                           name='logits')([decoder, skip]))
    [row] = step_profile.transposed_convolution_rates(model, batch_size=2, repeats=1)
    assert row['layer'] == 'logits' and row['input_shape'] == [4, 4, 8] and row['filters'] == 5
    assert row['gflop'] * 1e9 == pytest.approx(2 * 2 * 4 * 4 * 5 * 9 * (2 * 8 + 6))
    assert row['seconds'] > 0
