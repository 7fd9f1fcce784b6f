"""modules/precision.py: the measured choice of training precision follows real step times."""

import pytest
import tf_keras as keras

from modules import precision


def _segmenter(layers: int) -> keras.Model:
    inputs = keras.Input([16, 16, 3])
    x = inputs
    for _ in range(layers):
        x = keras.layers.Conv2D(64, 3, padding='same', activation='relu')(x)
    model = keras.Model(inputs, keras.layers.Conv2D(3, 1)(x))
    model.compile('sgd', keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


@pytest.mark.parametrize('float32_s, bfloat16_s, chosen', [
    (1.00, 1.00, False),    # a tie keeps float32: bfloat16 costs precision
    (1.04, 1.00, False),    # 4% faster is within a 2-core machine's noise
    (1.05, 1.00, True),     # MIN_SPEEDUP exactly
    (1.50, 1.00, True),
    (1.00, 1.50, False),
])
def test_bfloat16_has_to_be_at_least_min_speedup_faster(float32_s, bfloat16_s, chosen):
    assert precision.worth_bfloat16(float32_s, bfloat16_s) is chosen


@pytest.mark.parametrize('slow_side', [False, True])
def test_the_precision_whose_steps_are_faster_is_chosen(slow_side):
    # Same precision on both sides; the side asked for by `slow_side` does 20 times the work, for real.
    def build(mixed):
        return _segmenter(20 if mixed == slow_side else 1)
    assert precision.faster_in_bfloat16(build, batch_size=4) is (not slow_side)
