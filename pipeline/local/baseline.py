"""Before a local run: refuse data whose classes the pipeline's blessed baseline was not trained on.

The Evaluator scores each candidate against the newest model an Evaluator of the same pipeline blessed. A
model trained on other classes cannot be scored with this run's: on another dataset TFMA fails deep inside
("Fail to call signature func with signature_name: transform_features") after the run has already trained,
and on the same images with other class ids its predictions would be counted as the wrong classes. So a local
run reads the baseline's classes (the exported model carries them) from MLMD before anything runs and, where
they differ from this run's, stops with both and the fix: a pipeline name of its own for this dataset. Another
image size is no reason: each model reads the raw examples at its own size (tried by hand: a 128 px baseline
and a 160 px candidate of the same pets were compared and the candidate blessed).
"""

import os
from typing import Optional

from modules import classes, paths
from pipeline.config import PipelineConfig
from pipeline.local import run_summary


def latest_blessed_model(metadata_path: str) -> Optional[str]:
    """The serving directory of the newest model an Evaluator blessed in this MLMD store; None if none."""
    if not os.path.exists(metadata_path):
        return None
    store = run_summary.read_only_store(metadata_path)
    blessings = [b for b in store.get_artifacts_by_type('ModelBlessing')
                 if b.custom_properties['blessed'].int_value == 1 and 'current_model_id' in b.custom_properties]
    if not blessings:
        return None
    newest = max(blessings, key=lambda b: (b.create_time_since_epoch, b.id))
    [model] = store.get_artifacts_by_id([newest.custom_properties['current_model_id'].int_value])
    return paths.serving_model_dir(model.uri)


def check_comparable(config: PipelineConfig, metadata_path: str) -> None:
    """Raises ValueError when this run's classes differ from the blessed baseline's (names or mask values).

    Args:
      config: the run's settings, its classes resolved (`data_source.prepare_data`).
      metadata_path: the pipeline's MLMD SQLite file.
    """
    model_dir = latest_blessed_model(metadata_path)
    if model_dir is None or not os.path.isdir(model_dir):
        return
    baseline, baseline_size = classes.read_from_model(model_dir)
    ours, our_size = config.data.description, config.data.image_size
    if (baseline.names, baseline.values) == (ours.names, ours.values):
        return
    raise ValueError(
        f'The blessed baseline of pipeline {config.name!r} ({model_dir}) was trained on '
        f'{_describe(baseline, baseline_size)}; this run\'s data has {_describe(ours, our_size)}. The Evaluator '
        'cannot compare them: give this dataset a pipeline of its own (--name), or train with the baseline\'s '
        'classes.')


def _describe(description: classes.ClassDescription, image_size: int) -> str:
    values = ', '.join(f'{name} {list(value)}' for name, value in zip(description.names, description.values))
    return f'{description.num_classes} classes ({values}) at {image_size} px'
