"""The seed tutorial's training code as a plain tf_keras script: the reference every benchmark figure is compared with.

Kept as close to the TensorFlow tutorial "Image segmentation" (tensorflow.org/tutorials/images/segmentation,
the notebook this project started from) as the stack allows: its `load_image` and
`normalize` (bilinear resize of image *and* mask, then `mask -= 1`), the `Augment` layer (two
RandomFlips with one seed), `.cache().shuffle(1000).batch(64).repeat().map(Augment()).prefetch()`,
the pix2pix `upsample` blocks, `unet_model`, Adam and SparseCategoricalCrossentropy(from_logits).
Differences: `tf_keras` instead of `tf.keras` (Keras 2), RandomFlip from `keras.layers` (the
`experimental.preprocessing` path is gone), data from a TFDS builder the project prepares (so the
same images are read), and knobs the benchmark sets identically for both sides (encoder
weights, BatchNorm momentum, and whether the encoder trains: random encoder weights are useless frozen).

    python -m bench.tutorial_baseline --source_dir outputs/sample_data/pets_240_60_seed0 --epochs 3
"""

import os

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')

import argparse  # noqa: E402
import tempfile  # noqa: E402
from typing import Optional  # noqa: E402

import tensorflow as tf  # noqa: E402
import tensorflow_datasets as tfds  # noqa: E402
import tf_keras as keras  # noqa: E402

from components.tfds_example_gen import sources  # noqa: E402

BATCH_SIZE = 64
BUFFER_SIZE = 1000
OUTPUT_CLASSES = 3


def normalize(input_image, input_mask):
    input_image = tf.cast(input_image, tf.float32) / 255.0
    input_mask -= 1
    return input_image, input_mask


def load_image(datapoint):
    input_image = tf.image.resize(datapoint['image'], (128, 128))
    input_mask = tf.image.resize(datapoint['segmentation_mask'], (128, 128))
    input_image, input_mask = normalize(input_image, input_mask)
    return input_image, input_mask


class Augment(keras.layers.Layer):
    def __init__(self, seed=42):
        super().__init__()
        # both use the same seed, so they'll make the same random changes.
        self.augment_inputs = keras.layers.RandomFlip(mode='horizontal', seed=seed)
        self.augment_labels = keras.layers.RandomFlip(mode='horizontal', seed=seed)

    def call(self, inputs, labels):
        inputs = self.augment_inputs(inputs)
        labels = self.augment_labels(labels)
        return inputs, labels


def upsample(filters, size, apply_dropout=False):
    """pix2pix.upsample from tensorflow_examples (not on PyPI), batchnorm variant."""
    initializer = tf.random_normal_initializer(0., 0.02)
    result = keras.Sequential()
    result.add(keras.layers.Conv2DTranspose(filters, size, strides=2, padding='same',
                                            kernel_initializer=initializer, use_bias=False))
    result.add(keras.layers.BatchNormalization())
    if apply_dropout:
        result.add(keras.layers.Dropout(0.5))
    result.add(keras.layers.ReLU())
    return result


def unet_model(output_channels: int, encoder_weights: Optional[str] = 'imagenet',
               batchnorm_momentum: Optional[float] = None, train_encoder: bool = False):
    base_model = keras.applications.MobileNetV2(input_shape=[128, 128, 3], include_top=False, weights=encoder_weights)
    layer_names = ['block_1_expand_relu', 'block_3_expand_relu', 'block_6_expand_relu',
                   'block_13_expand_relu', 'block_16_project']
    base_model_outputs = [base_model.get_layer(name).output for name in layer_names]
    down_stack = keras.Model(inputs=base_model.input, outputs=base_model_outputs)
    down_stack.trainable = train_encoder
    up_stack = [upsample(512, 3), upsample(256, 3), upsample(128, 3), upsample(64, 3)]

    inputs = keras.layers.Input(shape=[128, 128, 3])
    skips = down_stack(inputs)
    x = skips[-1]
    skips = reversed(skips[:-1])
    for up, skip in zip(up_stack, skips):
        x = up(x)
        x = keras.layers.Concatenate()([x, skip])
    last = keras.layers.Conv2DTranspose(filters=output_channels, kernel_size=3, strides=2, padding='same')
    model = keras.Model(inputs=inputs, outputs=last(x))
    if batchnorm_momentum is not None:
        for block in up_stack:
            for layer in block.layers:
                if isinstance(layer, keras.layers.BatchNormalization):
                    layer.momentum = batchnorm_momentum
    return model


def load_dataset(source_dir: Optional[str], data_dir: Optional[str], work_dir: str):
    """(dataset dict, info) like `tfds.load('oxford_iiit_pet', with_info=True)`, from the project's sources."""
    builder = sources.prepare_builder('oxford_iiit_pet', data_dir, source_dir, work_dir).builder
    return builder.as_dataset(), builder.info


def input_pipelines(dataset, batch_size: int = BATCH_SIZE, buffer_size: int = BUFFER_SIZE):
    """The tutorial's train_batches and test_batches."""
    train_images = dataset['train'].map(load_image, num_parallel_calls=tf.data.AUTOTUNE)
    test_images = dataset['test'].map(load_image, num_parallel_calls=tf.data.AUTOTUNE)
    train_batches = (train_images.cache().shuffle(buffer_size).batch(batch_size).repeat()
                     .map(Augment()).prefetch(buffer_size=tf.data.AUTOTUNE))
    test_batches = test_images.batch(batch_size)
    return train_batches, test_batches


def build_and_compile(encoder_weights: Optional[str], batchnorm_momentum: Optional[float] = None,
                      train_encoder: bool = False):
    model = unet_model(output_channels=OUTPUT_CLASSES, encoder_weights=encoder_weights,
                       batchnorm_momentum=batchnorm_momentum, train_encoder=train_encoder)
    model.compile(optimizer='adam', loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=['accuracy'])
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--source_dir', help='Oxford-IIIT Pet archives/folders (e.g. generated sample data)')
    parser.add_argument('--data_dir', help='TFDS data dir with oxford_iiit_pet prepared')
    parser.add_argument('--epochs', type=int, default=20)
    parser.add_argument('--encoder_weights', default='imagenet', help="'imagenet', a local .h5, or 'none'")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work_dir:
        dataset, info = load_dataset(args.source_dir, args.data_dir, work_dir)
        train_batches, test_batches = input_pipelines(dataset)
        model = build_and_compile(None if args.encoder_weights == 'none' else args.encoder_weights)
        steps = max(1, info.splits['train'].num_examples // BATCH_SIZE)
        model.fit(train_batches, epochs=args.epochs, steps_per_epoch=steps, validation_data=test_batches)


if __name__ == '__main__':
    tfds.display_progress_bar(False)
    main()
