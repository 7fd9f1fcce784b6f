"""Exports the trained U-Net as a SavedModel with the Transform graph attached.

Signatures:
- `serving_default`: `image_bytes` [B] encoded JPEG/PNG of any size -> `mask` uint8 [B, S, S]
  class ids and `probabilities` float32 [B, S, S, K] (S the image size, K the classes). Empty or undecodable bytes fail the
  request with InvalidArgumentError naming the problem; no garbage mask is returned.
- `serving_full_size`: `image_bytes` [B] -> `mask` uint8 [B, H_max, W_max], each image's mask at its own
  height and width (class probabilities resized bilinearly, then argmax), padded with PADDING_CLASS to the
  batch's largest size, plus `height` and `width` int32 [B] to crop each one.
- `serving_tf_example`: serialized tf.Examples -> `logits`, for TFMA and batch prediction.
- `transform_features`: serialized tf.Examples -> transformed features (what Transform wrote).

All of them run the TFT layer, never a re-implementation of preprocessing. Besides the signatures, the
SavedModel's root object has `segment` (a function, not a signature): transformed images float32
[B, S, S, 3] -> logits, the bare U-Net, for TFLite conversion and for scoring without the TFT layer.
The model is saved without Keras' per-layer traces (`save_traces=False`): on 2 CPU cores tracing every layer's
call took ~50 of the export's ~65 s, and nothing loads the export back as a Keras model (warm start reads its
variables; everything else calls the functions above).
"""

import re
from typing import Callable, Dict

import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras

from modules import keys

IMAGE_BYTES_INPUT = 'image_bytes'  # the `_bytes` suffix lets TF Serving / Vertex decode {"b64": ...}
SERVING_DEFAULT = 'serving_default'
SERVING_FULL_SIZE = 'serving_full_size'
SERVING_TF_EXAMPLE = 'serving_tf_example'
TRANSFORM_FEATURES = 'transform_features'
SEGMENT_FUNCTION = 'segment'  # attribute of the SavedModel's root: transformed images -> logits
PADDING_CLASS = 255  # marks the padding of full-size masks beyond an image's own height and width



def expected_signatures(image_size: int, num_classes: int) -> Dict[str, tuple]:
    """The serving contract of a model of this size and number of classes: signature -> ({input: (dtype,
    shape)}, {output: (dtype, shape)}); None is any size. `modules.classes.read_from_model` gives both."""
    s, c = image_size, num_classes
    return {
        SERVING_DEFAULT: ({IMAGE_BYTES_INPUT: ('string', [None])},
                          {'mask': ('uint8', [None, s, s]), 'probabilities': ('float32', [None, s, s, c])}),
        SERVING_FULL_SIZE: ({IMAGE_BYTES_INPUT: ('string', [None])},
                            {'mask': ('uint8', [None, None, None]), 'height': ('int32', [None]),
                             'width': ('int32', [None])}),
        SERVING_TF_EXAMPLE: ({'examples': ('string', [None])}, {'logits': ('float32', [None, s, s, c])}),
        TRANSFORM_FEATURES: ({'examples': ('string', [None])},
                             {keys.transformed_name(keys.IMAGE_KEY): ('float32', [None, s, s, keys.IMAGE_CHANNELS]),
                              keys.transformed_name(keys.MASK_KEY): ('int64', [None, s, s, 1])}),
    }


def error_reason(error: tf.errors.OpError) -> str:
    """The line of a TensorFlow error that says what was wrong with the request, e.g. 'Invalid JPEG data ...'.

    Graph errors start with 'Graph execution error:' and the failing node; the reason is the line before the
    '[[{{node ...}}]]' trailer.
    """
    lines = [line.strip() for line in (error.message or '').splitlines() if line.strip()]
    reasons = [line for line in lines if not line.startswith(('Graph execution error', 'Detected at node', '<stack',
                                                              '[[', 'File '))]
    reason = reasons[-1] if reasons else (lines[0] if lines else type(error).__name__)
    return re.sub(r'^\{\{function_node [^}]*\}\}\s*', '', reason)[:300]


def image_size(encoded: tf.Tensor) -> tf.Tensor:
    """[height, width] int32 of one encoded image, reading only the header of a JPEG."""
    return tf.cond(tf.io.is_jpeg(encoded),
                   lambda: tf.image.extract_jpeg_shape(encoded)[:2],
                   lambda: tf.shape(tf.io.decode_image(encoded, channels=3, expand_animations=False))[:2])


def full_size_masks(probabilities: tf.Tensor, sizes: tf.Tensor) -> tf.Tensor:
    """Class ids at each image's own size: probabilities resized bilinearly, then argmax, padded to the largest.

    Args:
      probabilities: float [B, S, S, C] at model resolution.
      sizes: int32 [B, 2], each image's (height, width).

    Returns:
      uint8 [B, H_max, W_max]; PADDING_CLASS beyond each image's own size.
    """
    largest = tf.reduce_max(sizes, axis=0)

    def one(args):
        probs, size = args
        mask = tf.cast(tf.argmax(tf.image.resize(probs, size, method='bilinear'), axis=-1), tf.uint8)
        return tf.pad(mask, [[0, largest[0] - size[0]], [0, largest[1] - size[1]]], constant_values=PADDING_CLASS)

    return tf.map_fn(one, (probabilities, sizes), fn_output_signature=tf.TensorSpec([None, None], tf.uint8))


