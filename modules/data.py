"""Training and evaluation input pipelines over Transform's output.

Deterministic preprocessing already happened in Transform; here the examples are parsed, cached
(decoded tensors, when the split fits in memory), shuffled, batched and, for training only,
flipped horizontally with one random draw per example shared by image and mask.
Optional per-class weights become per-pixel sample weights (the tutorial's class-imbalance section).
"""

from typing import List, Optional, Sequence

import tensorflow as tf
import tensorflow_transform as tft

from modules import keys

IMAGE_XF = keys.transformed_name(keys.IMAGE_KEY)
MASK_XF = keys.transformed_name(keys.MASK_KEY)


def random_flip(images: tf.Tensor, masks: tf.Tensor, seed: Optional[int] = None):
    """Flips each (image, mask) pair left-right with probability 1/2, the same flip for both.

    Args:
      images: [B, H, W, C].
      masks: [B, H, W, 1].
      seed: op seed for reproducibility.

    Returns:
      (images, masks), flipped together.
    """
    flip = tf.random.uniform([tf.shape(images)[0], 1, 1, 1], seed=seed) < 0.5
    return tf.where(flip, tf.reverse(images, [2]), images), tf.where(flip, tf.reverse(masks, [2]), masks)


def pixel_weights(masks: tf.Tensor, class_weights: Sequence[float]) -> tf.Tensor:
    """Per-pixel weights from per-class weights normalized to sum to 1.

    Args:
      masks: class ids [B, H, W, 1].
      class_weights: one positive weight per class.

    Returns:
      float32 weights shaped like `masks`.
    """
    weights = tf.constant(class_weights, tf.float32)
    return tf.gather(weights / tf.reduce_sum(weights), tf.cast(masks, tf.int32))


def input_fn(file_pattern: List[str], tf_transform_output: tft.TFTransformOutput, batch_size: int, *,
             training: bool, shuffle_buffer: int = 1000, seed: int = 0,
             class_weights: Optional[Sequence[float]] = None, repeat: bool = False,
             cache: bool = True) -> tf.data.Dataset:
    """Batches of (image, mask[, pixel weights]) from transformed examples.

    Args:
      file_pattern: transformed TFRecord files or globs.
      tf_transform_output: Transform's output, for the feature spec.
      batch_size: examples per batch.
      training: shuffle and flip.
      shuffle_buffer: examples in the shuffle buffer.
      seed: shuffle and flip seed.
      class_weights: optional per-class weights, adding per-pixel sample weights.
      repeat: repeat forever (then the caller sets steps per epoch).
      cache: keep the decoded tensors in memory after the first pass.

    Returns:
      A tf.data.Dataset.
    """
    spec = tf_transform_output.transformed_feature_spec()
    feature_spec = {IMAGE_XF: spec[IMAGE_XF], MASK_XF: spec[MASK_XF]}
    files = tf.io.gfile.glob(file_pattern) if isinstance(file_pattern, str) else \
        [f for pattern in file_pattern for f in tf.io.gfile.glob(pattern)]
    if not files:
        raise FileNotFoundError(f'No transformed examples match {file_pattern}')
    dataset = tf.data.TFRecordDataset(sorted(files), compression_type='GZIP', num_parallel_reads=tf.data.AUTOTUNE)
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
    if training:
        dataset = dataset.map(lambda images, masks: random_flip(images, masks, seed),
                              num_parallel_calls=tf.data.AUTOTUNE)
    if class_weights is not None:
        dataset = dataset.map(lambda images, masks: (images, masks, pixel_weights(masks, class_weights)),
                              num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)
