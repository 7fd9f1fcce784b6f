"""The Evaluator's TFMA metrics, built from the pipeline's own eval config, equal the Keras metrics training
reports, and hold a confusion matrix per slice, not the examples."""

import pickle

import numpy as np
import pytest
from tensorflow_model_analysis.metrics import metric_specs, metric_types

from modules import classes, metrics
from pipeline import config as config_lib, eval_config

NAMES = classes.OXFORD_IIIT_PET.names


def _computations(names=NAMES, weighted=False):
    config = eval_config.build_eval_config(config_lib.EvaluationConfig(), names)
    if weighted:  # as with a model spec's example_weight_key
        config.metrics_specs[0].example_weights.weighted = True
    computations = metric_specs.to_computations(config.metrics_specs, eval_config=config)
    combiners = [c for c in computations if isinstance(c, metric_types.MetricComputation)]
    derived = [c for c in computations if isinstance(c, metric_types.DerivedMetricComputation)]
    return combiners, derived


def _inputs(label, logits, weight):
    return metric_types.StandardMetricInputs(labels=label, predictions=logits, example_weights=np.array([weight]))


def _evaluate(examples, names=NAMES, weighted=False, shards=2):
    """Runs each combiner as Beam would (an accumulator per shard, merged), then the derived metrics."""
    combiners, derived = _computations(names, weighted)
    results = {}
    for computation in combiners:
        combiner = computation.combiner
        if hasattr(combiner, 'setup'):
            combiner.setup()
        accumulators = []
        for shard in range(shards):
            accumulator = combiner.create_accumulator()
            for example in examples[shard::shards]:
                accumulator = combiner.add_input(accumulator, example)
            accumulators.append(accumulator)
        results.update(combiner.extract_output(combiner.merge_accumulators(accumulators)))
    for computation in derived:
        results.update(computation.result(results))
    return {key.name: value for key, value in results.items() if not key.name.startswith('_')}


def _logits(class_ids, count):
    return np.eye(count, dtype=np.float32)[class_ids] * 5.0


@pytest.mark.parametrize('weighted', [False, True])
def test_the_evaluator_metrics_equal_the_keras_ones_with_ignored_pixels_and_example_weights(weighted):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, size=(5, 12, 12, 1))
    labels[0, :3] = classes.IGNORE_LABEL
    predicted = np.where(rng.random((5, 12, 12)) < 0.7, labels[..., 0] % 3, rng.integers(0, 3, size=(5, 12, 12)))
    weights = np.array([1.0, 0.0, 2.0, 1.0, 0.5])
    got = _evaluate([_inputs(labels[i], _logits(predicted[i], 3), weights[i]) for i in range(5)], weighted=weighted)
    expected = {}
    for metric in metrics.segmentation_metrics(NAMES):
        # Unweighted, TFMA gives every example the weight 1 whatever the weight feature says.
        metric.update_state(labels, _logits(predicted, 3), sample_weight=weights[:, None] if weighted else None)
        expected[metric.name] = float(metric.result())
    assert set(got) == set(expected) | {'example_count'}
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, abs=1e-9), name
    assert 0 < got['mean_iou'] < got['pixel_accuracy'] < 1


def test_a_dataset_of_its_own_classes_is_counted_with_them():
    names = ('sky', 'road', 'car', 'person')
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 4, size=(3, 8, 8))
    got = _evaluate([_inputs(labels[i], _logits(labels[i], 4), 1.0) for i in range(3)], names)
    assert got['pixel_accuracy'] == got['mean_iou'] == got['iou_person'] == 1.0
    with pytest.raises(ValueError, match='predictions have 3 classes'):
        _evaluate([_inputs(labels[0], _logits(labels[0] % 3, 3), 1.0)], names)


def test_a_slice_accumulator_stays_one_matrix_however_many_examples_it_counts():
    # TFMA's wrapper of a Keras metric keeps up to 1,000 examples per slice before calling it; this is why
    # the Evaluator's memory grew with the eval split.
    matrices = [c for c in _computations()[0] if c.keys[0].name.startswith('_segmentation_confusion_matrix')]
    assert len(matrices) == 2 + len(NAMES) and len(set(matrices)) == 1, 'TFMA runs one matrix for all the metrics'
    combiner = matrices[0].combiner
    rng = np.random.default_rng(2)
    accumulator = combiner.create_accumulator()
    sizes = []
    for count in range(1, 41):
        label = rng.integers(0, 3, size=(64, 64))
        accumulator = combiner.add_input(accumulator, _inputs(label, _logits(label, 3), 1.0))
        if count in (1, 40):
            sizes.append(len(pickle.dumps(accumulator)))
    assert sizes[0] == sizes[1] < 1000
    assert np.sum(accumulator) == 40 * 64 * 64
