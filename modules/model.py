"""`build_unet`: the seed tutorial's U-Net, a MobileNetV2 encoder with a pix2pix-style decoder.

Encoder: MobileNetV2 (alpha 1.0, no top) at IMAGE_SIZE, skip outputs block_1/3/6/13_expand_relu and
block_16_project, frozen unless its weights are random or fine-tuning is asked for. Decoder:
upsample blocks (Conv2DTranspose stride 2, BatchNorm, optional Dropout, ReLU) of 512/256/128/64
filters, each followed by concatenation with the matching skip; a final Conv2DTranspose(NUM_CLASSES, 3,
strides=2) produces logits at full resolution. `copy_weights` moves trained weights between twins
built with different dtype policies (train in bfloat16, serve in float32); whether to train in bfloat16 at all
is `modules.precision`'s decision.

In mixed bfloat16 the decoder and the logits layer compute in bfloat16 and a weightless float32 layer hands
the loss float32 logits; a frozen encoder computes in float32. Both measured on a CPU with AMX
(`bench/train_speed.py`): the logits layer (3 filters) took 0.14 s of a 0.6 s step in float32,
0.05 s in bfloat16; a frozen encoder only runs forward, and in float32 Grappler fuses each convolution
with its BatchNorm and ReLU6 into one oneDNN kernel, which it leaves apart in bfloat16.
"""

import contextlib
import logging
import os
from typing import Optional, Sequence

import tf_keras as keras

from modules import classes, keys
from modules.layers import GemmConv2DTranspose, SplitSkipConv2DTranspose, SubPixelConv2DTranspose, ExactConv2DTranspose

SKIP_LAYERS = ('block_1_expand_relu', 'block_3_expand_relu', 'block_6_expand_relu',
               'block_13_expand_relu', 'block_16_project')
DECODER_FILTERS = (512, 256, 128, 64)
# GemmConv2DTranspose beats the stock layer on the decoder's 4x4 and 8x8 inputs only (bench.upsample_rewrites).
GEMM_MAX_INPUT = 8
KERAS_WEIGHTS_FILE = 'mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_{size}_no_top.h5'
KERAS_WEIGHTS_URL = 'https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v2/' + KERAS_WEIGHTS_FILE


def _transpose_conv(subpixel: bool, gemm: bool = False):
    if subpixel and gemm:
        raise ValueError('Choose one form of the transposed convolutions: subpixel or gemm, not both')
    if gemm:
        return GemmConv2DTranspose
    return SubPixelConv2DTranspose if subpixel else keras.layers.Conv2DTranspose


def upsample_block(filters: int, size: int, dropout: float = 0.0, name: str = None,
                   subpixel: bool = False, gemm: bool = False) -> keras.Sequential:
    """pix2pix's upsample: Conv2DTranspose(stride 2) -> BatchNorm -> [Dropout] -> ReLU.

    Args:
      filters: output channels.
      size: kernel size.
      dropout: dropout rate; 0 adds no Dropout layer.
      name: layer name.
      subpixel: compute the transposed convolution as `SubPixelConv2DTranspose` (same function and weights).
      gemm: compute it as `GemmConv2DTranspose` (same function and weights).

    Returns:
      The block, doubling height and width.
    """
    layers = [
        _transpose_conv(subpixel, gemm)(filters, size, strides=2, padding='same', use_bias=False,
                                  kernel_initializer=keras.initializers.RandomNormal(0.0, 0.02)),
        keras.layers.BatchNormalization(),
    ]
    if dropout:
        layers.append(keras.layers.Dropout(dropout))
    layers.append(keras.layers.ReLU())
    return keras.Sequential(layers, name=name)


