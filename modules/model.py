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

import tensorflow as tf
import tf_keras as keras

from modules import classes, keys

SKIP_LAYERS = ('block_1_expand_relu', 'block_3_expand_relu', 'block_6_expand_relu',
               'block_13_expand_relu', 'block_16_project')
DECODER_FILTERS = (512, 256, 128, 64)
# GemmConv2DTranspose beats the stock layer on the decoder's 4x4 and 8x8 inputs only (bench.upsample_rewrites).
GEMM_MAX_INPUT = 8
KERAS_WEIGHTS_FILE = 'mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_{size}_no_top.h5'
KERAS_WEIGHTS_URL = 'https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v2/' + KERAS_WEIGHTS_FILE


class _ExactConv2DTranspose(keras.layers.Conv2DTranspose):
    """Conv2DTranspose(kernel 3, stride 2, 'same') computed another way: the stock layer's kernel variable
    (shape [3, 3, filters, in_channels] and name), bias and activation, so weights load either way; a subclass
    says how in `transposed`."""

    def __init__(self, filters: int, kernel_size=3, strides=2, padding='same', **kwargs):
        if kernel_size not in (3, (3, 3)) or strides not in (2, (2, 2)) or padding != 'same':
            raise ValueError(f'{type(self).__name__} is exact for kernel_size=3, strides=2, padding="same" only; '
                             f'got {kernel_size}, {strides}, {padding!r}')
        super().__init__(filters, 3, strides=2, padding='same', **kwargs)

    def transposed(self, inputs: tf.Tensor) -> tf.Tensor:
        raise NotImplementedError

    def call(self, inputs):
        outputs = self.transposed(inputs)
        if self.use_bias:
            outputs = tf.nn.bias_add(outputs, self.bias)
        return self.activation(outputs) if self.activation is not None else outputs


class SubPixelConv2DTranspose(_ExactConv2DTranspose):
    """Conv2DTranspose(kernel 3, stride 2, 'same') computed as a 2x2 convolution and `depth_to_space`.

    The same function with the same weights: the kernel variable keeps Conv2DTranspose's shape
    [3, 3, filters, in_channels] and name, so weights saved from a model with the stock layer load unchanged.
    Each step rearranges it into the sub-pixel kernel [2, 2, in_channels, 4 x filters]. Why it is exact:
    with stride 2 and 'same' padding, output row 2m takes kernel row 0 from input row m and kernel row 2 from
    row m-1, and output row 2m+1 takes kernel row 1 from row m (likewise for columns); so a 2x2 window over
    rows m-1..m (input padded by one row and column at the top and left) computes all four output phases of
    (m, n) at once, one block of `filters` channels per phase, and `depth_to_space` puts each phase in place.
    """

    # _TAPS[phase][window tap] = kernel index; 3 is an appended zero row (phase 1 takes nothing from m-1).
    _TAPS = ((2, 0), (3, 1))

    def subpixel_kernel(self) -> tf.Tensor:
        """[2, 2, in_channels, 4 * filters] from the [3, 3, filters, in_channels] kernel."""
        kernel = tf.convert_to_tensor(self.kernel)
        zero_row = tf.zeros_like(kernel[:1])
        kernel = tf.concat([kernel, zero_row], axis=0)                        # [4, 3, out, in]
        kernel = tf.concat([kernel, tf.zeros_like(kernel[:, :1])], axis=1)    # [4, 4, out, in]
        kernel = tf.gather(kernel, self._TAPS, axis=0)                        # [a, ty, 4, out, in]
        kernel = tf.gather(kernel, self._TAPS, axis=2)                        # [a, ty, b, tx, out, in]
        kernel = tf.transpose(kernel, [1, 3, 5, 0, 2, 4])                     # [ty, tx, in, a, b, out]
        return tf.reshape(kernel, [2, 2, kernel.shape[2], 4 * self.filters])

    def transposed(self, inputs: tf.Tensor) -> tf.Tensor:
        padded = tf.pad(inputs, [[0, 0], [1, 0], [1, 0], [0, 0]])
        phases = tf.nn.conv2d(padded, self.subpixel_kernel(), strides=1, padding='VALID')
        return tf.nn.depth_to_space(phases, 2)


class GemmConv2DTranspose(_ExactConv2DTranspose):
    """Conv2DTranspose(kernel 3, stride 2, 'same') computed as one matrix multiply over the nine kernel taps.

    The same function with the same kernel variable as the stock layer, so weights saved with either layer load
    into the other. Each input pixel times the kernel as a [in_channels, 9 x filters] matrix gives all
    nine taps' contributions at once; the output phases then gather them as the sub-pixel layer's comment
    says (phase 0 of a row: kernel row 0 from input row m, row 2 from row m-1; phase 1: row 1 from row m), done
    as a shift and an add over rows, then over columns, and `depth_to_space` puts the four phases in place.
    Same FLOPs as the stock layer, all in the GEMM. Why: on AMX, oneDNN's transposed convolution of a small
    input with many channels (the decoder's 4x4 and 8x8 blocks) runs its weight gradient far below the
    matrix-multiply rate, and this form is 1.7-1.9x faster there in bfloat16; on the larger inputs its
    element-wise shift-and-add costs more than it saves, and in float32 it is no faster
    (`bench.upsample_rewrites`).
    """

    def transposed(self, inputs: tf.Tensor) -> tf.Tensor:
        return gemm_conv2d_transpose(inputs, tf.convert_to_tensor(self.kernel))


