"""Scores a SavedModel on raw eval examples at each image's own size: region, boundary and per-image IoU.

TF Model Garden reports segmentation IoU at the original image size (`rescale_predictions`); the Evaluator
scores at the model's input size against the resized mask. Here every image goes through the model's
`serving_full_size` signature (prediction resized to the image, as a served client gets it) and is compared
with its original, unresized mask. Sums over images give the dataset's figures: one confusion matrix for
pixel accuracy and region IoU, per-class boundary-band intersections and unions for boundary IoU (Cheng et
al., CVPR 2021). Per image: pixel accuracy, mean IoU and mean boundary IoU, and the `worst` images are kept
(only those, so memory does not grow with the split).
"""

import dataclasses
import heapq
import io
import os
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf
from PIL import Image

from modules import classes, keys, metrics, request_log, signatures


@dataclasses.dataclass
class ImageScore:
    """One eval image's figures at its own size."""

    file_name: str
    slices: Dict[str, str]
    height: int
    width: int
    pixel_accuracy: float
    mean_iou: float
    mean_boundary_iou: float
    # The predicted mask's share of each class (`<class>_fraction`): what the monitor compares served
    # predictions with (`modules.request_log`).
    predicted_fractions: Dict[str, float] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class WorstImage:
    """An image kept for the worst-images figure."""

    score: ImageScore
    image: np.ndarray
    truth: np.ndarray
    predicted: np.ndarray


@dataclasses.dataclass
class FullSizeResult:
    """The dataset's figures, every image's scores, and the worst images, lowest mean IoU first."""

    metrics: Dict[str, float]
    images: List[ImageScore]
    worst: List[WorstImage]


def _feature_value(example: tf.train.Example, key: str) -> Optional[str]:
    feature = example.features.feature.get(key)
    if feature is None:
        return None
    kind = feature.WhichOneof('kind')
    values = getattr(feature, kind).value if kind else []
    if not values:
        return None
    value = values[0]
    return value.decode() if isinstance(value, bytes) else str(value)


def read_pair(example: tf.train.Example, description: classes.ClassDescription) -> Tuple[np.ndarray, np.ndarray]:
    """(RGB image uint8 [H, W, 3], class ids [H, W] with ignored pixels as IGNORE_LABEL) of a raw example."""
    features = example.features.feature
    image = np.asarray(Image.open(io.BytesIO(features[keys.IMAGE_KEY].bytes_list.value[0])).convert('RGB'))
    # PIL reads a palette PNG's indices and a grayscale PNG's values alike: the mask values either way.
    values = np.asarray(Image.open(io.BytesIO(features[keys.MASK_KEY].bytes_list.value[0])))
    return image, description.lookup_table()[values.astype(np.int64)]


def score_examples(model_dir: str, records: Iterable[bytes], slice_features: Sequence[str] = (),
                   worst_count: int = 6, dilation_ratio: float = 0.02) -> FullSizeResult:
    """Scores the SavedModel in `model_dir` on serialized raw eval examples at each image's own size.

    Args:
      model_dir: an exported SavedModel with a `serving_full_size` signature and its classes.
      records: serialized tf.Examples as ExampleGen writes them.
      slice_features: features whose values are recorded with each image's scores.
      worst_count: how many of the lowest-scoring images to keep for drawing.
      dilation_ratio: the boundary band's width as a fraction of each image's diagonal.

    Returns:
      The dataset's figures (`pixel_accuracy`, `mean_iou`, `iou_<class>`, `boundary_iou_<class>`,
      `mean_boundary_iou`, `images`), each image's scores, and the worst images.

    Raises:
      ValueError: no records.
    """
    description, _ = classes.read_from_model(model_dir)
    serve = tf.saved_model.load(model_dir).signatures[signatures.SERVING_FULL_SIZE]
    count = description.num_classes
    confusion = np.zeros((count, count))
    intersections, unions = np.zeros(count, np.int64), np.zeros(count, np.int64)
    images: List[ImageScore] = []
    worst: List[Tuple[float, int, WorstImage]] = []  # a max-heap of the lowest IoUs, by negated score
    for index, record in enumerate(records):
        example = tf.train.Example.FromString(record)
        image, truth = read_pair(example, description)
        answer = serve(**{signatures.IMAGE_BYTES_INPUT: tf.constant([example.features.feature[
            keys.IMAGE_KEY].bytes_list.value[0]])})
        predicted = answer['mask'].numpy()[0, :image.shape[0], :image.shape[1]]
        own = metrics.confusion_matrix(truth, predicted, count)
        confusion += own
        inside, around = metrics.boundary_counts(truth, predicted, count, dilation_ratio)
        intersections += inside
        unions += around
        scores = metrics.matrix_scores(own, description.names)
        score = ImageScore(
            _feature_value(example, keys.FILE_NAME_KEY) or f'example {index}',
            {feature: _feature_value(example, feature) for feature in slice_features
             if _feature_value(example, feature) is not None},
            int(image.shape[0]), int(image.shape[1]), scores['pixel_accuracy'], scores['mean_iou'],
            metrics.boundary_scores(inside, around, description.names)['mean_boundary_iou'],
            request_log.predicted_fractions(predicted, description))
        images.append(score)
        if worst_count:
            entry = (-score.mean_iou, index, WorstImage(score, image, truth, predicted))
            (heapq.heappush if len(worst) < worst_count else heapq.heappushpop)(worst, entry)
    if not images:
        raise ValueError('No eval examples to score at full size')
    figures = {**metrics.matrix_scores(confusion, description.names),
               **metrics.boundary_scores(intersections, unions, description.names), 'images': len(images)}
    return FullSizeResult(figures, images, [entry[2] for entry in sorted(worst, key=lambda e: (-e[0], e[1]))])


def slice_value_names(images: Sequence[ImageScore], feature: str) -> Dict[str, str]:
    """A readable name for each value of `feature` where its images' file names agree on one (Oxford's
    `Bengal_12.jpg`: label 5 is `Bengal`); values without one are left out."""
    stems: Dict[str, set] = {}
    for image in images:
        if feature in image.slices:
            stem = os.path.splitext(image.file_name)[0].rpartition('_')[0]
            stems.setdefault(image.slices[feature], set()).add(stem)
    return {value: next(iter(names)) for value, names in stems.items() if len(names) == 1 and next(iter(names))}
