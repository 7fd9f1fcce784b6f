"""Segmentation metrics: pixel accuracy and IoU as Keras metrics (training's), the same scores from a numpy
confusion matrix (which the Evaluator's TFMA metrics, `modules.tfma_metrics`, count), and the boundary IoU of
masks at an image's own size (`boundary_iou`).

The Keras metrics accumulate one confusion matrix and broadcast a per-example weight ([B, 1], as TFMA gives
it, which stock `MeanIoU` cannot take) over that example's pixels; per-pixel weights are used as they are.
Predictions may be logits or probabilities [B, H, W, C]; labels are class ids [B, H, W] or [B, H, W, 1]; a
label outside 0..C-1 (the ignored pixels, `classes.IGNORE_LABEL`) counts nowhere. The number of classes is
the dataset's, given to each metric. The matrix is a segment sum over `label * C + prediction`: with
`tf.math.confusion_matrix` the two training metrics cost a third of a bfloat16 training step (see
bench/README.md); `bincount` is as fast but XLA cannot compile it.
"""

from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf
from scipy import ndimage
import tf_keras as keras



class _ConfusionMatrixMetric(keras.metrics.Metric):
    """Accumulates a [num_classes, num_classes] confusion matrix (rows: truth, columns: prediction)."""

    def __init__(self, num_classes: int, name: Optional[str] = None, dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.num_classes = num_classes
        self.total_cm = self.add_weight('total_confusion_matrix', shape=(num_classes, num_classes),
                                        initializer='zeros', dtype=tf.float64)

    def update_state(self, y_true, y_pred, sample_weight=None):
        batch = tf.shape(y_pred)[0]
        labels = tf.reshape(tf.cast(y_true, tf.int64), [batch, -1])
        predictions = tf.reshape(tf.argmax(y_pred, axis=-1), [batch, -1])
        counted = (labels >= 0) & (labels < self.num_classes)
        weights = tf.cast(counted, tf.float64)
        labels = tf.where(counted, labels, 0)
        if sample_weight is not None:
            sample_weight = tf.cast(sample_weight, tf.float64)
            per_example = tf.equal(tf.size(sample_weight), tf.cast(batch, tf.int32))
            weights = tf.cond(
                per_example,
                lambda: tf.reshape(sample_weight, [batch, 1]) * weights,
                lambda: tf.reshape(sample_weight, [batch, -1]) * weights)
        cells = tf.reshape(labels * self.num_classes + predictions, [-1])
        counts = tf.math.unsorted_segment_sum(tf.reshape(weights, [-1]), cells, self.num_classes ** 2)
        return self.total_cm.assign_add(tf.reshape(counts, [self.num_classes, self.num_classes]))

    def reset_state(self):
        self.total_cm.assign(tf.zeros_like(self.total_cm))

    def get_config(self):
        return {**super().get_config(), 'num_classes': self.num_classes}

    def _class_iou(self) -> tf.Tensor:
        true_positives = tf.linalg.diag_part(self.total_cm)
        union = tf.reduce_sum(self.total_cm, 0) + tf.reduce_sum(self.total_cm, 1) - true_positives
        return true_positives, union


class PixelAccuracy(_ConfusionMatrixMetric):
    """Fraction of pixels whose predicted class is the true class."""

    def __init__(self, num_classes: int, name: str = 'pixel_accuracy', dtype=None):
        super().__init__(num_classes, name, dtype)

    def result(self):
        return tf.math.divide_no_nan(tf.linalg.trace(self.total_cm), tf.reduce_sum(self.total_cm))


class MeanIoU(_ConfusionMatrixMetric):
    """Intersection over union averaged over the classes that occur in truth or prediction."""

    def __init__(self, num_classes: int, name: str = 'mean_iou', dtype=None):
        super().__init__(num_classes, name, dtype)

    def result(self):
        true_positives, union = self._class_iou()
        present = tf.cast(union > 0, tf.float64)
        return tf.math.divide_no_nan(tf.reduce_sum(tf.math.divide_no_nan(true_positives, union)),
                                     tf.reduce_sum(present))


class ClassIoU(_ConfusionMatrixMetric):
    """Intersection over union of one class (0 when the class occurs nowhere).

    The class is `target_class`, not `class_id`: TFMA reads a `class_id` in a metric's config as
    a request to binarize predictions for that class, which would hide the other classes.
    """

    def __init__(self, target_class: int, num_classes: int, name: Optional[str] = None, dtype=None):
        super().__init__(num_classes, name or f'iou_{target_class}', dtype)
        self.target_class = target_class

    def result(self):
        true_positives, union = self._class_iou()
        return tf.math.divide_no_nan(true_positives[self.target_class], union[self.target_class])

    def get_config(self):
        return {**super().get_config(), 'target_class': self.target_class}


def class_iou_name(class_name: str) -> str:
    """The metric key of one class's IoU, e.g. `iou_pet`."""
    return f'iou_{class_name}'


def segmentation_metrics(class_names: Sequence[str]) -> List[keras.metrics.Metric]:
    """Pixel accuracy, mean IoU and the IoU of each class, named `iou_<class name>`."""
    count = len(class_names)
    return [PixelAccuracy(count), MeanIoU(count)] + [
        ClassIoU(class_id, count, class_iou_name(name)) for class_id, name in enumerate(class_names)]


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, num_classes: int,
                     weights: Optional[np.ndarray] = None) -> np.ndarray:
    """[K, K] pixel counts (rows: truth, columns: prediction) of two class-id arrays of the same size.

    Labels outside 0..K-1 (ignored pixels) count nowhere. `weights` is one weight for all the pixels (TFMA's
    per-example weight) or one per pixel.
    """
    labels, predicted = np.ravel(labels), np.ravel(predicted)
    if labels.size != predicted.size:
        raise ValueError(f'labels have {labels.size} pixels, predictions {predicted.size}')
    counted = (labels >= 0) & (labels < num_classes)
    cells = labels[counted].astype(np.int64) * num_classes + predicted[counted]
    per_pixel = weights is not None and np.size(weights) > 1
    counts = np.bincount(cells, weights=np.ravel(weights)[counted] if per_pixel else None,
                         minlength=num_classes ** 2).astype(np.float64)
    if weights is not None and not per_pixel:
        counts *= float(np.ravel(weights)[0])
    return counts.reshape(num_classes, num_classes)


