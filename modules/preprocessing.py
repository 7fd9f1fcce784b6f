"""`preprocessing_fn` for TFX Transform: the only place images and masks are decoded, resized and scaled.

Training, evaluation and serving all run this graph (serving through the TFT layer), so there is
no training/serving skew. The image is resized bilinearly and scaled to [0, 1] as in the seed
tutorial; the trimap is resized with nearest neighbour so labels stay integers, then shifted from
{1, 2, 3} to {0, 1, 2}. At serving time the TFT layer feeds empty strings for raw features the
request lacks (the mask), so every decode is guarded by a length check.
"""

from typing import Dict

import tensorflow as tf

from modules import keys


def _decode_or_zeros(encoded: tf.Tensor, channels: int, method: str, dtype: tf.DType) -> tf.Tensor:
    """Decodes one encoded image and resizes it to IMAGE_SIZE; zeros for an empty string."""
    size = [keys.IMAGE_SIZE, keys.IMAGE_SIZE]

    def decode() -> tf.Tensor:
        image = tf.io.decode_image(encoded, channels=channels, expand_animations=False)
        image.set_shape([None, None, channels])
        return tf.cast(tf.image.resize(image, size, method=method), dtype)

    return tf.cond(tf.strings.length(encoded) > 0, decode, lambda: tf.zeros(size + [channels], dtype))


def decode_images(encoded: tf.Tensor) -> tf.Tensor:
    """Encoded JPEG/PNG/GIF/BMP images [B] -> float32 [B, IMAGE_SIZE, IMAGE_SIZE, 3] in [0, 1].

    Args:
      encoded: batch of encoded images.

    Returns:
      Bilinearly resized images scaled to [0, 1].
    """
    images = tf.map_fn(
        lambda e: _decode_or_zeros(e, keys.IMAGE_CHANNELS, tf.image.ResizeMethod.BILINEAR, tf.float32),
        encoded, fn_output_signature=tf.TensorSpec([keys.IMAGE_SIZE, keys.IMAGE_SIZE, keys.IMAGE_CHANNELS], tf.float32))
    return images / 255.0


def decode_masks(encoded: tf.Tensor) -> tf.Tensor:
    """Encoded trimap PNGs [B] -> int64 class ids [B, IMAGE_SIZE, IMAGE_SIZE, 1] in {0, .., NUM_CLASSES-1}.

    Args:
      encoded: batch of encoded single-channel masks with values 1..NUM_CLASSES.

    Returns:
      Nearest-neighbour resized masks shifted to start at 0 (empty inputs give zeros).
    """
    masks = tf.map_fn(
        lambda e: _decode_or_zeros(e, 1, tf.image.ResizeMethod.NEAREST_NEIGHBOR, tf.int64),
        encoded, fn_output_signature=tf.TensorSpec([keys.IMAGE_SIZE, keys.IMAGE_SIZE, 1], tf.int64))
    return tf.maximum(masks - keys.TRIMAP_OFFSET, 0)


def preprocessing_fn(inputs: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
    """TFX Transform entry point.

    Args:
      inputs: raw features; image and mask are dense string tensors of shape [B, 1].

    Returns:
      `image_xf` float32 [B, 128, 128, 3] in [0, 1] and `segmentation_mask_xf` int64 [B, 128, 128, 1].
    """
    return {
        keys.transformed_name(keys.IMAGE_KEY): decode_images(tf.reshape(inputs[keys.IMAGE_KEY], [-1])),
        keys.transformed_name(keys.MASK_KEY): decode_masks(tf.reshape(inputs[keys.MASK_KEY], [-1])),
    }
