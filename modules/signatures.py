"""Exports the trained U-Net as a SavedModel with the Transform graph attached.

Signatures:
- `serving_default`: `image_bytes` [B] encoded JPEG/PNG of any size -> `mask` uint8 [B, 128, 128]
  class ids and `probabilities` float32 [B, 128, 128, 3]. Empty or undecodable bytes fail the
  request with InvalidArgumentError naming the problem; no garbage mask is returned.
- `serving_tf_example`: serialized tf.Examples -> `logits`, for TFMA and batch prediction.
- `transform_features`: serialized tf.Examples -> transformed features (what Transform wrote).

All three run the TFT layer, never a re-implementation of preprocessing.
"""

from typing import Dict

import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras

from modules import keys

IMAGE_BYTES_INPUT = 'image_bytes'  # the `_bytes` suffix lets TF Serving / Vertex decode {"b64": ...}
SERVING_TF_EXAMPLE = 'serving_tf_example'
TRANSFORM_FEATURES = 'transform_features'


def _raw_feature_spec_without_label(tf_transform_output: tft.TFTransformOutput) -> Dict:
    spec = dict(tf_transform_output.raw_feature_spec())
    spec.pop(keys.MASK_KEY, None)
    return spec


def make_signatures(model: keras.Model, tf_transform_output: tft.TFTransformOutput) -> Dict:
    """Builds the three serving functions of the SavedModel.

    Args:
      model: trained U-Net taking `image_xf`.
      tf_transform_output: Transform's output.

    Returns:
      {signature name: concrete function}.
    """
    model.tft_layer = tf_transform_output.transform_features_layer()
    image_xf = keys.transformed_name(keys.IMAGE_KEY)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=IMAGE_BYTES_INPUT)])
    def serve_image_bytes(image_bytes):
        empty = tf.reduce_any(tf.equal(tf.strings.length(image_bytes), 0))
        with tf.control_dependencies([tf.debugging.Assert(
                tf.logical_not(empty), ['serving_default: a request holds empty image bytes'])]):
            raw = {keys.IMAGE_KEY: tf.reshape(image_bytes, [-1, 1])}
        logits = model(model.tft_layer(raw)[image_xf], training=False)
        return {'mask': tf.cast(tf.argmax(logits, axis=-1), tf.uint8),
                'probabilities': tf.nn.softmax(logits, axis=-1)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name='examples')])
    def serve_tf_examples(serialized):
        raw = tf.io.parse_example(serialized, _raw_feature_spec_without_label(tf_transform_output))
        return {'logits': model(model.tft_layer(raw)[image_xf], training=False)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name='examples')])
    def transform_features(serialized):
        raw = tf.io.parse_example(serialized, tf_transform_output.raw_feature_spec())
        return model.tft_layer(raw)

    return {
        'serving_default': serve_image_bytes.get_concrete_function(),
        SERVING_TF_EXAMPLE: serve_tf_examples.get_concrete_function(),
        TRANSFORM_FEATURES: transform_features.get_concrete_function(),
    }


def export_serving_model(model: keras.Model, tf_transform_output: tft.TFTransformOutput, export_dir: str) -> None:
    """Saves `model` with its signatures and without optimizer state.

    Args:
      model: trained U-Net.
      tf_transform_output: Transform's output.
      export_dir: SavedModel directory (the Trainer's serving_model_dir).
    """
    signatures = make_signatures(model, tf_transform_output)
    model.save(export_dir, save_format='tf', signatures=signatures, include_optimizer=False)
