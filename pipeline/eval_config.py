"""TFMA configuration of the Evaluator: segmentation metrics, blessing thresholds, slices.

The candidate is scored on the raw eval split through its `serving_tf_example` signature; the
label is the mask as Transform produces it, obtained by running the model's `transform_features`
signature first. Blessing needs pixel accuracy and mean IoU above absolute bounds and, once a
blessed baseline exists, no more than `max_regression` below the baseline's.
"""

import json

import tensorflow_model_analysis as tfma

from modules import keys, signatures
from pipeline.config import EvaluationConfig

METRICS_MODULE = 'modules.metrics'
# Metric key -> (class in modules.metrics, EvaluationConfig field of its lower bound). The key is
# passed as the metric's name: TFMA would otherwise derive one from the class ('mean_io_u').
GATED_METRICS = {'pixel_accuracy': ('PixelAccuracy', 'min_pixel_accuracy'), 'mean_iou': ('MeanIoU', 'min_mean_iou')}


def _threshold(lower_bound: float, max_regression: float) -> tfma.MetricThreshold:
    return tfma.MetricThreshold(
        value_threshold=tfma.GenericValueThreshold(lower_bound={'value': lower_bound}),
        change_threshold=tfma.GenericChangeThreshold(direction=tfma.MetricDirection.HIGHER_IS_BETTER,
                                                     absolute={'value': -max_regression}))


def build_eval_config(evaluation: EvaluationConfig) -> tfma.EvalConfig:
    """Builds the EvalConfig.

    Args:
      evaluation: thresholds.

    Returns:
      EvalConfig with pixel accuracy and mean IoU (gated) and per-class IoU, on the overall slice.
    """
    metrics = [
        tfma.MetricConfig(class_name=class_name, module=METRICS_MODULE, config=json.dumps({'name': name}),
                          threshold=_threshold(getattr(evaluation, bound), evaluation.max_regression))
        for name, (class_name, bound) in GATED_METRICS.items()
    ]
    metrics += [
        tfma.MetricConfig(class_name='ClassIoU', module=METRICS_MODULE,
                          config=json.dumps({'target_class': class_id, 'name': f'iou_{name}'}))
        for class_id, name in enumerate(keys.CLASS_NAMES)
    ]
    return tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(
            signature_name=signatures.SERVING_TF_EXAMPLE,
            preprocessing_function_names=[signatures.TRANSFORM_FEATURES],
            label_key=keys.transformed_name(keys.MASK_KEY))],
        slicing_specs=[tfma.SlicingSpec()],
        metrics_specs=[tfma.MetricsSpec(metrics=metrics)],
    )
