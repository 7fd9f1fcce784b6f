"""Joint augmentation: image and mask stay aligned under every transform, labels stay {0, 1, 2}, evaluation is untouched."""

import numpy as np
import pytest
import tensorflow as tf

from modules import classes, augment
from modules.hparams import AugmentationConfig

# Each class has its own pure colour, so the class of a pixel can be read back from the image.
PALETTE = np.array([[0.9, 0.1, 0.1], [0.1, 0.9, 0.1], [0.1, 0.1, 0.9]], np.float32)
STRONG = AugmentationConfig(flip=True, scale=0.4, rotation=20.0, shift=0.15, color=0.0)


def _blocky_batch(batch: int = 16, size: int = 64, seed: int = 0):
    """Masks made of 8x8 blocks of random classes (many edges in every direction), images painted from them."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, classes.OXFORD_IIIT_PET.num_classes, size=(batch, size // 8, size // 8))
    masks = np.kron(blocks, np.ones((8, 8), np.int64))[..., None]
    return tf.constant(PALETTE[masks[..., 0]]), tf.constant(masks)


def _class_from_colour(images: np.ndarray):
    """(class read from each pixel's colour, whether the pixel is pure enough to read it)."""
    distances = np.linalg.norm(images[..., None, :] - PALETTE, axis=-1)
    return distances.argmin(-1), distances.min(-1) < 0.05


@pytest.mark.parametrize('augmentation', [
    AugmentationConfig(flip=True),
    AugmentationConfig(flip=False, scale=0.5),
    AugmentationConfig(flip=False, rotation=30.0),
    AugmentationConfig(flip=False, shift=0.2),
    STRONG,
], ids=['flip', 'scale', 'rotation', 'shift', 'all'])
def test_geometric_transforms_keep_image_and_mask_aligned(augmentation):
    images, masks = _blocky_batch()
    out_images, out_masks = augment.augment_batch(images, masks, augmentation, seed=7)
    assert out_images.shape == images.shape and out_masks.shape == masks.shape and out_masks.dtype == masks.dtype
    read, pure = _class_from_colour(out_images.numpy())
    # Bilinear sampling mixes colours only along block edges; everywhere else the colour names the class.
    assert pure.mean() > 0.5
    agreement = (read == out_masks.numpy()[..., 0])[pure].mean()
    assert agreement > 0.995, f'{augmentation}: only {agreement:.4f} of the pure pixels agree with the mask'
    assert not np.array_equal(out_masks.numpy(), masks.numpy()), 'the transform must change something'


def test_labels_stay_class_ids():
    images, masks = _blocky_batch(batch=32, seed=1)
    for step in range(5):
        _, out = augment.augment_batch(images, masks, STRONG, seed=step)
        assert set(np.unique(out.numpy())) <= {0, 1, 2}


def test_each_example_draws_its_own_transform():
    images, masks = _blocky_batch(batch=2)
    same_images = tf.concat([images[:1], images[:1]], 0)
    same_masks = tf.concat([masks[:1], masks[:1]], 0)
    _, out = augment.augment_batch(same_images, same_masks, AugmentationConfig(flip=False, rotation=30.0), seed=3)
    assert not np.array_equal(out[0].numpy(), out[1].numpy())


def test_color_jitter_changes_the_image_only_and_stays_in_range():
    images, masks = _blocky_batch()
    out_images, out_masks = augment.augment_batch(images, masks, AugmentationConfig(flip=False, color=1.0), seed=5)
    np.testing.assert_array_equal(out_masks.numpy(), masks.numpy())
    assert 0.0 <= out_images.numpy().min() and out_images.numpy().max() <= 1.0
    assert np.abs(out_images.numpy() - images.numpy()).mean() > 0.01


def test_strength_scales_every_amount_and_zero_turns_them_off():
    half = AugmentationConfig(scale=0.4, rotation=20.0, shift=0.15, strength=0.5).at_strength()
    assert (half.scale, half.rotation, half.shift, half.strength) == (0.2, 10.0, 0.075, 1.0)
    off = AugmentationConfig(flip=False, scale=0.4, rotation=20.0, color=1.0, strength=0.0)
    images, masks = _blocky_batch()
    out_images, out_masks = augment.augment_batch(images, masks, off, seed=1)
    np.testing.assert_array_equal(out_images.numpy(), images.numpy())
    np.testing.assert_array_equal(out_masks.numpy(), masks.numpy())


def test_augmentation_runs_for_training_only(tmp_path):
    """input_fn with training=False yields exactly what Transform wrote, whatever augmentation is asked for."""
    from modules import data

    class _Output:
        def transformed_feature_spec(self):
            return {data.IMAGE_XF: tf.io.FixedLenFeature([16, 16, 3], tf.float32),
                    data.MASK_XF: tf.io.FixedLenFeature([16, 16, 1], tf.int64)}

    images, masks = _blocky_batch(batch=6, size=16)
    path = str(tmp_path / 'examples.gz')
    with tf.io.TFRecordWriter(path, 'GZIP') as writer:
        for image, mask in zip(images.numpy(), masks.numpy()):
            writer.write(tf.train.Example(features=tf.train.Features(feature={
                data.IMAGE_XF: tf.train.Feature(float_list=tf.train.FloatList(value=image.ravel())),
                data.MASK_XF: tf.train.Feature(int64_list=tf.train.Int64List(value=mask.ravel())),
            })).SerializeToString())
    evaluation = data.input_fn([path], _Output(), 6, training=False, augmentation=STRONG)
    got_images, got_masks = next(iter(evaluation))
    np.testing.assert_array_equal(got_images.numpy(), images.numpy())
    np.testing.assert_array_equal(got_masks.numpy(), masks.numpy())
    training = data.input_fn([path], _Output(), 6, training=True, augmentation=STRONG, shuffle_buffer=1)
    assert not np.array_equal(next(iter(training))[1].numpy(), masks.numpy())
    # Its autotune thread stalled the epoch loop when an epoch's iterator was destroyed (modules/data.py).
    assert training.options().autotune.enabled is False and evaluation.options().autotune.enabled is False
    # The held-out validation part and the fitting part split the examples between them.
    fit = data.input_fn([path], _Output(), 6, training=False, validation_split=1 / 3, subset='fit')
    held = data.input_fn([path], _Output(), 6, training=False, validation_split=1 / 3, subset='validation')
    fit_masks, held_masks = next(iter(fit))[1].numpy(), next(iter(held))[1].numpy()
    assert len(fit_masks) == 4 and len(held_masks) == 2
    np.testing.assert_array_equal(np.concatenate([fit_masks[:2], held_masks[:1], fit_masks[2:], held_masks[1:]]),
                                  masks.numpy())