def _encoder_weights(encoder_weights: str, image_size: int):
    if encoder_weights == 'none':
        return None
    if encoder_weights == 'imagenet':
        return 'imagenet'
    if not os.path.isfile(encoder_weights):
        raise FileNotFoundError(
            f'Encoder weights file {encoder_weights!r} not found. It is the Keras file '
            f'{KERAS_WEIGHTS_FILE.format(size=image_size)}; download it from '
            f'{KERAS_WEIGHTS_URL.format(size=image_size)} (or copy ~/.keras/models/ from a machine '
            f"that has run MobileNetV2(weights='imagenet')), or use encoder_weights='none'.")
    return encoder_weights


def build_unet(image_size: int = classes.DEFAULT_IMAGE_SIZE, num_classes: int = classes.OXFORD_IIIT_PET.num_classes, *,
               encoder_weights: str = 'none', train_encoder: bool = False, dropout: float = 0.0,
               decoder_filters: Sequence[int] = DECODER_FILTERS,
               batchnorm_momentum: Optional[float] = None, mixed_bfloat16: bool = False,
               subpixel: bool = False, gemm_upsampling: bool = False,
               split_skip_logits: bool = False) -> keras.Model:
    """Builds the U-Net; the model maps float images in [0, 1] to per-pixel class logits.

    Args:
      image_size: input height and width (a multiple of 32).
      num_classes: output channels (logits).
      encoder_weights: 'imagenet', 'none' (random init) or a local .h5 path of MobileNetV2 weights.
      train_encoder: fine-tune the encoder; always true for random weights.
      dropout: dropout rate in the decoder blocks.
      decoder_filters: filters of the four upsample blocks.
      batchnorm_momentum: momentum of every BatchNorm's moving statistics; None keeps Keras'
        (0.999 in MobileNetV2, 0.99 in the decoder). Training from random weights on a few hundred
        steps needs a lower one (0.9), or inference uses statistics that have barely moved.
      mixed_bfloat16: compute in mixed bfloat16 (a frozen encoder stays float32, the logits come out float32).
      subpixel: every transposed convolution as `SubPixelConv2DTranspose`.
      gemm_upsampling: the decoder blocks whose input is at most GEMM_MAX_INPUT a side compute their transposed
        convolution as `GemmConv2DTranspose`, where it is faster under bfloat16 on AMX.
      split_skip_logits: the logits layer takes the last decoder block's output and the first skip apart
        (`SplitSkipConv2DTranspose`) instead of their concatenation.

    Returns:
      Uncompiled Keras model with input `image_xf` [B, S, S, 3] and logits [B, S, S, num_classes].
    """
    if image_size % 32:
        raise ValueError(f'image_size must be a multiple of 32 for MobileNetV2 skips, got {image_size}')
    if subpixel and split_skip_logits:
        raise ValueError('Choose one form of the logits layer: subpixel or split_skip_logits, not both')
    with _dtype_policy('mixed_bfloat16' if mixed_bfloat16 else 'float32'):
        unet = _build(image_size, num_classes, encoder_weights, train_encoder, dropout, decoder_filters, subpixel,
                      gemm_upsampling, split_skip_logits, mixed_bfloat16)
    if batchnorm_momentum is not None:
        for layer in all_layers(unet):
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.momentum = batchnorm_momentum
    return unet


