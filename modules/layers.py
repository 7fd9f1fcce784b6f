"""Exact rewrites of the U-Net's stride-2 Conv2DTranspose(kernel 3, 'same'): the same function and weights,
computed in a form that trains faster on some hardware.

- `SubPixelConv2DTranspose`: a 2x2 convolution + depth_to_space;
- `GemmConv2DTranspose`: one matrix multiply over the nine kernel taps (the decoder's 4x4 and 8x8 inputs, under
  mixed bfloat16 on AMX);
- `SplitSkipConv2DTranspose`: the logits layer over [decoder output, skip] as the sum of each part's transposed
  convolution with its slice of the kernel, so a frozen encoder's skip needs no input gradient.

Each keeps the stock layer's kernel variable (shape and name), bias and activation, so weights load either way;
`modules.model` chooses them, and the export always uses the stock layer. `stock_conv2d_transpose`,
`split_skip_conv2d_transpose` and `gemm_conv2d_transpose` are the bare functions the benchmarks time.
"""

import tensorflow as tf
import tf_keras as keras


class ExactConv2DTranspose(keras.layers.Conv2DTranspose):
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


class SubPixelConv2DTranspose(ExactConv2DTranspose):
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


class GemmConv2DTranspose(ExactConv2DTranspose):
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


class SplitSkipConv2DTranspose(ExactConv2DTranspose):
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
