"""bench.encoder_weights: a trained U-Net's encoder comes out as the no-top .h5 that --encoder_weights loads."""

import numpy as np
import pytest
import tf_keras as keras

from bench import encoder_weights
from modules import classes, train
from pipeline import config as config_lib


def test_the_saved_encoder_is_the_models_own(tmp_path):
    keras.utils.set_random_seed(3)
    unet = train.build_model(config_lib.TrainingConfig().with_speed(mixed_bfloat16=False))
    unet.save(str(tmp_path / 'serving_model' / '7'))
    encoder_weights.main([str(tmp_path / 'serving_model'), str(tmp_path / 'encoder.h5')])  # the newest version
    path = str(tmp_path / 'encoder.h5')
    mobilenet = keras.applications.MobileNetV2(input_shape=[128, 128, 3], include_top=False, weights=path)
    for name in ('Conv1', 'block_6_expand_BN', 'block_16_project'):
        for saved, trained in zip(mobilenet.get_layer(name).get_weights(),
                                  unet.get_layer('encoder').get_layer(name).get_weights()):
            np.testing.assert_array_equal(saved, trained, err_msg=name)


def test_a_folder_without_a_saved_model_is_named(tmp_path, capsys):
    with pytest.raises(SystemExit):
        encoder_weights.main([str(tmp_path), str(tmp_path / 'encoder.h5')])
    error = capsys.readouterr().err
    assert str(tmp_path) in error and 'saved_model.pb' in error


def test_a_model_of_other_classes_and_size_hands_its_encoder_on(tmp_path):
    shapes = classes.ClassDescription.from_dict({'names': ['background', 'disc', 'box', 'triangle', 'cross']})
    keras.utils.set_random_seed(4)
    unet = train.build_model(config_lib.TrainingConfig().with_speed(mixed_bfloat16=False), description=shapes,
                             image_size=96)
    model_dir = str(tmp_path / 'model')
    unet.save(model_dir)
    classes.write_to_model(model_dir, shapes, 96)
    path = encoder_weights.save(model_dir, str(tmp_path / 'encoder.h5'))
    mobilenet = keras.applications.MobileNetV2(input_shape=[128, 128, 3], include_top=False, weights=path)
    np.testing.assert_array_equal(mobilenet.get_layer('block_16_project').get_weights()[0],
                                  unet.get_layer('encoder').get_layer('block_16_project').get_weights()[0])
