"""The serving check itself, run in a fresh Python process by ServingCheck's executor.

    python -m components.serving_check.probe --model DIR --examples SPLIT_DIR --out report.jsonl

Loads the SavedModel the way a model server does (no Trainer state, no Python model code), then writes one
JSON line per finding: signatures against the contract, every eval image through `serving_default`
(valid masks, pixel accuracy against the transformed labels and against `serving_tf_example`, the
Evaluator's path), the bad-request catalogue one by one (a 'started' line first, so a crash names its
request), full-size masks at several sizes, and p50/p99 latency of one 500x375 JPEG. The executor
reads the lines and decides; this process decides nothing.
"""

import os

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')  # the SavedModel holds a TFT layer built with Keras 2
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from typing import Dict, List, Optional, Sequence  # noqa: E402

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from components.serving_check import requests  # noqa: E402
from modules import classes, keys, paths, signatures  # noqa: E402

FULL_SIZES = ((500, 375), (375, 500), (37, 300), (1, 1), (1024, 96))
_BATCH = 16


class Report:
    """Appends findings as JSON lines and flushes each, so a crash loses none written before it."""

    def __init__(self, path: str):
        self._file = open(path, 'a', buffering=1)

    def write(self, kind: str, **values) -> None:
        self._file.write(json.dumps({'kind': kind, **values}, default=float) + '\n')
        self._file.flush()


def check_signatures(model, image_size: int, num_classes: int) -> Dict[str, List[str]]:
    """Signature -> problems (empty when it matches `signatures.expected_signatures`)."""
    problems = {}
    for name, (inputs, outputs) in signatures.expected_signatures(image_size, num_classes).items():
        found = []
        if name not in model.signatures:
            problems[name] = ['missing']
            continue
        function = model.signatures[name]
        actual_inputs = function.structured_input_signature[1]
        actual_outputs = function.structured_outputs
        for kind, expected, actual in (('input', inputs, actual_inputs), ('output', outputs, actual_outputs)):
            if set(expected) != set(actual):
                found.append(f'{kind}s {sorted(actual)} != {sorted(expected)}')
                continue
            for key, (dtype, shape) in expected.items():
                spec = actual[key]
                if spec.dtype.name != dtype or spec.shape.as_list() != shape:
                    found.append(f'{kind} {key}: {spec.dtype.name} {spec.shape.as_list()} != {dtype} {shape}')
        problems[name] = found
    return problems


def mask_problem(outputs: Dict[str, tf.Tensor], count: int, image_size: int, num_classes: int) -> Optional[str]:
    """What is wrong with a `serving_default` answer for `count` images of a model of this size and classes."""
    mask, probabilities = outputs.get('mask'), outputs.get('probabilities')
    if mask is None or probabilities is None:
        return f'outputs {sorted(outputs)} lack mask/probabilities'
    if tuple(mask.shape) != (count, image_size, image_size) or mask.dtype != tf.uint8:
        return f'mask is {mask.dtype.name} {tuple(mask.shape)}, expected uint8 {(count, image_size, image_size)}'
    values = set(np.unique(mask.numpy()).tolist())
    if not values <= set(range(num_classes)):
        return f'mask holds values {sorted(values)} outside the classes'
    probabilities = probabilities.numpy()
    if not np.isfinite(probabilities).all() or np.abs(probabilities.sum(-1) - 1).max() > 1e-3:
        return 'probabilities are not finite or do not sum to 1'
    if not np.array_equal(np.argmax(probabilities, -1), mask.numpy()):
        return 'mask is not the argmax of probabilities'
    return None


def check_eval_split(model, shape: tuple, examples_dir: str, max_examples: int, report: Report) -> None:
    records = paths.read_gzip_records(examples_dir, limit=max_examples)
    serve = model.signatures[signatures.SERVING_DEFAULT]
    correct = agree_correct = total = 0
    invalid = []
    for start in range(0, len(records), _BATCH):
        batch = tf.constant(records[start:start + _BATCH])
        parsed = tf.io.parse_example(batch, {keys.IMAGE_KEY: tf.io.FixedLenFeature([], tf.string)})
        labels = model.signatures[signatures.TRANSFORM_FEATURES](examples=batch)[keys.transformed_name(keys.MASK_KEY)]
        labels = labels.numpy()[..., 0]
        outputs = serve(image_bytes=parsed[keys.IMAGE_KEY])
        problem = mask_problem(outputs, len(labels), *shape)
        if problem:
            invalid.append(f'examples {start}-{start + len(labels) - 1}: {problem}')
            continue
        evaluator_view = np.argmax(model.signatures[signatures.SERVING_TF_EXAMPLE](examples=batch)['logits'], -1)
        counted = labels < shape[1]  # ignored pixels count nowhere, as in the Evaluator's metrics
        correct += int(((outputs['mask'].numpy() == labels) & counted).sum())
        agree_correct += int(((evaluator_view == labels) & counted).sum())
        total += int(counted.sum())
    report.write('eval_split', examples=len(records), invalid=invalid,
                 pixel_accuracy=correct / total if total else None,
                 serving_tf_example_pixel_accuracy=agree_correct / total if total else None)


