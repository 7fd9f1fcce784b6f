"""Turns logged request images into the next data span, to be labelled and then trained on.

    python -m serving --model_root outputs/petseg/serving_model --log_dir request_log --log_images
    python -m pipeline.span_from_log --log_dir request_log --spans_dir /data/pets      # writes span-3.pending/
    # label: a mask per image listed in span-3.pending/TO_LABEL.txt, as masks/<name>.png; then
    mv /data/pets/span-3.pending /data/pets/span-3
    python local_runner.py --source_dir '/data/pets/span-{SPAN}'                        # reads span 3

A span is a complete snapshot in the `folders` layout (`images/`, `masks/`, optional `splits/` and
`classes.json`): the new one holds the newest span's files (hard links where the file system allows, copies
otherwise; split lists are always copied, since they change) plus the logged images, which join the training
split when the span has split lists, so the eval split stays the one earlier versions were scored on.
`TfdsExampleGen` reads the newest `span-N` (`components/tfds_example_gen/sources.resolve_span`); the `.pending`
suffix keeps a span out of training until it is labelled.
"""

import os

os.environ['TF_USE_LEGACY_KERAS'] = '1'  # before TensorFlow is imported

import argparse  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from typing import List, Optional, Sequence  # noqa: E402

PENDING_SUFFIX = '.pending'
TO_LABEL = 'TO_LABEL.txt'
SPAN_PREFIX = 'span-'


def newest_span(spans_dir: str) -> int:
    """The newest span number under `spans_dir` (0 when there is none)."""
    numbers = [int(name[len(SPAN_PREFIX):]) for name in (os.listdir(spans_dir) if os.path.isdir(spans_dir) else [])
               if name.startswith(SPAN_PREFIX) and name[len(SPAN_PREFIX):].isdigit()]
    return max(numbers, default=0)


def _link_tree(source: str, target: str) -> None:
    """`source` mirrored into `target`: hard links (no space used), copies where linking fails; split lists copied."""
    for directory, _, files in os.walk(source):
        into = os.path.join(target, os.path.relpath(directory, source))
        os.makedirs(into, exist_ok=True)
        for name in files:
            path = os.path.join(directory, name)
            if os.path.basename(directory) == 'splits':
                shutil.copy2(path, into)
                continue
            try:
                os.link(path, os.path.join(into, name))
            except OSError:
                shutil.copy2(path, into)


def _extension(image: bytes) -> str:
    return '.png' if image.startswith(b'\x89PNG') else '.jpg'


def write_pending_span(log_dir: str, spans_dir: str, since: float = 0.0, until: Optional[float] = None) -> str:
    """Writes `span-<newest + 1>.pending/` from the newest span and the images logged in [since, until).

    Args:
      log_dir: a request log written with `--log_images`.
      spans_dir: the folder of `span-N/` snapshots (created if missing).
      since, until: UNIX seconds; the logged requests taken.

    Returns:
      The pending span's directory.

    Raises:
      ValueError: no logged image in the window, the newest span is not in the `folders` layout, or the pending
        span exists already.
    """
    import tensorflow as tf
    from modules import keys, request_log
    newest = newest_span(spans_dir)
    previous = os.path.join(spans_dir, f'{SPAN_PREFIX}{newest}')
    if newest and not all(os.path.isdir(os.path.join(previous, d)) for d in ('images', 'masks')):
        raise ValueError(f'{previous} is not in the folders layout (images/ + masks/): logged images cannot be '
                         'added to it')
    pending = os.path.join(spans_dir, f'{SPAN_PREFIX}{newest + 1}{PENDING_SUFFIX}')
    if os.path.exists(pending):
        raise ValueError(f'{pending} exists: label it and rename it to {os.path.basename(pending)[:-8]}, or remove it')
    until = time.time() if until is None else until
    images = []
    for path in request_log.log_files(log_dir):
        for record in tf.data.TFRecordDataset(path).as_numpy_iterator():
            feature = tf.train.Example.FromString(record).features.feature
            logged_ms = feature[request_log.LOGGED_AT_KEY].int64_list.value[0]
            if since <= logged_ms / 1000 < until and feature[keys.IMAGE_KEY].bytes_list.value:
                images.append((logged_ms, feature[keys.IMAGE_KEY].bytes_list.value[0]))
    if not images:
        raise ValueError(f'No logged image in {log_dir} between {since} and {until}: log with --log_images')
    staging = pending + '.incomplete'
    shutil.rmtree(staging, ignore_errors=True)
    if newest:
        _link_tree(previous, staging)
    os.makedirs(os.path.join(staging, 'images'), exist_ok=True)
    os.makedirs(os.path.join(staging, 'masks'), exist_ok=True)
    stems: List[str] = []
    for index, (logged_ms, image) in enumerate(sorted(images)):
        stem = f'logged-{logged_ms}-{index:05d}'
        with open(os.path.join(staging, 'images', stem + _extension(image)), 'wb') as f:
            f.write(image)
        stems.append(stem)
    train_list = os.path.join(staging, 'splits', 'train.txt')
    if os.path.exists(train_list):
        with open(train_list, 'a') as f:
            f.write(''.join(f'{stem}\n' for stem in stems))
    with open(os.path.join(staging, TO_LABEL), 'w') as f:
        f.write(''.join(f'{stem}\n' for stem in stems))
    os.rename(staging, pending)
    return pending


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--log_dir', required=True, help="a request log written with the server's --log_images")
    parser.add_argument('--spans_dir', required=True, help='the folder of span-N/ snapshots of the data')
    parser.add_argument('--since', type=float, default=0.0, help='UNIX seconds; images logged before are left out')
    parser.add_argument('--until', type=float, help='UNIX seconds; images logged from then on are left out (default: '
                                                    'now)')
    args = parser.parse_args(argv)
    try:
        pending = write_pending_span(args.log_dir, args.spans_dir, args.since, args.until)
    except ValueError as e:
        parser.error(str(e))
    with open(os.path.join(pending, TO_LABEL)) as f:
        count = sum(1 for _ in f)
    span = os.path.basename(pending)[:-len(PENDING_SUFFIX)]
    print(f'{pending}: {count} logged images to label (listed in {TO_LABEL}; a mask each as masks/<name>.png with '
          f'the class values of the data).\nThen: mv {pending} {os.path.join(args.spans_dir, span)}; a run with '
          f"--source_dir '{os.path.join(args.spans_dir, SPAN_PREFIX + '{SPAN}')}' trains on it.")
    return 0


if __name__ == '__main__':
    sys.exit(main())
