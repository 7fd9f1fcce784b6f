"""`preprocessing_fn` for TFX Transform: the only place images and masks are decoded, resized and scaled.

Training, evaluation and serving all run this graph (serving through the TFT layer), so there is
no training/serving skew. The image is resized bilinearly to the configured size and scaled to [0, 1] as in
the seed tutorial; the mask is resized with nearest neighbour so labels stay integers, then its values are
mapped to class ids by the dataset's class description (Oxford's trimap {1, 2, 3} -> {0, 1, 2}; ignored and
unknown values -> `classes.IGNORE_LABEL`, which losses and metrics skip). The description and the size come in
Transform's `custom_config` (`modules.classes.to_custom_config`) and become constants of the graph. At serving
time the TFT layer feeds empty strings for raw features the request lacks (the mask), so every decode is
guarded by a length check.
"""

from typing import Any, Dict, Optional

import tensorflow as tf

from modules import classes, keys


def _decode_or_zeros(encoded: tf.Tensor, size: int, channels: int, method: str, dtype: tf.DType) -> tf.Tensor:
    """Decodes one encoded image and resizes it to size x size; zeros for an empty string."""
    shape = [size, size]

    def decode() -> tf.Tensor:
        image = tf.io.decode_image(encoded, channels=channels, expand_animations=False)
        image.set_shape([None, None, channels])
        return tf.cast(tf.image.resize(image, shape, method=method), dtype)

    return tf.cond(tf.strings.length(encoded) > 0, decode, lambda: tf.zeros(shape + [channels], dtype))


def decode_images(encoded: tf.Tensor, image_size: int = classes.DEFAULT_IMAGE_SIZE) -> tf.Tensor:
    """Encoded JPEG/PNG/GIF/BMP images [B] -> float32 [B, image_size, image_size, 3] in [0, 1].

    Args:
      encoded: batch of encoded images.
      image_size: height and width of the output.

    Returns:
      Bilinearly resized images scaled to [0, 1].
    """
    images = tf.map_fn(
        lambda e: _decode_or_zeros(e, image_size, keys.IMAGE_CHANNELS, tf.image.ResizeMethod.BILINEAR, tf.float32),
        encoded, fn_output_signature=tf.TensorSpec([image_size, image_size, keys.IMAGE_CHANNELS], tf.float32))
    return images / 255.0


def decode_masks(encoded: tf.Tensor, description: classes.ClassDescription = classes.OXFORD_IIIT_PET,
                 image_size: int = classes.DEFAULT_IMAGE_SIZE) -> tf.Tensor:
    """Encoded single-channel masks [B] -> int64 class ids [B, image_size, image_size, 1].

    Args:
      encoded: batch of encoded masks holding the dataset's mask values.
      description: maps mask values to class ids.
      image_size: height and width of the output.

    Returns:
      Nearest-neighbour resized class ids in 0..K-1, or IGNORE_LABEL for ignored and unknown values (empty
      inputs give zeros).
    """
    masks = tf.map_fn(
        lambda e: _decode_or_zeros(e, image_size, 1, tf.image.ResizeMethod.NEAREST_NEIGHBOR, tf.int64),
        encoded, fn_output_signature=tf.TensorSpec([image_size, image_size, 1], tf.int64))
    return tf.gather(tf.constant(description.lookup_table()), masks)


def preprocessing_fn(inputs: Dict[str, tf.Tensor], custom_config: Optional[Dict[str, Any]] = None
                     ) -> Dict[str, tf.Tensor]:
    """TFX Transform entry point.

    Args:
      inputs: raw features; image and mask are dense string tensors of shape [B, 1].
      custom_config: the dataset's classes and the image size (`modules.classes.to_custom_config`); without
        them, Oxford-IIIT Pet at 128 px.

    Returns:
      `image_xf` float32 [B, S, S, 3] in [0, 1] and `segmentation_mask_xf` int64 [B, S, S, 1].
    """
    description, image_size = classes.from_custom_config(custom_config)
    return {
        keys.transformed_name(keys.IMAGE_KEY): decode_images(tf.reshape(inputs[keys.IMAGE_KEY], [-1]), image_size),
        keys.transformed_name(keys.MASK_KEY): decode_masks(tf.reshape(inputs[keys.MASK_KEY], [-1]), description,
                                                           image_size),
    }