def check_bad_requests(model, shape: tuple, report: Report) -> None:
    serve = model.signatures[signatures.SERVING_DEFAULT]
    for case in requests.bad_requests():
        report.write('bad_request_started', name=case.name)
        start = time.perf_counter()
        try:
            outputs = serve(image_bytes=tf.constant(case.images))
            problem = mask_problem(outputs, len(case.images), *shape)
            outcome, detail = ('garbage', problem) if problem else (requests.MASK, '')
        except tf.errors.InvalidArgumentError as e:
            outcome, detail = requests.ERROR, signatures.error_reason(e)
        except Exception as e:  # any other failure is not a clean rejection
            outcome, detail = 'crash', f'{type(e).__name__}: {str(e)[:200]}'
        report.write('bad_request', name=case.name, expect=case.expect, outcome=outcome, detail=detail,
                     seconds=time.perf_counter() - start)


def check_full_size(model, num_classes: int, report: Report) -> None:
    serve = model.signatures[signatures.SERVING_FULL_SIZE]
    images = [requests.typical_jpeg(width, height, seed=index) for index, (width, height) in enumerate(FULL_SIZES)]
    outputs = serve(image_bytes=tf.constant(images))
    sizes = list(zip(outputs['width'].numpy().tolist(), outputs['height'].numpy().tolist()))
    problems = [f'{expected} answered as {got}' for expected, got in zip(FULL_SIZES, sizes) if tuple(got) != expected]
    mask = outputs['mask'].numpy()
    for index, (width, height) in enumerate(FULL_SIZES):
        inside = set(np.unique(mask[index, :height, :width]).tolist())
        if not inside <= set(range(num_classes)):
            problems.append(f'{width}x{height}: mask values {sorted(inside)}')
    report.write('full_size', sizes=[list(size) for size in FULL_SIZES], problems=problems)


def check_latency(model, calls: int, report: Report, warmup: int = 5) -> None:
    serve = model.signatures[signatures.SERVING_DEFAULT]
    request = tf.constant([requests.typical_jpeg()])
    for _ in range(warmup):
        serve(image_bytes=request)
    seconds = []
    for _ in range(calls):
        start = time.perf_counter()
        serve(image_bytes=request)['mask'].numpy()
        seconds.append(time.perf_counter() - start)
    report.write('latency', calls=calls, p50_ms=1000 * float(np.percentile(seconds, 50)),
                 p99_ms=1000 * float(np.percentile(seconds, 99)))


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--model', required=True, help='SavedModel directory')
    parser.add_argument('--examples', required=True, help='directory of gzipped tf.Example records (eval split)')
    parser.add_argument('--out', required=True, help='JSON-lines report to append to')
    parser.add_argument('--max_examples', type=int, default=200)
    parser.add_argument('--latency_calls', type=int, default=50)
    args = parser.parse_args(argv)
    report = Report(args.out)
    start = time.perf_counter()
    model = tf.saved_model.load(args.model)
    report.write('loaded', seconds=time.perf_counter() - start)
    description, image_size = classes.read_from_model(args.model)
    shape = (image_size, description.num_classes)
    problems = check_signatures(model, *shape)
    report.write('signatures', problems=problems)
    if any(problems.get(name) for name in (signatures.SERVING_DEFAULT, signatures.TRANSFORM_FEATURES,
                                           signatures.SERVING_TF_EXAMPLE)):
        report.write('done')
        return  # nothing else can be asked of it
    check_eval_split(model, shape, args.examples, args.max_examples, report)
    check_bad_requests(model, shape, report)
    if not problems.get(signatures.SERVING_FULL_SIZE):
        check_full_size(model, description.num_classes, report)
    check_latency(model, args.latency_calls, report)
    report.write('done')


if __name__ == '__main__':
    main()