def pixel_accuracy(matrix: np.ndarray) -> float:
    """Fraction of the counted pixels on the confusion matrix's diagonal (0 when none are counted)."""
    total = np.sum(matrix)
    return float(np.trace(matrix) / total) if total else 0.0


def class_iou(matrix: np.ndarray, class_id: int) -> float:
    """One class's intersection over union (0 when the class occurs nowhere)."""
    union = np.sum(matrix[class_id, :]) + np.sum(matrix[:, class_id]) - matrix[class_id, class_id]
    return float(matrix[class_id, class_id] / union) if union else 0.0


def mean_iou(matrix: np.ndarray) -> float:
    """IoU averaged over the classes that occur in truth or prediction (0 when none does)."""
    present = [c for c in range(len(matrix)) if np.sum(matrix[c, :]) + np.sum(matrix[:, c])]
    return float(np.mean([class_iou(matrix, c) for c in present])) if present else 0.0


def numpy_scores(labels: np.ndarray, predicted: np.ndarray, class_names: Sequence[str]) -> dict:
    """Reference scores from class-id arrays, for tests and the benchmark's plain scoring loop.

    Args:
      labels: true class ids, any shape; values outside 0..K-1 (ignored pixels) count nowhere.
      predicted: predicted class ids, same size.
      class_names: the K classes, in class-id order.

    Returns:
      {'pixel_accuracy', 'mean_iou', 'iou_<class>'...} as floats.
    """
    return matrix_scores(confusion_matrix(labels, predicted, len(class_names)), class_names)


