"""The Evaluator's segmentation metrics as TFMA metrics that count each example into one confusion matrix.

TFMA runs a Keras metric by keeping each slice's labels and predictions until 1,000 examples (or an estimated
16 MiB, which it divides by the arrays' reference counts, so slicing hides them) are batched; with a slice per
breed the Evaluator held most of the eval split's predictions (2.9 GB more for 3,675 eval images, growing with
the split). These metrics add each example's pixels to a [K, K] matrix as it arrives, so the Evaluator's memory
does not depend on how many images it scores. They give the keys and values of `modules.metrics`' Keras
metrics (training's): ignored labels count nowhere, a per-example weight weighs each of its pixels.
"""

from typing import Callable, Dict, Iterable, Optional

import apache_beam as beam
import numpy as np
from tensorflow_model_analysis.metrics import metric_types, metric_util
from tensorflow_model_analysis.proto import config_pb2

from modules import metrics

_MATRIX_NAME = '_segmentation_confusion_matrix'


class _ConfusionMatrixCombiner(beam.CombineFn):
    """Sums the [K, K] confusion matrices of a slice's examples."""

    def __init__(self, key: metric_types.MetricKey, eval_config: Optional[config_pb2.EvalConfig], num_classes: int,
                 example_weighted: bool):
        self._key = key
        self._eval_config = eval_config
        self._num_classes = num_classes
        self._example_weighted = example_weighted

    def create_accumulator(self) -> np.ndarray:
        return np.zeros((self._num_classes, self._num_classes))

    def add_input(self, matrix: np.ndarray, element: metric_types.StandardMetricInputs) -> np.ndarray:
        for label, prediction, weight in metric_util.to_label_prediction_example_weight(
                element, eval_config=self._eval_config, model_name=self._key.model_name,
                output_name=self._key.output_name, example_weighted=self._example_weighted, flatten=False):
            if prediction.shape[-1] != self._num_classes:
                raise ValueError(f'predictions have {prediction.shape[-1]} classes (shape {prediction.shape}), '
                                 f'the metric {self._num_classes}')
            matrix += metrics.confusion_matrix(label, np.argmax(prediction, axis=-1), self._num_classes, weight)
        return matrix

    def merge_accumulators(self, matrices: Iterable[np.ndarray]) -> np.ndarray:
        matrices = iter(matrices)
        total = next(matrices)
        for matrix in matrices:
            total += matrix
        return total

    def extract_output(self, matrix: np.ndarray) -> Dict[metric_types.MetricKey, np.ndarray]:
        return {self._key: matrix}


class _Score:
    """One metric's value from the slice's confusion matrix (a class, so that Beam pickles it by reference)."""

    def __init__(self, key: metric_types.MetricKey, matrix_key: metric_types.MetricKey,
                 score: Callable[..., float], *args):
        self._key, self._matrix_key, self._score, self._args = key, matrix_key, score, args

    def __call__(self, computed: Dict[metric_types.MetricKey, np.ndarray]) -> Dict[metric_types.MetricKey, float]:
        return {self._key: self._score(computed[self._matrix_key], *self._args)}


def _computations(score: Callable[..., float], name: str, num_classes: int,
                  eval_config: Optional[config_pb2.EvalConfig], model_name: str, output_name: str,
                  example_weighted: bool, *args) -> metric_types.MetricComputations:
    # Every metric names the same matrix computation; TFMA runs one per model and output.
    matrix_key = metric_types.MetricKey(name=f'{_MATRIX_NAME}_{num_classes}', model_name=model_name,
                                        output_name=output_name, example_weighted=example_weighted)
    key = metric_types.MetricKey(name=name, model_name=model_name, output_name=output_name,
                                 example_weighted=example_weighted)
    matrix = metric_types.MetricComputation(
        keys=[matrix_key], preprocessors=None,
        combiner=_ConfusionMatrixCombiner(matrix_key, eval_config, num_classes, example_weighted))
    return [matrix, metric_types.DerivedMetricComputation(keys=[key], result=_Score(key, matrix_key, score, *args))]


# TFMA passes these arguments by name (it reads each function's argument list), hence one function per metric.
def _pixel_accuracy(name: str, num_classes: int, eval_config: Optional[config_pb2.EvalConfig] = None,
                    model_name: str = '', output_name: str = '',
                    example_weighted: bool = False) -> metric_types.MetricComputations:
    return _computations(metrics.pixel_accuracy, name, num_classes, eval_config, model_name, output_name,
                         example_weighted)


def _mean_iou(name: str, num_classes: int, eval_config: Optional[config_pb2.EvalConfig] = None,
              model_name: str = '', output_name: str = '',
              example_weighted: bool = False) -> metric_types.MetricComputations:
    return _computations(metrics.mean_iou, name, num_classes, eval_config, model_name, output_name, example_weighted)


def _class_iou(name: str, num_classes: int, target_class: int, eval_config: Optional[config_pb2.EvalConfig] = None,
               model_name: str = '', output_name: str = '',
               example_weighted: bool = False) -> metric_types.MetricComputations:
    return _computations(metrics.class_iou, name, num_classes, eval_config, model_name, output_name,
                         example_weighted, target_class)


class PixelAccuracy(metric_types.Metric):
    """Fraction of pixels whose predicted class is the true class."""

    def __init__(self, num_classes: int, name: str = 'pixel_accuracy'):
        super().__init__(metric_util.merge_per_key_computations(_pixel_accuracy), num_classes=num_classes, name=name)


class MeanIoU(metric_types.Metric):
    """Intersection over union averaged over the classes that occur in truth or prediction."""

    def __init__(self, num_classes: int, name: str = 'mean_iou'):
        super().__init__(metric_util.merge_per_key_computations(_mean_iou), num_classes=num_classes, name=name)


class ClassIoU(metric_types.Metric):
    """Intersection over union of one class (`target_class`; 0 when the class occurs nowhere)."""

    def __init__(self, target_class: int, num_classes: int, name: Optional[str] = None):
        super().__init__(metric_util.merge_per_key_computations(_class_iou), num_classes=num_classes,
                         target_class=target_class, name=name or f'iou_{target_class}')
