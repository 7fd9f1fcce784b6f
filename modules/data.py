"""Training and evaluation input pipelines over Transform's output.

Deterministic preprocessing already happened in Transform; here the examples are parsed, cached
(decoded tensors, when they fit the Trainer's memory budget; `count_examples` x `example_bytes` tells), optionally split into a fitting part and a held-out
validation part, shuffled, batched and, for training only, augmented (`modules.augment`: one random draw per
example shared by image and mask). Optional per-class weights become per-pixel sample weights (the tutorial's
class-imbalance section).
"""

from typing import List, Optional, Sequence

import tensorflow as tf
import tensorflow_transform as tft

from modules import keys
from modules.augment import augment_batch
from modules.hparams import AugmentationConfig

IMAGE_XF = keys.transformed_name(keys.IMAGE_KEY)
MASK_XF = keys.transformed_name(keys.MASK_KEY)
SUBSETS = ('fit', 'validation')


def pixel_weights(masks: tf.Tensor, class_weights: Sequence[float]) -> tf.Tensor:
    """Per-pixel weights from per-class weights normalized to sum to 1.

    Args:
      masks: class ids [B, H, W, 1].
      class_weights: one positive weight per class.

    Returns:
      float32 weights shaped like `masks`; 0 for labels outside the classes (ignored pixels).
    """
    weights = tf.constant(class_weights, tf.float32)
    weights = tf.concat([weights / tf.reduce_sum(weights), [0.0]], axis=0)
    return tf.gather(weights, tf.minimum(tf.cast(masks, tf.int32), len(class_weights)))


def held_out(index: tf.Tensor, fraction: float) -> tf.Tensor:
    """Whether example `index` belongs to the validation part: `fraction` of the examples, spread evenly."""
    index = tf.cast(index, tf.float64)
    return tf.floor((index + 1) * fraction) > tf.floor(index * fraction)


def _files(file_pattern) -> List[str]:
    return tf.io.gfile.glob(file_pattern) if isinstance(file_pattern, str) else \
        [f for pattern in file_pattern for f in tf.io.gfile.glob(pattern)]


def count_examples(file_pattern) -> int:
    """Transformed examples in the files (one pass over the compressed records, nothing parsed)."""
    files = _files(file_pattern)
    if not files:
        return 0
    return int(tf.data.TFRecordDataset(sorted(files), compression_type='GZIP').reduce(
        tf.constant(0, tf.int64), lambda count, _: count + 1).numpy())


def example_bytes(tf_transform_output: tft.TFTransformOutput) -> int:
    """Bytes one decoded (image, mask) pair takes in memory."""
    spec = tf_transform_output.transformed_feature_spec()
    total = 0
    for key in (IMAGE_XF, MASK_XF):
        size = 1
        for dimension in spec[key].shape:
            size *= dimension
        total += size * spec[key].dtype.size
    return total


def input_fn(file_pattern: List[str], tf_transform_output: tft.TFTransformOutput, batch_size: int, *,
             training: bool, shuffle_buffer: int = 1000, seed: int = 0,
             class_weights: Optional[Sequence[float]] = None, repeat: bool = False,
             cache: bool = True, augmentation: Optional[AugmentationConfig] = AugmentationConfig(),
             validation_split: float = 0.0, subset: Optional[str] = None) -> tf.data.Dataset:
    """Batches of (image, mask[, pixel weights]) from transformed examples.

    Args:
      file_pattern: transformed TFRecord files or globs.
      tf_transform_output: Transform's output, for the feature spec.
      batch_size: examples per batch.
      training: shuffle and augment.
      shuffle_buffer: examples in the shuffle buffer.
      seed: shuffle and augmentation seed.
      class_weights: optional per-class weights, adding per-pixel sample weights.
      repeat: repeat forever (then the caller sets steps per epoch).
      cache: keep the decoded tensors in memory after the first pass.
      augmentation: what `training` applies (default: the joint flip only; None: nothing).
      validation_split: with `subset`, the fraction of the examples (in file order, spread evenly) that form
        the validation part.
      subset: 'fit' (all but the validation part) or 'validation'; None reads every example.

    Returns:
      A tf.data.Dataset.
    """
    if subset is not None and (subset not in SUBSETS or not 0.0 < validation_split < 1.0):
        raise ValueError(f'subset must be one of {SUBSETS} with 0 < validation_split < 1, '
                         f'got {subset!r} and {validation_split}')
    spec = tf_transform_output.transformed_feature_spec()
    feature_spec = {IMAGE_XF: spec[IMAGE_XF], MASK_XF: spec[MASK_XF]}
    files = _files(file_pattern)
    if not files:
        raise FileNotFoundError(f'No transformed examples match {file_pattern}')
    dataset = tf.data.TFRecordDataset(sorted(files), compression_type='GZIP', num_parallel_reads=tf.data.AUTOTUNE)
    if subset is not None:
        keep_validation = subset == 'validation'
        dataset = dataset.enumerate().filter(
            lambda index, _: tf.equal(held_out(index, validation_split), keep_validation)).map(lambda _, r: r)
    dataset = dataset.map(lambda record: tf.io.parse_single_example(record, feature_spec),
                          num_parallel_calls=tf.data.AUTOTUNE)
    dataset = dataset.map(lambda f: (f[IMAGE_XF], f[MASK_XF]), num_parallel_calls=tf.data.AUTOTUNE)
    if cache:
        dataset = dataset.cache()
    if training:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        dataset = dataset.repeat()
    dataset = dataset.batch(batch_size, drop_remainder=False)
    if training and augmentation is not None:
        dataset = dataset.map(lambda images, masks: augment_batch(images, masks, augmentation, seed),
                              num_parallel_calls=tf.data.AUTOTUNE)
    if class_weights is not None:
        dataset = dataset.map(lambda images, masks: (images, masks, pixel_weights(masks, class_weights)),
                              num_parallel_calls=tf.data.AUTOTUNE)
    # No autotuning: destroying an epoch's iterator joins tf.data's autotune thread, which on 2 busy cores held
    # Keras' epoch loop 15-20 s in most runs; cached tensors and a flip leave it nothing to tune (measured
    # without it: steps as fast, no stall at any epoch boundary).
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.prefetch(tf.data.AUTOTUNE).with_options(options)
