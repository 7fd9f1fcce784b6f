"""Joint image/mask augmentation for training batches: flip, scale, rotation and shift, and colour jitter.

Transform stays deterministic; these run in the training input pipeline only (`modules.data.input_fn` with
`training=True`), never at evaluation or serving. One random draw per example drives image and mask alike:
each geometric transform is one projective matrix applied to both, bilinear for the image and nearest
neighbour for the mask (so labels stay class ids), with reflected borders on both so that what appears at an
edge is labelled like what it reflects. Colour jitter (brightness, contrast, saturation, hue) touches the
image only. Every amount scales with `strength` (0 turns that part off), the knob the Tuner searches.
"""

import math
from typing import Optional, Tuple

import tensorflow as tf

from modules.hparams import AugmentationConfig


def random_flip(images: tf.Tensor, masks: tf.Tensor, seed: Optional[int] = None) -> Tuple[tf.Tensor, tf.Tensor]:
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


def random_transforms(batch: tf.Tensor, size: Tuple[int, int], augmentation: AugmentationConfig,
                      seed: Optional[int] = None) -> tf.Tensor:
    """One projective transform per example (zoom about the centre, rotation, shift), as `[B, 8]` rows that map
    output pixel coordinates to input coordinates (`tf.raw_ops.ImageProjectiveTransformV3`'s convention)."""
    height, width = float(size[0]), float(size[1])
    log_scale = math.log1p(augmentation.scale)
    zoom = tf.exp(tf.random.uniform([batch], -log_scale, log_scale, seed=seed))
    angle = tf.random.uniform([batch], -1.0, 1.0, seed=None if seed is None else seed + 1) * (
        augmentation.rotation * math.pi / 180.0)
    shift = tf.random.uniform([batch, 2], -augmentation.shift, augmentation.shift,
                              seed=None if seed is None else seed + 2) * [width, height]
    cos, sin = tf.cos(angle) / zoom, tf.sin(angle) / zoom
    cx, cy = (width - 1) / 2, (height - 1) / 2
    # input = R(angle) / zoom * (output - centre) + centre + shift
    a0, a1 = cos, -sin
    b0, b1 = sin, cos
    a2 = cx - a0 * cx - a1 * cy + shift[:, 0]
    b2 = cy - b0 * cx - b1 * cy + shift[:, 1]
    zeros = tf.zeros_like(a0)
    return tf.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)


def _warp(images: tf.Tensor, transforms: tf.Tensor, interpolation: str) -> tf.Tensor:
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images, transforms=transforms, output_shape=tf.shape(images)[1:3], fill_value=0.0,
        interpolation=interpolation, fill_mode='REFLECT')


def warp_pair(images: tf.Tensor, masks: tf.Tensor, transforms: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
    """Applies the same transforms to images (bilinear) and masks (nearest: class ids stay class ids)."""
    warped_masks = _warp(tf.cast(masks, tf.float32), transforms, 'NEAREST')
    return _warp(images, transforms, 'BILINEAR'), tf.cast(tf.round(warped_masks), masks.dtype)


def color_jitter(images: tf.Tensor, amount: float, seed: Optional[int] = None) -> tf.Tensor:
    """Per-example brightness, contrast, saturation and hue jitter of images in [0, 1]; the result is clipped."""
    batch = tf.shape(images)[0]

    def draw(low: float, high: float, offset: int) -> tf.Tensor:
        return tf.random.uniform([batch, 1, 1, 1], low, high, seed=None if seed is None else seed + offset)

    images = images + draw(-0.2 * amount, 0.2 * amount, 10)
    mean = tf.reduce_mean(images, axis=[1, 2, 3], keepdims=True)
    images = (images - mean) * draw(1 - 0.4 * amount, 1 + 0.4 * amount, 11) + mean
    gray = tf.reduce_mean(images, axis=3, keepdims=True)
    images = tf.clip_by_value((images - gray) * draw(1 - 0.4 * amount, 1 + 0.4 * amount, 12) + gray, 0.0, 1.0)
    hsv = tf.image.rgb_to_hsv(images)
    hue = tf.math.floormod(hsv[..., :1] + draw(-0.05 * amount, 0.05 * amount, 13), 1.0)
    return tf.clip_by_value(tf.image.hsv_to_rgb(tf.concat([hue, hsv[..., 1:]], axis=-1)), 0.0, 1.0)


def augment_batch(images: tf.Tensor, masks: tf.Tensor, augmentation: AugmentationConfig,
                  seed: Optional[int] = None) -> Tuple[tf.Tensor, tf.Tensor]:
    """A training batch, augmented.

    Args:
      images: float [B, H, W, C] in [0, 1].
      masks: class ids [B, H, W, 1].
      augmentation: the amounts at strength 1 and the strength that scales them.
      seed: op seed for reproducibility.

    Returns:
      (images, masks) of the same shapes and dtypes, images still in [0, 1].
    """
    augmentation = augmentation.at_strength()
    if augmentation.flip:
        images, masks = random_flip(images, masks, seed)
    if augmentation.geometric:
        transforms = random_transforms(tf.shape(images)[0], images.shape[1:3], augmentation, seed)
        images, masks = warp_pair(images, masks, transforms)
    if augmentation.color > 0:
        images = color_jitter(images, augmentation.color, seed)
    return images, masks