@contextlib.contextmanager
def _dtype_policy(name: str):
    # Keras reads the global policy when layers are created; restore it so nothing else is affected.
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(name)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def _build(image_size, num_classes, encoder_weights, train_encoder, dropout, decoder_filters,
           subpixel, gemm_upsampling, split_skip_logits, mixed_bfloat16) -> keras.Model:
    trainable_encoder = train_encoder or encoder_weights == 'none'
    with contextlib.nullcontext() if trainable_encoder else _dtype_policy('float32'):
        base = keras.applications.MobileNetV2(input_shape=[image_size, image_size, 3], include_top=False,
                                              weights=_encoder_weights(encoder_weights, image_size), alpha=1.0)
        encoder = keras.Model(base.input, [base.get_layer(name).output for name in SKIP_LAYERS], name='encoder')
    encoder.trainable = trainable_encoder
    if encoder_weights == 'none':
        logging.warning('Encoder weights: none. The MobileNetV2 encoder starts from random weights and is '
                        'trained with the decoder (frozen random features would be useless).')

    inputs = keras.Input([image_size, image_size, 3], name=keys.transformed_name(keys.IMAGE_KEY))
    skips = encoder(inputs)
    x = skips[-1]
    last = len(decoder_filters) - 1
    for index, (filters, skip) in enumerate(zip(decoder_filters, reversed(skips[:-1]))):
        gemm = gemm_upsampling and x.shape[1] <= GEMM_MAX_INPUT
        x = upsample_block(filters, 3, dropout, name=f'upsample_{index}', subpixel=subpixel, gemm=gemm)(x)
        if index < last:
            x = keras.layers.Concatenate(name=f'skip_{index}')([x, skip])
    # The last skip joins the logits layer, concatenated or taken apart.
    if split_skip_logits:
        logits = SplitSkipConv2DTranspose(num_classes, 3, strides=2, padding='same', name='logits')([x, skip])
    else:
        x = keras.layers.Concatenate(name=f'skip_{last}')([x, skip])
        logits = _transpose_conv(subpixel)(num_classes, 3, strides=2, padding='same', name='logits')(x)
    if mixed_bfloat16:
        logits = keras.layers.Activation('linear', dtype='float32', name='logits_float32')(logits)
    return keras.Model(inputs, logits, name='unet')


def all_layers(layer: keras.layers.Layer):
    """`layer` and every layer inside it, nested models included, depth first."""
    yield layer
    for child in getattr(layer, 'layers', []):
        yield from all_layers(child)


def has_rewritten_layers(model: keras.Model) -> bool:
    """True when a transposed convolution of `model` is computed by one of this module's exact rewrites."""
    return any(isinstance(layer, ExactConv2DTranspose) for layer in all_layers(model))


def computes_in_float32(model: keras.Model) -> bool:
    """True when every layer of `model` computes in float32 (no mixed-precision policy anywhere)."""
    return all(layer.compute_dtype == 'float32' for layer in all_layers(model))


def _leaf_layers(layer: keras.layers.Layer, path: str = ''):
    """(path, layer) for every layer without sublayers; the path names the enclosing blocks."""
    path = f'{path}/{layer.name}' if path else layer.name
    children = getattr(layer, 'layers', None)
    if not children:
        return [(path, layer)]
    return [leaf for child in children for leaf in _leaf_layers(child, path)]


def copy_weights(source: keras.Model, target: keras.Model) -> None:
    """Copies every weight of `source` into `target`, a twin built with other dtype policies or trainability.

    Copied layer by layer, so a frozen encoder in one twin and a trainable one in the other (which
    order `Model.get_weights()` differently) still match.

    Args:
      source: the trained model.
      target: a model built by the same `build_unet` call except for `mixed_bfloat16`/`train_encoder`.

    Raises:
      ValueError: naming the first layer whose type or weight shapes differ.
    """
    # Weightless layers (a mixed model's float32 cast of its logits) have nothing to copy.
    sources = [leaf for leaf in _leaf_layers(source) if leaf[1].weights]
    targets = [leaf for leaf in _leaf_layers(target) if leaf[1].weights]
    if len(sources) != len(targets):
        raise ValueError(f'Cannot copy weights: {len(sources)} layers vs {len(targets)}')
    for (path, src), (_, dst) in zip(sources, targets):
        shapes = [tuple(w.shape) for w in src.weights], [tuple(w.shape) for w in dst.weights]
        related = isinstance(src, type(dst)) or isinstance(dst, type(src))  # e.g. SubPixelConv2DTranspose
        if not related or shapes[0] != shapes[1]:
            raise ValueError(f'Cannot copy weights: layer {path} has weights {shapes[0]} here, {shapes[1]} there')
        dst.set_weights(src.get_weights())
