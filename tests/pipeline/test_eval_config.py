"""The Evaluator's TFMA config: slices, the per-slice gate, and a slice that fails it named by the run summary."""

import os

import pytest
import tensorflow_model_analysis as tfma
from google.protobuf import json_format

from components import tfma_results
from modules import classes, keys, paths
from pipeline import config as config_lib, eval_config
from pipeline.local import run_summary

NAMES = classes.OXFORD_IIIT_PET.names


def test_every_slice_feature_is_its_own_slice_beside_the_overall_one_and_counted():
    config = eval_config.build_eval_config(config_lib.EvaluationConfig(), NAMES, (keys.SPECIES_KEY, keys.LABEL_KEY))
    assert [list(spec.feature_keys) for spec in config.slicing_specs] == [[], ['species'], ['label']]
    metrics = {m.class_name: m for m in config.metrics_specs[0].metrics}
    # The bound and the tolerance hold the overall slice only: a breed of ten images is not held to them.
    [overall] = metrics['MeanIoU'].per_slice_thresholds
    assert [list(s.feature_keys) for s in overall.slicing_specs] == [[]] and not metrics['MeanIoU'].HasField('threshold')
    assert eval_config.overall_threshold(metrics['MeanIoU']).value_threshold.lower_bound.value == 0.3
    assert 'ExampleCount' in metrics
    assert not config.options.HasField('min_slice_size'), 'without the slice gate every slice is reported'


def test_the_slice_gate_holds_every_slice_of_enough_examples_to_the_baseline():
    evaluation = config_lib.EvaluationConfig(max_slice_regression=0.02, min_slice_examples=5)
    config = eval_config.build_eval_config(evaluation, NAMES, (keys.SPECIES_KEY,))
    for metric in config.metrics_specs[0].metrics:
        if metric.class_name in ('PixelAccuracy', 'MeanIoU'):
            [_, gate] = metric.per_slice_thresholds
            assert [list(s.feature_keys) for s in gate.slicing_specs] == [['species']]
            assert gate.threshold.change_threshold.absolute.value == -0.02
    assert config.options.min_slice_size.value == 5
    with pytest.raises(ValueError, match='evaluation.max_slice_regression must be None or >= 0'):
        config_lib.preset('default').with_overrides({'evaluation.max_slice_regression': -0.1})


def test_a_slice_that_fails_its_gate_is_named_in_the_not_blessed_reason(scenario, tmp_path):
    # Real TFMA on the scenario's eval split: the model against itself, every slice asked to be 0.01 better
    # than the baseline, so each slice fails its gate; the bounds (unreachable here) hold the overall slice only.
    evaluation = config_lib.EvaluationConfig(min_pixel_accuracy=0.0, min_mean_iou=0.999, max_regression=0.5,
                                             max_slice_regression=0.0, min_slice_examples=1)
    config = eval_config.build_eval_config(evaluation, NAMES, (keys.SPECIES_KEY,))
    for metric in config.metrics_specs[0].metrics:
        for gate in metric.per_slice_thresholds[1:]:
            gate.threshold.change_threshold.absolute.value = 0.01
    spec = config.model_specs[0]
    candidate, baseline = tfma.ModelSpec(), tfma.ModelSpec()
    candidate.CopyFrom(spec)
    baseline.CopyFrom(spec)
    candidate.name, baseline.name, baseline.is_baseline = 'candidate', 'baseline', True
    del config.model_specs[:]
    config.model_specs.extend([candidate, baseline])
    first = scenario.summaries[0]
    model_dir = paths.serving_model_dir(first.model_uri)
    shared = [tfma.default_eval_shared_model(model_dir, eval_config=config, model_name=name) for name in
              ('candidate', 'baseline')]
    output = str(tmp_path / 'evaluation')
    tfma.run_model_analysis(eval_shared_model=shared, eval_config=config, output_path=output, file_format='tfrecords',
                            data_location=os.path.join(paths.split_dir(first.examples_uri, 'eval'), '*'))
    slices = tfma_results.metrics_by_slice(output)
    assert slices and set(slices) <= {'species=0', 'species=1'}
    overall = tfma_results.metrics_by_model(output)
    reasons = run_summary._blessing_reasons(output, run_summary._gates(json_format.MessageToJson(config)),
                                            overall['candidate'], overall['baseline'], True, slices)
    assert any(r.startswith('mean_iou') and r.endswith('< bound 0.9990 (FAILED)') for r in reasons), reasons
    assert any(r.startswith('mean_iou') and 'baseline' in r and r.endswith('(ok)') for r in reasons)
    validation = tfma.load_validation_result(output)
    by_slice = {tfma_results.slice_name(s.slice_key): {(f.metric_key.name, f.metric_key.is_diff) for f in s.failures}
                for s in validation.metric_validations_per_slice}
    assert ('mean_iou', False) in by_slice[''], 'the overall slice fails its bound'
    assert all(not any(not is_diff for _, is_diff in failures) for name, failures in by_slice.items() if name), \
        'no slice is held to the overall bound'
    named = [r for r in reasons if r.startswith('slice species=')]
    assert named and all('(FAILED)' in r and 'vs baseline' in r for r in named), reasons
    assert {r.split(':')[0] for r in named} == {f'slice {name}' for name in slices}