def matrix_scores(matrix: np.ndarray, class_names: Sequence[str]) -> dict:
    """{'pixel_accuracy', 'iou_<class>'..., 'mean_iou'} of a [K, K] confusion matrix (`confusion_matrix`)."""
    scores = {'pixel_accuracy': pixel_accuracy(matrix)}
    scores.update({class_iou_name(name): class_iou(matrix, class_id) for class_id, name in enumerate(class_names)})
    scores['mean_iou'] = mean_iou(matrix)
    return scores


def boundary_band(mask: np.ndarray, width: int) -> np.ndarray:
    """The pixels of `mask` within `width` pixels of its contour (inside it): the mask less its erosion.

    Pixels at the image's edge do not count as contour (the erosion treats the outside as part of the mask), as
    in the boundary-IoU reference implementation, which pads with the mask's own values.
    """
    eroded = ndimage.binary_erosion(mask, structure=np.ones((3, 3), bool), iterations=width, border_value=1)
    return mask & ~eroded


def boundary_counts(labels: np.ndarray, predicted: np.ndarray, num_classes: int,
                    dilation_ratio: float = 0.02) -> Tuple[np.ndarray, np.ndarray]:
    """Per class, the intersection and union of the true and predicted boundary bands of one image's masks.

    Summed over images, they give the dataset's boundary IoU (as region IoU sums a confusion matrix).

    Args:
      labels: true class ids [H, W]; values outside 0..K-1 (ignored) count nowhere.
      predicted: predicted class ids [H, W].
      num_classes: K.
      dilation_ratio: the band's width as a fraction of the image diagonal (at least 1 pixel).

    Returns:
      (intersections [K], unions [K]) in pixels.
    """
    labels, predicted = np.asarray(labels), np.asarray(predicted)
    width = max(1, int(round(dilation_ratio * np.hypot(*labels.shape[:2]))))
    counted = (labels >= 0) & (labels < num_classes)
    intersections, unions = np.zeros(num_classes, np.int64), np.zeros(num_classes, np.int64)
    for class_id in range(num_classes):
        truth = boundary_band(labels == class_id, width) & counted
        guess = boundary_band(predicted == class_id, width) & counted
        intersections[class_id], unions[class_id] = np.sum(truth & guess), np.sum(truth | guess)
    return intersections, unions


def boundary_scores(intersections: np.ndarray, unions: np.ndarray, class_names: Sequence[str]) -> Dict[str, float]:
    """{'boundary_iou_<class>': ..., 'mean_boundary_iou': mean over the classes with a boundary} from counts."""
    scores, present = {}, []
    for class_id, name in enumerate(class_names):
        union = unions[class_id]
        scores[f'boundary_iou_{name}'] = float(intersections[class_id] / union) if union else 0.0
        if union:
            present.append(scores[f'boundary_iou_{name}'])
    scores['mean_boundary_iou'] = float(np.mean(present)) if present else 0.0
    return scores


def boundary_iou(labels: np.ndarray, predicted: np.ndarray, class_names: Sequence[str],
                 dilation_ratio: float = 0.02) -> Dict[str, float]:
    """Boundary IoU (Cheng et al., CVPR 2021) of each class and their mean, for one image's masks at its own size.

    Each class's true and predicted masks are cut down to the band within d pixels of their contours, d the
    `dilation_ratio` of the image's diagonal (at least 1 pixel); the score is the IoU of the two bands. Region IoU
    hides how well a border is drawn on large objects; this does not. Pixels labelled outside 0..K-1 (ignored)
    count nowhere.

    Args:
      labels: true class ids [H, W].
      predicted: predicted class ids [H, W].
      class_names: the K classes, in class-id order.
      dilation_ratio: the band's width as a fraction of the image diagonal.

    Returns:
      {'boundary_iou_<class>': ..., 'mean_boundary_iou': mean over the classes present in truth or prediction}.
    """
    return boundary_scores(*boundary_counts(labels, predicted, len(class_names), dilation_ratio), class_names)
