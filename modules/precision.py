"""The one place that decides whether training computes in mixed bfloat16: configured, settled by the hardware,
or measured where the hardware does not settle it (`choose`).

`native_bfloat16` answers from the hardware where the answer is known: AMX or a GPU of compute
capability 8.0+ (bfloat16 is faster), no bfloat16 instructions at all (emulated, ~10x slower). A CPU with
AVX512-BF16 but no AMX (AMD Zen 4, some Xeons) has bfloat16 dot products but no matrix tiles, and whether
oneDNN's bfloat16 convolutions beat float32 there depends on the CPU and the model; the one benchmark of
that kind (the issue's 43.6 images/s for every side alike) was masked by epochs stalled to a fixed length.
So there the Trainer times a few training steps of the model in both precisions and trains in the faster.
"""

import logging
import time
from typing import Callable, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf
import tf_keras as keras

from modules import classes, cpu, timing

# bfloat16 costs precision, so it has to earn it: at least this much faster, or training stays float32.
MIN_SPEEDUP = 1.05


def worth_bfloat16(float32_step_s: float, bfloat16_step_s: float) -> bool:
    """Whether bfloat16 is worth its precision: only where the float32 step takes MIN_SPEEDUP times as long."""
    return float32_step_s >= MIN_SPEEDUP * bfloat16_step_s


def _stepper(model: keras.Model, batch_size: int) -> Callable[[], None]:
    """One training step of the compiled `model` on a fixed random batch; the first call traces."""
    rng = np.random.default_rng(0)
    size = model.input_shape[1]
    images = rng.random((batch_size, size, size, 3), dtype=np.float32)
    masks = rng.integers(0, classes.OXFORD_IIIT_PET.num_classes, (batch_size, size, size, 1))
    iterator = iter(tf.data.Dataset.from_tensors((images, masks)).repeat())
    function = model.make_train_function()
    return lambda: function(iterator)['loss'].numpy()


def faster_in_bfloat16(build: Callable[[bool], keras.Model], batch_size: int, steps: int = 3) -> bool:
    """Whether the model trains faster in mixed bfloat16 than in float32 on this machine.

    Args:
      build: returns the compiled model, in mixed bfloat16 when given True.
      batch_size: examples per step, as training will take them.
      steps: timed steps per precision, taken in turn after one untimed (tracing) step each.

    Returns:
      Whether bfloat16's median step is worth it against float32's (`worth_bfloat16`).
    """
    start = time.perf_counter()
    seconds = timing.seconds_in_turn({mixed: _stepper(build(mixed), batch_size) for mixed in (False, True)}, steps)
    median = {mixed: float(np.median(values)) for mixed, values in seconds.items()}
    faster = worth_bfloat16(median[False], median[True])
    logging.info('Precision measured (batch %d, %d steps each): float32 %.3f s, mixed bfloat16 %.3f s a step; '
                 'training in %s (the measurement took %.0f s)', batch_size, steps, median[False], median[True],
                 'mixed bfloat16' if faster else 'float32', time.perf_counter() - start)
    return faster


def native_bfloat16(cpu_flags: Optional[Sequence[str]] = None) -> Optional[bool]:
    """Whether mixed bfloat16 makes training faster, where the hardware settles it; None where it does not.

    True for a GPU of compute capability 8.0 or newer, or, without a GPU, a CPU with AMX-BF16 (oneDNN's bfloat16
    convolutions on AMX tiles: over 2x the tutorial's float32 training step, `bench/train_speed.py`). False
    without bfloat16 instructions: emulated, ~10x slower than float32 (measured on an AMD EPYC, Zen 3). None for
    AVX512-BF16 without AMX (AMD Zen 4, some Xeons): bfloat16 dot products but no matrix tiles, and the one
    benchmark of that kind (bfloat16, float32 and the tutorial's code at the same 43.6 images/s) measured
    stalled epochs rather than steps; there `choose` has it measured.

    Args:
      cpu_flags: the CPU's feature flags; None reads them (`modules.cpu`: /proc/cpuinfo as capped by
        `ONEDNN_MAX_CPU_ISA`), after asking about GPUs.

    Returns:
      True, False, or None when only a measurement can tell.
    """
    if cpu_flags is None:
        gpus = tf.config.list_physical_devices('GPU')
        if gpus:
            return all(tuple(tf.config.experimental.get_device_details(gpu).get('compute_capability', (0, 0)))
                       >= (8, 0) for gpu in gpus)
        cpu_flags = cpu.flags()
    if 'amx_bf16' in cpu_flags:
        return True
    return None if 'avx512_bf16' in cpu_flags else False


def choose(configured: Optional[bool], measure: Optional[Callable[[], bool]]) -> Tuple[bool, str]:
    """Whether to train in mixed bfloat16, and why.

    Args:
      configured: the setting; None leaves it to the hardware, then to `measure`.
      measure: times both precisions (`faster_in_bfloat16` on the model to train); None where no measurement may
        be taken (a distributed run: every replica must train the same model), which means float32.

    Returns:
      (mixed bfloat16 or not, a few words saying what decided it).
    """
    if configured is not None:
        return configured, 'configured'
    native = native_bfloat16()
    if native is not None:
        return native, 'this hardware ' + ('computes bfloat16 natively' if native else 'has no bfloat16 instructions')
    if measure is None:
        return False, 'AVX512-BF16 without AMX, not measured in a distributed run'
    return measure(), 'measured on this machine (AVX512-BF16 without AMX)'