class SplitSkipConv2DTranspose(_ExactConv2DTranspose):
    """Conv2DTranspose(kernel 3, stride 2, 'same') of the concatenation [decoder features, skip connection],
    taking the two apart: each part's transposed convolution with its slice of the kernel, summed.

    The same function with the same kernel variable (shape [3, 3, filters, decoder + skip channels]) as the stock
    layer over the concatenated input, so weights load either way. Why: a convolution is linear in its input
    channels, and with a frozen encoder the skip part needs no input gradient, which the stock layer computes
    for the whole concatenation and then drops; nor is the concatenation made, nor its gradient sliced. On the
    logits layer (64x64 input, 64 + 96 channels, 3 filters) a training step with a frozen encoder is 2-5% faster
    on AMX (`bench.train_speed`), and that layer alone 1.65x in float32 on the AMD EPYC
    (`bench.upsample_rewrites`); with a trained encoder it is neither faster nor slower. Called on [decoder, skip].
    """

    def __init__(self, filters: int, kernel_size=3, strides=2, padding='same', **kwargs):
        super().__init__(filters, kernel_size, strides, padding, **kwargs)
        self.input_spec = None  # two inputs; their channels add up to the kernel's

    def build(self, input_shape):
        decoder, skip = (tf.TensorShape(shape) for shape in input_shape)
        self.decoder_channels = int(decoder[-1])
        super().build(decoder[:-1].concatenate([self.decoder_channels + int(skip[-1])]))
        self.input_spec = None

    def transposed(self, inputs) -> tf.Tensor:
        decoder, skip = inputs
        return split_skip_conv2d_transpose(decoder, skip, tf.convert_to_tensor(self.kernel))


def stock_conv2d_transpose(inputs: tf.Tensor, kernel: tf.Tensor) -> tf.Tensor:
    """What Conv2DTranspose(kernel 3, stride 2, 'same', no bias) computes; kernel [3, 3, filters, in]."""
    shape = tf.shape(inputs)
    output_shape = tf.stack([shape[0], 2 * shape[1], 2 * shape[2], kernel.shape[2]])
    return tf.nn.conv2d_transpose(inputs, kernel, output_shape, strides=2, padding='SAME')


def split_skip_conv2d_transpose(decoder: tf.Tensor, skip: tf.Tensor, kernel: tf.Tensor) -> tf.Tensor:
    """`SplitSkipConv2DTranspose`'s computation: `stock_conv2d_transpose` of the concatenation [decoder, skip]
    as the sum of each part's with its slice of the kernel [3, 3, filters, decoder + skip channels]."""
    channels = decoder.shape[-1]
    return stock_conv2d_transpose(decoder, kernel[..., :channels]) + stock_conv2d_transpose(skip, kernel[..., channels:])


def gemm_conv2d_transpose(inputs: tf.Tensor, kernel: tf.Tensor) -> tf.Tensor:
    """`GemmConv2DTranspose`'s computation: inputs [B, H, W, in], kernel [3, 3, filters, in] -> [B, 2H, 2W,
    filters]."""
    filters, channels = kernel.shape[2], kernel.shape[3]
    shape = tf.shape(inputs)
    taps = tf.matmul(tf.reshape(inputs, [-1, channels]),
                     tf.reshape(tf.transpose(kernel, [3, 0, 1, 2]), [channels, 9 * filters]))
    # Channels ordered (kernel row, kernel column, filter): split on the last axis, never strided slices.
    taps = tf.split(tf.reshape(taps, [shape[0], shape[1], shape[2], 9 * filters]), 3, axis=-1)
    phases = []
    for row in (taps[0] + _shifted(taps[2], axis=1), taps[1]):
        columns = tf.split(row, 3, axis=-1)
        phases += [columns[0] + _shifted(columns[2], axis=2), columns[1]]
    return tf.nn.depth_to_space(tf.concat(phases, axis=-1), 2)


def _shifted(x: tf.Tensor, axis: int) -> tf.Tensor:
    """x moved one step along `axis` (1: rows, 2: columns): element m holds x[m - 1], element 0 holds zero."""
    padding = [[0, 0]] * len(x.shape)
    padding[axis] = [1, 0]
    size = [-1] * len(x.shape)
    size[axis] = tf.shape(x)[axis]
    # tf.slice, not indexing: Slice's gradient is a Pad, StridedSlice's a slow StridedSliceGrad in bfloat16.
    return tf.slice(tf.pad(x, padding), [0] * len(x.shape), tf.stack(size))


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
        for layer in _all_layers(unet):
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


def _all_layers(layer: keras.layers.Layer):
    yield layer
    for child in getattr(layer, 'layers', []):
        yield from _all_layers(child)


def has_rewritten_layers(model: keras.Model) -> bool:
    """True when a transposed convolution of `model` is computed by one of this module's exact rewrites."""
    return any(isinstance(layer, _ExactConv2DTranspose) for layer in _all_layers(model))


def computes_in_float32(model: keras.Model) -> bool:
    """True when every layer of `model` computes in float32 (no mixed-precision policy anywhere)."""
    return all(layer.compute_dtype == 'float32' for layer in _all_layers(model))


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
