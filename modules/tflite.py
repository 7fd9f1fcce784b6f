"""TFLite variants of a trained U-Net for phones: conversion, the mobile contract, scoring and latency.

TFLite has no image-decode op and no TFT layer, so a TFLite model takes what Transform makes: one RGB image
resized to the model's size (bilinear, aspect ratio not kept) and, for the float variants, scaled to [0, 1]. The
full-integer `int8` variant takes the resized pixels as uint8 0..255 (its input scale is exactly 1/255, so the
app skips the division) and returns int8 logits; argmax over the last axis works on them directly. Each
`<variant>.tflite` ships with `<variant>.json`, the contract a mobile client codes against, with the classes
(names, colours) the exported model carries (`modules.classes.read_from_model`).

The U-Net is taken out of the exported SavedModel (its `segment` function), saved once as a slim SavedModel
holding only that function, and converted from there for each variant, in parallel processes.
"""

import dataclasses
import json
import multiprocessing
import os
import statistics
import tempfile
import time
from concurrent import futures
from typing import Callable, Dict, Iterable, List, Optional, Sequence

import numpy as np
import tensorflow as tf

from modules import classes as classes_lib, keys, metrics, signatures

VARIANTS = keys.TFLITE_VARIANTS
INPUT_NAME = 'image'
OUTPUT_NAME = 'logits'
REPORT_FILE = 'tflite.json'  # the figures of every variant, beside the models


def metadata(variant: str, interpreter: tf.lite.Interpreter, description: classes_lib.ClassDescription) -> Dict:
    """The labels/metadata JSON shipped beside `<variant>.tflite`: what goes in, what comes out, the classes.

    Types and quantization are read from the converted model itself, so the file cannot disagree with it.
    """
    model_input, model_output = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    size = int(model_input['shape'][1])
    integer_input = model_input['dtype'] == np.uint8
    input_scale, input_zero_point = model_input['quantization']
    output_scale, output_zero_point = model_output['quantization']
    return {
        'variant': variant,
        'file': f'{variant}.tflite',
        'input': {
            'name': model_input['name'],
            'dtype': np.dtype(model_input['dtype']).name,
            'shape': [int(d) for d in model_input['shape']],
            'layout': 'NHWC, RGB',
            'quantization': {'scale': float(input_scale), 'zero_point': int(input_zero_point)} if integer_input else None,
            'preprocessing': (
                'Decode to RGB (3 channels; drop alpha, convert greyscale), resize to '
                f'{size}x{size} with bilinear interpolation and half-pixel centres, without keeping the aspect ratio, '
                'no antialiasing. ' + ('Round to the nearest integer and feed the pixel values 0..255 as uint8 '
                                       '(the input scale 1/255 does the division).' if integer_input else
                                       'Feed float32 pixel values divided by 255 (range [0, 1]).')),
        },
        'output': {
            'name': model_output['name'],
            'dtype': np.dtype(model_output['dtype']).name,
            'shape': [int(d) for d in model_output['shape']],
            'quantization': ({'scale': float(output_scale), 'zero_point': int(output_zero_point)}
                             if model_output['dtype'] != np.float32 else None),
            'meaning': (f'Per-pixel class logits at {size}x{size}; the class id of a pixel is the argmax over the last '
                        'axis (works on the quantized values too). Softmax gives probabilities. Resize the '
                        "probabilities (or nearest-neighbour the ids) back to the photo's size."),
        },
        'classes': [{'id': class_id, 'name': name, 'color_rgb': list(description.colors[class_id])}
                    for class_id, name in enumerate(description.names)],
    }


def slim_saved_model(unet, export_dir: str, image_size: int) -> str:
    """Saves the U-Net of an exported SavedModel as a SavedModel of one function, `image` -> `logits`.

    Args:
      unet: the Trainer's export, loaded with `tf.saved_model.load`.
      export_dir: where to write the slim SavedModel.
      image_size: the U-Net's input side.

    Returns:
      `export_dir`.
    """
    segment_unet = signatures.segment_function(unet)

    class Segmenter(tf.Module):
        def __init__(self):
            super().__init__()
            self.unet = unet

        @tf.function(input_signature=[tf.TensorSpec([1, image_size, image_size, keys.IMAGE_CHANNELS], tf.float32, name=INPUT_NAME)])
        def segment(self, image):
            return {OUTPUT_NAME: segment_unet(image)}

    module = Segmenter()
    tf.saved_model.save(module, export_dir, signatures=module.segment.get_concrete_function())
    return export_dir


