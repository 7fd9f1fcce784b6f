"""Where things lie on disk: numbered model versions under a serving root, TFX artifact sub-paths, and
gzipped TFRecords.

Shared by the Pusher, the prediction CLI, the run report, the benchmark and the tests, so the rule for
"the newest version" and the layout TFX writes are stated once. Only the standard library and
TensorFlow's file API: importing this costs the Trainer nothing.
"""

import os
from typing import Iterable, List, Optional, Union

import tensorflow as tf

# TFX's layout inside artifacts: a Model's serving export, and one directory per split of an Examples.
SERVING_MODEL_SUBDIR = 'Format-Serving'
SAVED_MODEL_FILE = 'saved_model.pb'


def split_dir(examples_uri: str, split: str) -> str:
    """The directory of `split` ('train', 'eval') inside an Examples artifact."""
    return os.path.join(examples_uri, f'Split-{split}')


def serving_model_dir(model_uri: str) -> str:
    """The SavedModel directory inside a Trainer's Model artifact."""
    return os.path.join(model_uri, SERVING_MODEL_SUBDIR)


def numbered_versions(root: str) -> List[int]:
    """Versions (directories named by a number) under `root`, ascending; [] when `root` is missing.

    Staging directories (`.<n>.incomplete`) and other names are not versions.
    """
    if not tf.io.gfile.isdir(root):
        return []
    return sorted(int(name.rstrip('/')) for name in tf.io.gfile.listdir(root) if name.rstrip('/').isdigit())


def version_dir(root: str, version: Optional[int] = None) -> str:
    """The directory of `version` (None: the newest) under a root of numbered versions.

    Args:
      root: a serving root, or any directory of numbered subdirectories (TFX artifact ids).
      version: the version to use; None for the newest.

    Returns:
      The version's directory.

    Raises:
      FileNotFoundError: no numbered version, or not the one asked for.
    """
    versions = numbered_versions(root)
    if not versions:
        raise FileNotFoundError(f'No numbered versions under {root!r}.')
    chosen = versions[-1] if version is None else version
    if chosen not in versions:
        raise FileNotFoundError(f'Version {chosen} not in {root!r}; available: {versions}')
    return os.path.join(root, str(chosen))


def read_gzip_records(paths: Union[str, Iterable[str]], limit: Optional[int] = None) -> List[bytes]:
    """The serialized records of gzipped TFRecord files (as TFX writes Examples), in file order.

    Args:
      paths: a directory (every file in it), a glob, or a list of files.
      limit: read at most this many records.

    Returns:
      The records as bytes.
    """
    if isinstance(paths, str):
        pattern = os.path.join(paths, '*') if tf.io.gfile.isdir(paths) else paths
        files = sorted(tf.io.gfile.glob(pattern))
    else:
        files = sorted(paths)
    if not files:
        return []
    dataset = tf.data.TFRecordDataset(files, compression_type='GZIP')
    if limit is not None:
        dataset = dataset.take(limit)
    return [record.numpy() for record in dataset]
