"""TFMA configuration of the Evaluator: segmentation metrics, blessing thresholds, slices.

Every metric is computed on the overall slice and on one slice per value of each slice feature (Oxford:
`species` and the breed `label`); with `max_slice_regression` a slice may not fall further than that below
the baseline's same slice.

The candidate is scored on the raw eval split through its `serving_tf_example` signature; the
label is the mask as Transform produces it, obtained by running the model's `transform_features`
signature first. Blessing needs pixel accuracy and mean IoU above absolute bounds and, once a
blessed baseline exists, no more than `max_regression` below the baseline's.
"""

import json
from typing import List, Sequence

import tensorflow_model_analysis as tfma

from modules import keys, metrics, signatures
from pipeline.config import EvaluationConfig

# TFMA metrics that count a confusion matrix per slice (TFMA's wrapper of the Keras ones holds the predictions).
METRICS_MODULE = 'modules.tfma_metrics'
# Metric key -> (class in METRICS_MODULE, EvaluationConfig field of its lower bound); the key is the metric's name.
GATED_METRICS = {'pixel_accuracy': ('PixelAccuracy', 'min_pixel_accuracy'), 'mean_iou': ('MeanIoU', 'min_mean_iou')}


def _threshold(lower_bound: float, max_regression: float) -> tfma.MetricThreshold:
    return tfma.MetricThreshold(
        value_threshold=tfma.GenericValueThreshold(lower_bound={'value': lower_bound}),
        change_threshold=tfma.GenericChangeThreshold(direction=tfma.MetricDirection.HIGHER_IS_BETTER,
                                                     absolute={'value': -max_regression}))


def _gates(evaluation: EvaluationConfig, bound: str, slicing_specs: Sequence[tfma.SlicingSpec]) -> List:
    """The bound and the tolerance against the baseline on the overall slice only (a `MetricConfig.threshold`
    would hold every slice, a breed of ten images included, to the overall bound), then the per-slice change
    thresholds of `--max_slice_regression` (none when it is off)."""
    overall = tfma.PerSliceMetricThreshold(slicing_specs=[tfma.SlicingSpec()],
                                           threshold=_threshold(getattr(evaluation, bound), evaluation.max_regression))
    if evaluation.max_slice_regression is None or not slicing_specs:
        return [overall]
    return [overall, tfma.PerSliceMetricThreshold(
        slicing_specs=slicing_specs,
        threshold=tfma.MetricThreshold(change_threshold=tfma.GenericChangeThreshold(
            direction=tfma.MetricDirection.HIGHER_IS_BETTER, absolute={'value': -evaluation.max_slice_regression})))]


def overall_threshold(metric: tfma.MetricConfig):
    """The threshold a metric config sets on the overall slice, or None."""
    for gate in metric.per_slice_thresholds:
        if any(not spec.feature_keys and not spec.feature_values for spec in gate.slicing_specs):
            return gate.threshold
    return metric.threshold if metric.HasField('threshold') else None


def build_eval_config(evaluation: EvaluationConfig, class_names: Sequence[str],
                      slice_features: Sequence[str] = ()) -> tfma.EvalConfig:
    """Builds the EvalConfig.

    Args:
      evaluation: thresholds.
      class_names: the dataset's classes, in class-id order (`iou_<name>` per class).
      slice_features: raw example features to slice by, each on its own, beside the overall slice.

    Returns:
      EvalConfig with the example count, pixel accuracy and mean IoU (gated) and per-class IoU, on every slice.
    """
    count = len(class_names)
    slices = [tfma.SlicingSpec(feature_keys=[feature]) for feature in slice_features]
    configs = [
        tfma.MetricConfig(class_name=class_name, module=METRICS_MODULE,
                          config=json.dumps({'name': name, 'num_classes': count}),
                          per_slice_thresholds=_gates(evaluation, bound, slices))
        for name, (class_name, bound) in GATED_METRICS.items()
    ]
    configs += [
        tfma.MetricConfig(class_name='ClassIoU', module=METRICS_MODULE, config=json.dumps(
            {'target_class': class_id, 'num_classes': count, 'name': metrics.class_iou_name(name)}))
        for class_id, name in enumerate(class_names)
    ]
    configs.append(tfma.MetricConfig(class_name='ExampleCount'))
    options = tfma.Options()
    if evaluation.max_slice_regression is not None:
        # TFMA cannot gate only the large slices; it can leave the small ones out (of the output and the gate).
        options.min_slice_size.value = evaluation.min_slice_examples
    return tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(
            signature_name=signatures.SERVING_TF_EXAMPLE,
            preprocessing_function_names=[signatures.TRANSFORM_FEATURES],
            label_key=keys.transformed_name(keys.MASK_KEY))],
        slicing_specs=[tfma.SlicingSpec(), *slices],
        metrics_specs=[tfma.MetricsSpec(metrics=configs)],
        options=options,
    )