def convert(slim_model_dir: str, variant: str, representative_images: Optional[Sequence[np.ndarray]] = None) -> bytes:
    """Converts the slim SavedModel to one TFLite variant.

    Args:
      slim_model_dir: from `slim_saved_model`.
      variant: 'float32', 'float16' (weights in float16, computed in float32 on CPUs) or 'int8' (weights and
        activations int8, uint8 input, int8 output).
      representative_images: float32 [S, S, 3] images in [0, 1] that calibrate int8 activation ranges.

    Returns:
      The flatbuffer.
    """
    if variant not in VARIANTS:
        raise ValueError(f'Unknown TFLite variant {variant!r}; choose from {VARIANTS}')
    converter = tf.lite.TFLiteConverter.from_saved_model(slim_model_dir)
    if variant == 'float16':
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif variant == 'int8':
        if not representative_images:
            raise ValueError('The int8 variant needs representative images to calibrate its activation ranges.')
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([image[np.newaxis].astype(np.float32)]
                                                    for image in representative_images)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.uint8
        converter.inference_output_type = tf.int8
    return converter.convert()


class Segmenter:
    """One TFLite model in the interpreter: float images in [0, 1] in, class ids out, whatever its types."""

    def __init__(self, model_content: bytes, num_threads: int = 1):
        self.interpreter = tf.lite.Interpreter(model_content=model_content, num_threads=num_threads)
        self.interpreter.allocate_tensors()
        self._input = self.interpreter.get_input_details()[0]
        self._output = self.interpreter.get_output_details()[0]

    def to_input(self, image: np.ndarray) -> np.ndarray:
        """What the mobile contract says the app feeds, from a [S, S, 3] image in [0, 1]."""
        if self._input['dtype'] == np.uint8:
            return np.clip(np.round(image * 255.0), 0, 255).astype(np.uint8)[np.newaxis]
        return image.astype(np.float32)[np.newaxis]

    def invoke(self, model_input: np.ndarray) -> np.ndarray:
        self.interpreter.set_tensor(self._input['index'], model_input)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self._output['index'])[0]

    def classes(self, image: np.ndarray) -> np.ndarray:
        """Class ids [S, S] of one [S, S, 3] image in [0, 1]."""
        return np.argmax(self.invoke(self.to_input(image)), axis=-1)


def saved_model_classes(unet, images: np.ndarray, batch_size: int = 16) -> np.ndarray:
    """Class ids [N, S, S] of transformed images [N, S, S, 3] by the exported U-Net itself (float32).

    Args:
      unet: the Trainer's export, loaded with `tf.saved_model.load`.
      images: float32 images in [0, 1].
      batch_size: images per call.
    """
    segment = signatures.segment_function(unet)
    return np.concatenate([np.argmax(segment(tf.constant(images[i:i + batch_size], tf.float32)).numpy(), axis=-1)
                           for i in range(0, len(images), batch_size)])


def convert_all(slim_model_dir: str, variants: Sequence[str], representative_images: Sequence[np.ndarray]
                ) -> Dict[str, bytes]:
    """Every variant's flatbuffer, converted in parallel processes.

    One conversion is single-threaded C++ that holds the GIL, so threads do not overlap; fresh (spawned)
    processes do, one per core.
    """
    workers = max(1, min(len(variants), os.cpu_count() or 1))
    if workers == 1:
        return {variant: convert(slim_model_dir, variant, representative_images) for variant in variants}
    # int8 first: calibrating takes as long as the other two conversions together (~16 s vs ~6 + ~8 on 2 cores).
    longest_first = sorted(variants, key=lambda variant: variant != 'int8')
    with futures.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context('spawn')) as pool:
        jobs = {variant: pool.submit(convert, slim_model_dir, variant,
                                     representative_images if variant == 'int8' else None) for variant in longest_first}
        return {variant: jobs[variant].result() for variant in variants}


def scores(labels: Iterable[np.ndarray], predicted: Iterable[np.ndarray], class_names: Sequence[str]
           ) -> Dict[str, float]:
    """Pixel accuracy, mean IoU and per-class IoU over every pixel of every image (ignored pixels excluded)."""
    return metrics.numpy_scores(np.concatenate([np.ravel(a) for a in labels]),
                                np.concatenate([np.ravel(a) for a in predicted]), class_names)


def latency_ms(segmenter: Segmenter, image: np.ndarray, calls: int) -> float:
    """Median milliseconds of one invoke (input already prepared), after two warm-up calls."""
    model_input = segmenter.to_input(image)
    for _ in range(2):
        segmenter.invoke(model_input)
    timings = []
    for _ in range(calls):
        start = time.perf_counter()
        segmenter.invoke(model_input)
        timings.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(timings)


@dataclasses.dataclass
class VariantResult:
    """One variant's figures and whether it may be pushed."""

    variant: str
    size_mb: float
    pixel_accuracy: float
    mean_iou: float
    class_iou: Dict[str, float]
    agreement: float  # fraction of pixels whose class equals the SavedModel's
    latency_ms: Dict[str, float]  # '1_thread' / '2_threads' -> median ms per image
    passed: bool = True
    reasons: List[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True)
class Targets:
    """How close each variant must stay to the SavedModel (pixel accuracy, as a fraction) and how small int8 is."""

    tolerance: Dict[str, float]
    int8_max_size_ratio: float


