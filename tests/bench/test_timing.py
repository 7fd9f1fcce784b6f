"""bench/timing.py: training steps and epochs are timed in turn, each side on an iterator it keeps."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from bench import timing


def _numbered_batches():
    """Batch i holds the number i in every pixel, so the next batch an iterator gives says how many it gave."""
    return tf.data.Dataset.range(10 ** 6).map(
        lambda i: (tf.fill([2, 4, 4, 1], tf.cast(i, tf.float32)), tf.zeros([2, 4, 4, 1], tf.int32)))


def _tiny_model():
    inputs = keras.Input([4, 4, 1])
    model = keras.Model(inputs, keras.layers.Conv2D(3, 1)(inputs))
    model.compile('sgd', keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def test_interleaved_epochs_time_every_epoch_and_draw_only_the_batches_of_the_steps_taken():
    models = {'a': _tiny_model(), 'b': _tiny_model()}
    iterators = {name: iter(_numbered_batches()) for name in models}
    results = timing.interleaved_epochs(models, iterators, epochs=3, steps_per_epoch=4, batch_size=2)
    for name, result in results.items():
        assert len(result['epoch_s']) == 3 and min(result['epoch_s']) > 0
        assert result['images_per_s'] == pytest.approx(np.median([4 * 2 / s for s in result['epoch_s'][1:]]))
        # One first step, then 3 epochs of 4: `fit(iterator)` would have prefetched batches beyond these.
        assert next(iterators[name])[0].numpy().flat[0] == 1 + 3 * 4, name
        assert models[name].optimizer.iterations.numpy() == 1 + 3 * 4


def test_step_figures_and_their_ratios_to_a_reference_side():
    models = {'a': _tiny_model(), 'b': _tiny_model()}
    iterators = {name: iter(_numbered_batches()) for name in models}
    results, steppers = timing.interleaved_steps(models, iterators, steps=4, batch_size=2)
    timing.add_ratios(results, 'a')
    assert results['a']['vs_a_median'] == 1.0 and results['a']['vs_a_best_quartile'] == 1.0
    for name, result in results.items():
        assert len(result['step_s']) == 4
        assert result['images_per_s_median'] == pytest.approx(2 / np.median(result['step_s']))
        assert result['images_per_s_best_quartile'] >= result['images_per_s_median']
        assert result['vs_a_median'] == pytest.approx(result['images_per_s_median'] / results['a']['images_per_s_median'])
        assert steppers[name][1] is iterators[name], 'profiling goes on with the side\'s own iterator'


def test_the_tutorials_partial_batch_is_counted_as_the_images_it_holds():
    # 150 images in batches of 64: 64, 64, 22, then the next pass; `.repeat().batch()` has full batches only.
    assert timing.batch_sizes(150, 64, 7) == [64, 64, 22, 64, 64, 22, 64]
    assert timing.batch_sizes(150, 64, 4, partial_batches=False) == [64] * 4
    assert timing.batch_sizes(128, 64, 3) == [64] * 3
    assert timing.per_epoch(timing.batch_sizes(150, 64, 6), 2) == [128, 86, 86]


def test_an_epoch_is_credited_the_images_its_batches_held():
    models = {'a': _tiny_model(), 'b': _tiny_model()}
    iterators = {name: iter(_numbered_batches()) for name in models}
    results = timing.interleaved_epochs(models, iterators, epochs=2, steps_per_epoch=4, batch_size=2,
                                        images={'b': [5, 7]})
    assert results['a']['epoch_images'] == [8, 8] and results['b']['epoch_images'] == [5, 7]
    assert results['b']['images_per_s'] == pytest.approx(7 / results['b']['epoch_s'][1])
