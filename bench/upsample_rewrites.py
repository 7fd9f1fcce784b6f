"""Two exact rewrites of the decoder's transposed convolutions, timed against the stock layer.

    .venv/bin/python -m bench.upsample_rewrites            # ~1.5 min on 2 CPU cores
    .venv/bin/python -m bench.upsample_rewrites --dtype bfloat16     # as under mixed bfloat16

- `gemm`: one matrix multiply of the input with all nine kernel taps, then a shift-and-add of the tap outputs
  into the four output phases (`depth_to_space`): the same FLOPs as `Conv2DTranspose`, all in one GEMM
  (`modules.layers.GemmConv2DTranspose`, which `gemm_upsampling` puts on the decoder's 4x4 and 8x8 inputs).
- `split_skip`: a layer that takes [decoder features, skip connection] convolves each part with its slice of
  the kernel and adds, instead of convolving their concatenation; with a frozen encoder the skip part needs
  no input gradient, so ~16% of the decoder's convolution FLOPs are never computed
  (`modules.layers.SplitSkipConv2DTranspose`, which `split_skip_logits` puts on the logits layer).

Each is timed per layer of the U-Net (forward, input gradient of the decoder part, kernel gradient; batch 64)
in turn with the stock layer, on the shapes `run_fn`'s model has. Writes `bench/results/upsample-rewrites-<date>`
`.json` and `.md`, with the CPU kind.
"""

import os

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')

import argparse  # noqa: E402
from typing import Dict, List, Optional, Sequence  # noqa: E402

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402

from bench import results_file, timing  # noqa: E402
from bench.results_file import RESULTS_DIR  # noqa: E402
from modules import layers as rewrites, model as model_lib  # noqa: E402


# Conv2DTranspose(kernel 3, stride 2, 'same', no bias) as Keras computes it; kernel [3, 3, out, in].
stock = rewrites.stock_conv2d_transpose

# The same function as `stock`: one GEMM over the nine taps, a shift-and-add into the output phases.
gemm = rewrites.gemm_conv2d_transpose

# `stock` of the concatenation [decoder, skip], as the sum of each part's convolution with its slice.
split_skip = rewrites.split_skip_conv2d_transpose


def decoder_shapes(image_size: int = 128) -> List[Dict]:
    """Each transposed convolution of the U-Net: input size, decoder and skip channels, filters."""
    unet = model_lib.build_unet(image_size)
    layers = sorted((m for m in unet.submodules if isinstance(m, keras.layers.Conv2DTranspose)),
                    key=lambda layer: layer.input_shape[1])
    shapes, previous_filters = [], None
    for layer in layers:
        _, size, _, channels = layer.input_shape
        decoder = previous_filters if previous_filters is not None else channels
        shapes.append({'layer': layer.name, 'size': size, 'decoder_channels': decoder,
                       'skip_channels': channels - decoder, 'filters': layer.filters})
        previous_filters = layer.filters
    return shapes


def time_layer(shape: Dict, batch_size: int, repeats: int, dtype: str = 'float32') -> Dict:
    """Median seconds of forward + decoder-input gradient + kernel gradient for each form, taken in turn.

    In bfloat16 as a mixed-precision layer computes: activations in bfloat16, the float32 kernel cast to it."""
    decoder = tf.random.uniform([batch_size, shape['size'], shape['size'], shape['decoder_channels']], dtype=dtype)
    skip = tf.random.uniform([batch_size, shape['size'], shape['size'], shape['skip_channels']], dtype=dtype)
    variable = tf.Variable(tf.random.normal([3, 3, shape['filters'],
                                             shape['decoder_channels'] + shape['skip_channels']], stddev=0.05))

    def passes(forward):
        @tf.function(autograph=False)  # plain graph code: tracing stays fast
        def run():
            with tf.GradientTape() as tape:
                tape.watch(decoder)
                loss = tf.reduce_sum(tf.square(tf.cast(forward(tf.cast(variable, dtype)), tf.float32)))
            return tape.gradient(loss, [decoder, variable])
        return run
    forms = {'stock': passes(lambda kernel: stock(tf.concat([decoder, skip], -1), kernel)),
             'gemm': passes(lambda kernel: gemm(tf.concat([decoder, skip], -1), kernel))}
    if shape['skip_channels']:
        forms['split_skip'] = passes(lambda kernel: split_skip(decoder, skip, kernel))
    seconds = timing.seconds_in_turn({name: lambda run=run: [t.numpy() for t in run()] for name, run in forms.items()},
                                     repeats)
    row = dict(shape, **{f'{name}_s': float(np.median(s)) for name, s in seconds.items()})
    for name in forms:
        row[f'{name}_speedup'] = row['stock_s'] / row[f'{name}_s']
    return row


def markdown(results: Dict) -> str:
    lines = [f'# Exact rewrites of the transposed convolutions, {results["date"]}', '',
             f'Machine: {results["machine"]}. Command: `{results["command"]}`.', '',
             'Median seconds of forward, decoder-input gradient and kernel gradient, batch '
             f'{results["batch_size"]}, computed in {results["dtype"]}; speed-up = stock seconds / rewrite seconds.', '',
             '| layer | input | decoder + skip channels | filters | stock (s) | gemm (s) | x stock | split_skip (s) '
             '| x stock |', '|---|---|---|---|---|---|---|---|---|']
    for r in results['layers']:
        split = (f'{r["split_skip_s"]:.3f} | {r["split_skip_speedup"]:.2f}' if 'split_skip_s' in r else '- | -')
        lines.append(f'| {r["layer"]} | {r["size"]}x{r["size"]} | {r["decoder_channels"]} + {r["skip_channels"]} | '
                     f'{r["filters"]} | {r["stock_s"]:.3f} | {r["gemm_s"]:.3f} | {r["gemm_speedup"]:.2f} | {split} |')
    totals = results['totals']
    lines += ['', f'All layers: gemm {totals["gemm_speedup"]:.2f}x the stock layers; split_skip on the layers with a '
              f'skip {totals["split_skip_speedup"]:.2f}x.']
    return '\n'.join(lines) + '\n'


def main(argv: Optional[Sequence[str]] = None) -> Dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--batch_size', type=int, default=64)
    parser.add_argument('--repeats', type=int, default=5, help='timed rounds per layer (default 5)')
    parser.add_argument('--dtype', choices=('float32', 'bfloat16'), default='float32',
                        help='compute dtype; bfloat16 as under mixed precision (float32 kernels cast to it)')
    parser.add_argument('--results_dir', default=RESULTS_DIR)
    args = parser.parse_args(argv)
    rows = []
    for shape in decoder_shapes():
        rows.append(time_layer(shape, args.batch_size, args.repeats, args.dtype))
        print(f'{shape["layer"]}: stock {rows[-1]["stock_s"]:.3f} s, gemm {rows[-1]["gemm_s"]:.3f} s', flush=True)
    with_skip = [r for r in rows if 'split_skip_s' in r]
    results = {**results_file.header('bench.upsample_rewrites', argv), 'batch_size': args.batch_size,
               'dtype': args.dtype, 'layers': rows,
               'totals': {'gemm_speedup': sum(r['stock_s'] for r in rows) / sum(r['gemm_s'] for r in rows),
                          'split_skip_speedup': (sum(r['stock_s'] for r in with_skip)
                                                 / sum(r['split_skip_s'] for r in with_skip))}}
    name = 'upsample-rewrites' + ('' if args.dtype == 'float32' else f'-{args.dtype}')
    results_file.write(results, args.results_dir, markdown(results), name=name)
    return results


if __name__ == '__main__':
    main()
