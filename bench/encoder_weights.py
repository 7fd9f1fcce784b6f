"""Saves the MobileNetV2 encoder of a trained U-Net as a Keras no-top `.h5`, the form `--encoder_weights` takes.

    .venv/bin/python -m bench.encoder_weights outputs/petseg/serving_model encoder.h5     # the newest version
    .venv/bin/python -m bench.encoder_weights outputs/petseg/serving_model/<version> encoder.h5

Where ImageNet's weights cannot be downloaded, an encoder the pipeline trained on other images stands in for
a pretrained one: `bench.run` freezes the one its end-to-end run trained, and `bench.time_to_quality
--encoder_weights` starts every side from one.
"""

import os

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')

import argparse  # noqa: E402
from typing import Optional, Sequence  # noqa: E402

import tf_keras as keras  # noqa: E402

from modules import classes, keys, paths, train  # noqa: E402
from pipeline import config as config_lib  # noqa: E402


def save(model_dir: str, path: str) -> str:
    """Writes the encoder of the U-Net SavedModel `model_dir` to `path` (a `.h5`); returns `path`.

    The model is rebuilt with the classes and image size it carries, so one trained on other data hands its
    encoder on too; the encoder's weights do not depend on the image size."""
    description, size = classes.read_from_model(model_dir)
    unet = train.build_model(config_lib.TrainingConfig().with_speed(mixed_bfloat16=False), base_model=model_dir,
                             description=description, image_size=size)
    mobilenet = keras.applications.MobileNetV2(input_shape=[size, size, keys.IMAGE_CHANNELS], include_top=False,
                                               weights=None)
    for layer in unet.get_layer('encoder').layers:
        if layer.weights:
            mobilenet.get_layer(layer.name).set_weights(layer.get_weights())
    mobilenet.save_weights(path)
    return path


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('model_dir', help="a served model version's directory (a SavedModel of the pipeline's U-Net), "
                                          'or a serving root: its newest version')
    parser.add_argument('path', help='the .h5 to write')
    args = parser.parse_args(argv)
    if not args.path.endswith('.h5'):
        parser.error(f'{args.path!r}: the encoder is written as a .h5 file')
    model_dir = args.model_dir
    if not os.path.isfile(os.path.join(model_dir, 'saved_model.pb')) and paths.numbered_versions(model_dir):
        model_dir = paths.version_dir(model_dir)
    if not os.path.isfile(os.path.join(model_dir, 'saved_model.pb')):
        parser.error(f'{args.model_dir!r} holds no SavedModel (saved_model.pb) nor numbered versions of one')
    print(save(model_dir, args.path))


if __name__ == '__main__':
    main()