def judge(results: Dict[str, VariantResult], reference_pixel_accuracy: float, targets: Targets) -> None:
    """Marks each result passed or not, with one reason per missed target (in place)."""
    for result in results.values():
        drop = reference_pixel_accuracy - result.pixel_accuracy
        tolerance = targets.tolerance[result.variant]
        if drop > tolerance:
            result.reasons.append(
                f'pixel accuracy {result.pixel_accuracy:.4f} is {drop * 100:.2f} points below the SavedModel\'s '
                f'{reference_pixel_accuracy:.4f} (allowed {tolerance * 100:.2f})')
    if 'int8' in results and 'float32' in results:
        ratio = results['int8'].size_mb / results['float32'].size_mb
        if ratio > targets.int8_max_size_ratio:
            results['int8'].reasons.append(f'int8 is {ratio:.2f} of the float32 size (allowed '
                                           f'{targets.int8_max_size_ratio:.2f})')
    for result in results.values():
        result.passed = not result.reasons


def export_variants(serving_model_dir: str, output_dir: str, variants: Sequence[str],
                    representative_images: Sequence[np.ndarray], eval_images: np.ndarray, eval_masks: np.ndarray,
                    targets: Targets, latency_calls: int = 20,
                    progress: Callable[[str], None] = lambda message: None) -> Dict:
    """Converts, scores and times each variant; writes `<variant>.tflite`, `<variant>.json` and `tflite.json`.

    Args:
      serving_model_dir: the Trainer's exported SavedModel.
      output_dir: where the files go.
      variants: which of VARIANTS to make.
      representative_images: float32 [S, S, 3] training images in [0, 1] for int8 calibration.
      eval_images: float32 [N, S, S, 3] in [0, 1].
      eval_masks: class ids [N, S, S] or [N, S, S, 1].
      targets: the quality and size targets.
      latency_calls: timed invokes per thread count.
      progress: called with a short line after each step.

    Returns:
      The report written to `tflite.json`: the SavedModel's figures on the same images, then each variant's.
    """
    tf.io.gfile.makedirs(output_dir)
    description, image_size = classes_lib.read_from_model(serving_model_dir)
    eval_masks = np.asarray(eval_masks).reshape(len(eval_masks), image_size, image_size)
    unet = tf.saved_model.load(serving_model_dir)
    reference_classes = saved_model_classes(unet, eval_images)
    reference_scores = scores(eval_masks, reference_classes, description.names)
    results: Dict[str, VariantResult] = {}
    with tempfile.TemporaryDirectory() as scratch:
        start = time.monotonic()
        flatbuffers = convert_all(slim_saved_model(unet, os.path.join(scratch, 'slim'), image_size), variants,
                                  representative_images)
        progress(f'converted {", ".join(variants)} in {time.monotonic() - start:.0f} s')
        for variant, flatbuffer in flatbuffers.items():
            start = time.monotonic()
            with tf.io.gfile.GFile(os.path.join(output_dir, f'{variant}.tflite'), 'wb') as f:
                f.write(flatbuffer)
            segmenter = Segmenter(flatbuffer, num_threads=2)
            predicted = np.stack([segmenter.classes(image) for image in eval_images])
            variant_scores = scores(eval_masks, predicted, description.names)
            timings = {'1_thread': latency_ms(Segmenter(flatbuffer, 1), eval_images[0], latency_calls),
                       '2_threads': latency_ms(segmenter, eval_images[0], latency_calls)}
            results[variant] = VariantResult(
                variant=variant, size_mb=len(flatbuffer) / 1e6, pixel_accuracy=variant_scores['pixel_accuracy'],
                mean_iou=variant_scores['mean_iou'],
                class_iou={name: variant_scores[metrics.class_iou_name(name)] for name in description.names},
                agreement=float(np.mean(predicted == reference_classes)), latency_ms=timings)
            with tf.io.gfile.GFile(os.path.join(output_dir, f'{variant}.json'), 'w') as f:
                json.dump(metadata(variant, segmenter.interpreter, description), f, indent=1)
            progress(f'{variant}: {len(flatbuffer) / 1e6:.1f} MB, pixel accuracy {variant_scores["pixel_accuracy"]:.4f}, '
                     f'{timings["1_thread"]:.0f} ms on 1 thread ({time.monotonic() - start:.0f} s)')
    judge(results, reference_scores['pixel_accuracy'], targets)
    report = {'saved_model': {'pixel_accuracy': reference_scores['pixel_accuracy'],
                              'mean_iou': reference_scores['mean_iou']},
              'eval_images': int(len(eval_images)), 'representative_images': len(representative_images),
              'variants': {name: dataclasses.asdict(result) for name, result in results.items()}}
    with tf.io.gfile.GFile(os.path.join(output_dir, REPORT_FILE), 'w') as f:
        json.dump(report, f, indent=1)
    return report

