"""Segmentation metrics equal a direct numpy computation, including TFMA's [B, 1] example weights."""

import numpy as np
import pytest
import tf_keras as keras

from modules import classes, metrics

NAMES = classes.OXFORD_IIIT_PET.names


def _logits(class_ids, num_classes=len(NAMES)):
    return np.eye(num_classes, dtype=np.float32)[class_ids] * 5.0


def _keras_scores(labels, predicted, sample_weight=None, names=NAMES):
    scores = {}
    for metric in metrics.segmentation_metrics(names):
        metric.update_state(labels, _logits(predicted, len(names)), sample_weight=sample_weight)
        scores[metric.name] = float(metric.result())
    return scores


@pytest.mark.parametrize('case', ['perfect', 'all_wrong', 'class_missing', 'random'])
def test_matches_numpy(case):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, size=(4, 16, 16, 1))
    predicted = {
        'perfect': labels[..., 0],
        'all_wrong': (labels[..., 0] + 1) % 3,
        'class_missing': np.where(labels[..., 0] == 2, 1, labels[..., 0]),
        'random': rng.integers(0, 3, size=(4, 16, 16)),
    }[case]
    if case == 'class_missing':
        labels = np.where(labels == 2, 1, labels)  # border occurs in neither truth nor prediction
    expected = metrics.numpy_scores(labels[..., 0], predicted, NAMES)
    got = _keras_scores(labels, predicted)
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, abs=1e-6), name
    if case == 'perfect':
        assert got['pixel_accuracy'] == got['mean_iou'] == 1.0
    if case == 'all_wrong':
        assert got['pixel_accuracy'] == got['mean_iou'] == 0.0
    if case == 'class_missing':
        assert got['iou_border'] == 0.0 and got['mean_iou'] == pytest.approx(1.0), 'absent class is not averaged'


def test_per_example_weights_of_shape_b_by_1():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, size=(3, 8, 8, 1))
    predicted = rng.integers(0, 3, size=(3, 8, 8))
    weights = np.array([[1.0], [0.0], [2.0]])
    got = _keras_scores(labels, predicted, sample_weight=weights)
    repeated_labels = np.concatenate([labels[0], labels[2], labels[2]])
    repeated_predicted = np.concatenate([predicted[0], predicted[2], predicted[2]])
    expected = metrics.numpy_scores(repeated_labels[..., 0], repeated_predicted, NAMES)
    assert got['pixel_accuracy'] == pytest.approx(expected['pixel_accuracy'])
    assert got['mean_iou'] == pytest.approx(expected['mean_iou'])


def test_training_metrics_compile_with_xla():
    # jit_compile=True is a TrainingConfig option: the metrics must compile inside an XLA train step.
    rng = np.random.default_rng(2)
    images = rng.random((4, 8, 8, 3), dtype=np.float32)
    labels = rng.integers(0, 3, size=(4, 8, 8, 1))
    model = keras.Sequential([keras.Input([8, 8, 3]), keras.layers.Conv2D(classes.OXFORD_IIIT_PET.num_classes, 1)])
    model.compile(optimizer='adam', loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=metrics.segmentation_metrics(NAMES)[:2], jit_compile=True)
    history = model.fit(images, labels, batch_size=2, epochs=1, verbose=0).history
    predicted = np.argmax(model.predict(images, verbose=0), -1)
    assert 0.0 <= history['pixel_accuracy'][0] <= 1.0 and 0.0 <= history['mean_iou'][0] <= 1.0
    assert model.evaluate(images, labels, verbose=0, return_dict=True)['pixel_accuracy'] == pytest.approx(
        metrics.numpy_scores(labels[..., 0], predicted, NAMES)['pixel_accuracy'], abs=1e-6)


def test_five_named_classes_and_ignored_pixels_count_nowhere():
    names = ('background', 'disc', 'box', 'triangle', 'cross')
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 5, size=(2, 12, 12, 1))
    predicted = rng.integers(0, 5, size=(2, 12, 12))
    # A band of ignored pixels, all predicted wrong as the background: counted, they would lower every score.
    labels[:, :4] = classes.IGNORE_LABEL
    predicted[:, :4] = 0
    got = _keras_scores(labels, predicted, names=names)
    kept = labels[:, 4:, :, 0], predicted[:, 4:]
    expected = metrics.numpy_scores(*kept, names)
    assert set(got) == {'pixel_accuracy', 'mean_iou', *(f'iou_{name}' for name in names)}
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, abs=1e-6), name
    assert got['pixel_accuracy'] == pytest.approx(np.mean(kept[0] == kept[1]))
    assert metrics.numpy_scores(labels[..., 0], predicted, names) == pytest.approx(expected)


def _square_and_predictions():
    truth = np.zeros((10, 10), np.int64)
    truth[2:8, 2:8] = 1                       # a 6x6 object
    column = truth.copy()
    column[2:8, 2] = 0                        # loses its left column: 6 pixels off its contour
    hole = truth.copy()
    hole[4:6, 3:6] = 0                        # loses 6 pixels inside it
    return truth, column, hole


def test_boundary_iou_by_hand():
    truth, column, _ = _square_and_predictions()
    # 10x10 image: 0.02 of the diagonal rounds to a 1-pixel band. Truth's band is its 20-pixel ring, the
    # prediction's the 18-pixel ring of a 6x5 rectangle; they share the top and bottom rows less one pixel each
    # (10) and the right column between them (4): 14 / (20 + 18 - 14).
    scores = metrics.boundary_iou(truth, column, ['background', 'object'])
    assert scores['boundary_iou_object'] == pytest.approx(14 / 24)


def test_equal_region_iou_can_hide_a_worse_border():
    truth, column, hole = _square_and_predictions()
    names = ['background', 'object']
    region = [metrics.numpy_scores(truth, p, names)['iou_object'] for p in (column, hole)]
    assert region[0] == region[1] == pytest.approx(30 / 36)
    boundary = [metrics.boundary_iou(truth, p, names)['boundary_iou_object'] for p in (column, hole)]
    # The hole keeps the whole contour (20 of its 30 band pixels are truth's ring); the lost column moves it.
    assert boundary[1] == pytest.approx(20 / 30) and boundary[0] < boundary[1]


def test_boundary_iou_ignores_ignored_pixels_and_scales_its_band_with_the_image():
    truth, column, _ = _square_and_predictions()
    perfect = metrics.boundary_iou(truth, truth, ['background', 'object'])
    assert perfect == {'boundary_iou_background': 1.0, 'boundary_iou_object': 1.0, 'mean_boundary_iou': 1.0}
    ignored = truth.copy()
    ignored[2:8, 2] = classes.IGNORE_LABEL  # the disputed column labelled 'ignore' counts nowhere
    assert metrics.boundary_iou(ignored, column, ['background', 'object'])['boundary_iou_object'] > 14 / 24
    big = np.zeros((500, 500), np.int64)
    big[100:400, 100:400] = 1
    band = metrics.boundary_band(big == 1, 14)  # 0.02 x 707 px diagonal
    assert band.sum() == 300 * 300 - 272 * 272
