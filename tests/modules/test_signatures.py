"""Full-size masks: bilinear probabilities, argmax, each at its image's own size; image sizes from the bytes;
the export's tracing."""

import io
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
from PIL import Image
from tensorflow.python.eager.polymorphic_function import autograph_util

from modules import classes, model as model_lib, paths, signatures


def _encoded(width, height, image_format):
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((height, width, 3), np.uint8)).save(buffer, format=image_format)
    return buffer.getvalue()


@pytest.mark.parametrize('width, height, image_format', [(500, 375, 'JPEG'), (37, 300, 'PNG'), (1, 1, 'PNG'),
                                                         (640, 64, 'BMP'), (90, 91, 'GIF')])
def test_image_size_reads_height_and_width(width, height, image_format):
    assert signatures.image_size(tf.constant(_encoded(width, height, image_format))).numpy().tolist() == [height, width]


def test_full_size_masks_resize_probabilities_then_take_the_argmax():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, classes.DEFAULT_IMAGE_SIZE, classes.DEFAULT_IMAGE_SIZE, classes.OXFORD_IIIT_PET.num_classes)).astype(np.float32)
    probabilities = tf.nn.softmax(logits, -1)
    sizes = tf.constant([[375, 500], [300, 37]], tf.int32)
    masks = signatures.full_size_masks(probabilities, sizes).numpy()
    assert masks.shape == (2, 375, 500) and masks.dtype == np.uint8
    for index, (height, width) in enumerate(sizes.numpy()):
        expected = np.argmax(tf.image.resize(probabilities[index], (height, width), method='bilinear'), -1)
        np.testing.assert_array_equal(masks[index, :height, :width], expected)
        assert (masks[index, height:, :] == signatures.PADDING_CLASS).all()
        assert (masks[index, :, width:] == signatures.PADDING_CLASS).all()
    nearest_upscale = np.asarray(tf.image.resize(np.argmax(logits[0], -1)[..., None], (375, 500), method='nearest'))[..., 0]
    assert (masks[0, :375, :500] != nearest_upscale).mean() > 0.01, 'not a nearest upscale of the 128x128 mask'


def test_error_reason_is_the_line_that_names_the_problem():
    decode = tf.function(lambda data: tf.io.decode_image(data, channels=3, expand_animations=False))
    with pytest.raises(tf.errors.InvalidArgumentError) as error:
        decode(tf.constant(b'not an image'))
    assert signatures.error_reason(error.value) == 'Unknown image file format. One of JPEG, PNG, GIF, BMP required.'
    from_a_savedmodel = tf.errors.InvalidArgumentError(None, None, (
        'Graph execution error:\n\nDetected at node map/while/cond/decode_image/DecodeImage defined at (most recent '
        'call last):\n<stack traces unavailable>\njpeg::Uncompress failed. Invalid JPEG data or crop window.\n'
        '\t [[{{node map/while/cond/decode_image/DecodeImage}}]] [Op:__inference_signature_wrapper_11395]'))
    assert signatures.error_reason(from_a_savedmodel) == 'jpeg::Uncompress failed. Invalid JPEG data or crop window.'


def test_the_test_time_flip_averages_with_the_mirror_images_prediction():
    import tf_keras as keras
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.layers.Conv2D(classes.OXFORD_IIIT_PET.num_classes, 3, padding='same', input_shape=(8, 8, 3))])
    images = tf.random.uniform((2, 8, 8, 3), seed=1)
    mirrored = tf.reverse(model(tf.reverse(images, [2])), [2])
    flipped = signatures.segment_logits(model, images, test_time_flip=True)
    np.testing.assert_allclose(flipped, (model(images) + mirrored) / 2, atol=1e-6)
    np.testing.assert_allclose(signatures.segment_logits(model, images), model(images), atol=1e-6)
    assert not np.allclose(model(images), mirrored, atol=1e-3), 'a random convolution is not mirror-symmetric'


def test_the_export_traces_the_model_without_autograph(scenario, tmp_path, monkeypatch):
    # AutoGraph transpiles every Keras layer the signatures reach: ~55 of the ~65 s an export took on 2 cores.
    converted = []
    convert = autograph_util.py_func_from_autograph
    monkeypatch.setattr(autograph_util, 'py_func_from_autograph',
                        lambda function, *args, **kwargs: converted.append(function) or convert(function, *args, **kwargs))
    transform = tft.TFTransformOutput(paths.version_dir(os.path.join(scenario.root, 'pipeline_root', 'Transform',
                                                                     'transform_graph')))
    export_dir = str(tmp_path / 'model')
    signatures.export_serving_model(model_lib.build_unet(), transform, export_dir, test_time_flip=True)
    assert [function.__qualname__ for function in converted if function.__module__.startswith('modules.')] == []
    assert set(tf.saved_model.load(export_dir).signatures) == {
        signatures.SERVING_DEFAULT, signatures.SERVING_FULL_SIZE, signatures.SERVING_TF_EXAMPLE,
        signatures.TRANSFORM_FEATURES}
