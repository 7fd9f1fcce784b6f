"""Where a training step's time goes: TF profiler time and tfprof FLOPs per op type, against the machine's own
matrix-multiply rate.

`profile_train_function` runs a Keras train function a few steps under `tf.profiler`, reads the trace
(`.xplane.pb`) for each op's duration, and counts each executed op's FLOPs in the traced graph with tfprof.
`matmul_gflops` measures what one large matrix multiply reaches on this CPU in a precision: the friendliest
kernel there is, so a step whose convolutions come near it is bound by arithmetic, not by overheads.
"""

import collections
import glob
import os
import re
import time
from typing import Dict, List, Tuple

import numpy as np
import tensorflow as tf
import tf_keras as keras
from tensorflow.tsl.profiler.protobuf import xplane_pb2

from bench import timing

# An executed op's trace event is named "<op name>:<op type>", sometimes followed by "#key=value,...#".
_OP_EVENT = re.compile(r'^(?P<name>[^#:]+):(?P<type>[A-Za-z0-9_]+)(#.*#)?$')


def matmul_gflops(dtype: tf.DType = tf.float32, size: int = 2048, repeats: int = 8) -> float:
    """GFLOP/s of the best of `repeats` [size, size] x [size, size] matrix multiplies in `dtype`."""
    a = tf.random.uniform([size, size], dtype=tf.float32)
    a, b = tf.cast(a, dtype), tf.cast(tf.transpose(a), dtype)
    multiply = tf.function(lambda x, y: tf.reduce_sum(tf.cast(tf.linalg.matmul(x, y)[0, :1], tf.float32)))
    seconds = timing.seconds_in_turn({'matmul': lambda: multiply(a, b).numpy()}, repeats)['matmul']
    return 2.0 * size ** 3 / min(seconds) / 1e9


def transposed_convolution_rates(model, batch_size: int, repeats: int = 5) -> List[Dict]:
    """GFLOP/s of each `Conv2DTranspose` of `model` timed alone: forward, input and kernel gradients (three
    passes of 2 x B x H x W x in x out x 9 FLOPs each) on random inputs of its shape, the median of `repeats`.
    A `SplitSkipConv2DTranspose` takes the input gradient of its decoder features only, as training with a
    frozen encoder does.

    Alone, a layer has both cores to itself; in a step the executor may run two ops at once, so this is the
    rate the convolution kernels reach, not their share of a step.
    """
    rows = []
    layers = [m for m in model.submodules if isinstance(m, keras.layers.Conv2DTranspose)]
    for layer in sorted(layers, key=lambda layer: _input_shapes(layer)[0][1]):
        twin = type(layer).from_config(layer.get_config())
        shapes = _input_shapes(layer)
        inputs = [tf.random.uniform([batch_size, *shape[1:]]) for shape in shapes]
        twin.build([x.shape for x in inputs] if len(inputs) > 1 else inputs[0].shape)

        @tf.function(autograph=False)  # plain graph code: tracing stays fast
        def passes(xs, twin=twin):
            with tf.GradientTape() as tape:
                tape.watch(xs[0])
                loss = tf.reduce_sum(tf.cast(twin(xs if len(xs) > 1 else xs[0]), tf.float32) ** 2)
            return tape.gradient(loss, [xs[0], twin.kernel])
        seconds = timing.seconds_in_turn({layer.name: lambda: [t.numpy() for t in passes(inputs)]},
                                         repeats)[layer.name]
        _, height, width, _ = shapes[0]
        channels = sum(shape[-1] for shape in shapes)
        # forward and kernel gradient over every input channel; the input gradient of the first input only
        gflop = 2 * batch_size * height * width * twin.filters * 9 * (2 * channels + shapes[0][-1]) / 1e9
        median = float(np.median(seconds))
        rows.append({'layer': layer.name, 'input_shape': [height, width, channels], 'filters': twin.filters,
                     'gflop': gflop, 'seconds': median, 'gflops': gflop / median})
    return rows


def _input_shapes(layer: keras.layers.Layer) -> List[Tuple]:
    """A layer's input shapes: one, or two for `SplitSkipConv2DTranspose` (decoder features, skip)."""
    return list(layer.input_shape) if isinstance(layer.input_shape, list) else [layer.input_shape]


def op_flops(graph: tf.Graph) -> Dict[str, float]:
    """FLOPs of each op of a graph with static shapes, by op name, as tfprof counts them (ops it has no count for
    are left out)."""
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options['output'] = 'none'
    counted: Dict[str, float] = {}

    def walk(node):
        if node.float_ops:
            counted[node.name] = float(node.float_ops)
        for child in node.children:
            walk(child)
    walk(tf.compat.v1.profiler.profile(graph, cmd='scope', options=options))
    return counted


def op_seconds(xplane_path: str) -> Dict[Tuple[str, str], float]:
    """Summed duration in seconds of each executed op, by (op name, op type), from a profiler trace."""
    space = xplane_pb2.XSpace.FromString(open(xplane_path, 'rb').read())
    seconds: Dict[Tuple[str, str], float] = collections.defaultdict(float)
    for plane in space.planes:
        if plane.name != '/host:CPU':
            continue
        for line in plane.lines:
            for event in line.events:
                match = _OP_EVENT.match(plane.event_metadata[event.metadata_id].name)
                if match:
                    seconds[(match['name'], match['type'])] += event.duration_ps / 1e12
    return dict(seconds)


def profile_train_function(function, iterator, steps: int, log_dir: str, top: int = 8) -> Dict:
    """Profiles `steps` calls of a traced Keras train function (`model.make_train_function()`, called once).

    Returns the wall seconds per step, the op seconds per step (summed over threads: ops that overlap count
    twice), the GFLOP per step of the ops that ran, the step's achieved GFLOP/s (FLOPs over wall time), and
    the `top` op types by time with their share of op time, GFLOP per step and GFLOP/s.
    """
    flops = op_flops(function.get_concrete_function(iterator).graph)
    tf.profiler.experimental.start(log_dir)
    start = time.perf_counter()
    for _ in range(steps):
        function(iterator)['loss'].numpy()
    wall = (time.perf_counter() - start) / steps
    tf.profiler.experimental.stop()
    [trace] = glob.glob(os.path.join(log_dir, 'plugins', 'profile', '*', '*.xplane.pb'))
    by_type: Dict[str, List[float]] = collections.defaultdict(lambda: [0.0, 0.0])
    for (name, op_type), seconds in op_seconds(trace).items():
        by_type[op_type][0] += seconds / steps
        by_type[op_type][1] += flops.get(name, 0.0)
    op_total = sum(seconds for seconds, _ in by_type.values())
    executed_gflop = sum(f for _, f in by_type.values()) / 1e9
    rows = [{'op_type': op_type, 'seconds_per_step': seconds, 'share_of_op_time': seconds / op_total,
             'gflop_per_step': f / 1e9, 'gflops': f / 1e9 / seconds if seconds else 0.0}
            for op_type, (seconds, f) in sorted(by_type.items(), key=lambda item: -item[1][0])]
    return {'wall_s_per_step': wall, 'op_s_per_step': op_total, 'gflop_per_step': executed_gflop,
            'graph_gflop_per_step': sum(flops.values()) / 1e9, 'achieved_gflops': executed_gflop / wall,
            'top_op_types': rows[:top], 'other_op_types_share': sum(r['share_of_op_time'] for r in rows[top:])}