def _raw_feature_spec_without_label(tf_transform_output: tft.TFTransformOutput) -> Dict:
    spec = dict(tf_transform_output.raw_feature_spec())
    spec.pop(keys.MASK_KEY, None)
    return spec


def flip_averaged(predict: Callable[[tf.Tensor], tf.Tensor], images: tf.Tensor) -> tf.Tensor:
    """The mean of `predict`'s logits for the images and for their mirror images, mirrored back (test-time
    flip augmentation: twice the compute). `predict` maps a [B, H, W, C] batch to [B, H, W, classes]."""
    mirrored = tf.reverse(predict(tf.reverse(images, axis=[2])), axis=[2])
    return (predict(images) + mirrored) / 2.0


def segment_logits(model: keras.Model, images: tf.Tensor, test_time_flip: bool = False) -> tf.Tensor:
    """The U-Net's logits for transformed images; with `test_time_flip`, averaged with the mirror images'
    (`flip_averaged`)."""
    def predict(batch):
        return model(batch, training=False)
    return flip_averaged(predict, images) if test_time_flip else predict(images)


def make_signatures(model: keras.Model, tf_transform_output: tft.TFTransformOutput,
                    test_time_flip: bool = False) -> Dict:
    """Builds the four serving functions of the SavedModel.

    Args:
      model: trained U-Net taking `image_xf`.
      tf_transform_output: Transform's output.
      test_time_flip: average each prediction with that of the mirrored image (`segment_logits`).

    Returns:
      {signature name: tf.function with an input signature}.
    """
    model.tft_layer = tf_transform_output.transform_features_layer()
    image_xf = keys.transformed_name(keys.IMAGE_KEY)

    def probabilities_of(image_bytes):
        empty = tf.reduce_any(tf.equal(tf.strings.length(image_bytes), 0))
        with tf.control_dependencies([tf.debugging.Assert(
                tf.logical_not(empty), ['serving_default: a request holds empty image bytes'])]):
            raw = {keys.IMAGE_KEY: tf.reshape(image_bytes, [-1, 1])}
        return tf.nn.softmax(segment_logits(model, model.tft_layer(raw)[image_xf], test_time_flip), axis=-1)

    @tf.function(autograph=False, input_signature=[tf.TensorSpec([None], tf.string, name=IMAGE_BYTES_INPUT)])
    def serve_image_bytes(image_bytes):
        probabilities = probabilities_of(image_bytes)
        return {'mask': tf.cast(tf.argmax(probabilities, axis=-1), tf.uint8), 'probabilities': probabilities}

    @tf.function(autograph=False, input_signature=[tf.TensorSpec([None], tf.string, name=IMAGE_BYTES_INPUT)])
    def serve_full_size(image_bytes):
        probabilities = probabilities_of(image_bytes)
        sizes = tf.map_fn(image_size, image_bytes, fn_output_signature=tf.TensorSpec([2], tf.int32))
        return {'mask': full_size_masks(probabilities, sizes), 'height': sizes[:, 0], 'width': sizes[:, 1]}

    @tf.function(autograph=False, input_signature=[tf.TensorSpec([None], tf.string, name='examples')])
    def serve_tf_examples(serialized):
        raw = tf.io.parse_example(serialized, _raw_feature_spec_without_label(tf_transform_output))
        return {'logits': segment_logits(model, model.tft_layer(raw)[image_xf], test_time_flip)}

    @tf.function(autograph=False, input_signature=[tf.TensorSpec([None], tf.string, name='examples')])
    def transform_features(serialized):
        raw = tf.io.parse_example(serialized, tf_transform_output.raw_feature_spec())
        return model.tft_layer(raw)

    # The functions themselves, not their concrete functions: SavedModel refuses concrete functions that read
    # distributed variables (a model trained under MultiWorkerMirroredStrategy); each has an input signature.
    return {
        SERVING_DEFAULT: serve_image_bytes,
        SERVING_FULL_SIZE: serve_full_size,
        SERVING_TF_EXAMPLE: serve_tf_examples,
        TRANSFORM_FEATURES: transform_features,
    }


def export_serving_model(model: keras.Model, tf_transform_output: tft.TFTransformOutput, export_dir: str,
                         test_time_flip: bool = False) -> None:
    """Saves `model` with its signatures and without optimizer state.

    Args:
      model: trained U-Net.
      tf_transform_output: Transform's output.
      export_dir: SavedModel directory (the Trainer's serving_model_dir).
      test_time_flip: every signature and `segment` average with the mirrored image (`segment_logits`); the
        Keras model itself (its weights, what a warm start loads) is the same either way.
    """
    signatures = make_signatures(model, tf_transform_output, test_time_flip)
    image_spec = tf.TensorSpec([None, *model.input_shape[1:]], tf.float32, name=keys.transformed_name(keys.IMAGE_KEY))
    setattr(model, SEGMENT_FUNCTION, tf.function(lambda image: segment_logits(model, image, test_time_flip),
                                                 input_signature=[image_spec], autograph=False))
    model.save(export_dir, save_format='tf', signatures=signatures, include_optimizer=False, save_traces=False)


def segment_function(loaded):
    """The exported segmenter (transformed images -> logits, the test-time flip included where the model was
    exported with it) of a SavedModel loaded with `tf.saved_model.load`.

    Models exported before `segment` existed are called as the restored Keras object they are.
    """
    segment = getattr(loaded, SEGMENT_FUNCTION, None)
    return segment if segment is not None else (lambda images: loaded(images, training=False))
