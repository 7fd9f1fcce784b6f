"""The run report a person opens after a local run: report.md with training curves and predictions.

`write_run_report` draws, for the run's candidate model, the training vs validation curves (from the
Trainer's `history.json`) and a grid of eval images with Input / True Mask / Predicted Mask (the seed
tutorial's `display`), then writes `report.md` next to them: data and counts, preset and
hyperparameters, component timings, metrics of candidate and baseline, blessing and push, the slices worst
first, and the full-size figures with the distribution of per-image IoU and the worst eval images.
"""

import dataclasses
import os
from typing import List, Optional, Tuple

import tensorflow as tf

from components.full_size_eval import executor as full_size_executor
from modules import classes, hparams, keys, paths, signatures, visualize
from pipeline.local import run_summary
from pipeline.config import PipelineConfig

REPORT_FILE = 'report.md'
CURVES_FILE = 'training_curves.png'
PREDICTIONS_FILE = 'eval_predictions.png'


def eval_file_names(records: List[bytes]) -> List[str]:
    """The `file_name` of each raw example ('' where it has none)."""
    names = []
    for record in records:
        feature = tf.train.Example.FromString(record).features.feature.get(keys.FILE_NAME_KEY)
        names.append(feature.bytes_list.value[0].decode() if feature and feature.bytes_list.value else '')
    return names


def draw_predictions(model_dir: str, examples_uri: str, path: str, count: int = 6) -> Tuple[Optional[str], List[str]]:
    """Draws Input / True Mask / Predicted Mask for the first `count` eval examples, each row titled with its file.

    Args:
      model_dir: the candidate's SavedModel.
      examples_uri: ExampleGen's Examples artifact.
      path: PNG to write.
      count: examples to show.

    Returns:
      (`path`, the file names shown), or (None, []) when there are no eval examples.
    """
    records = paths.read_gzip_records(paths.split_dir(examples_uri, 'eval'), limit=count)
    if not records:
        return None, []
    names = eval_file_names(records)
    model = tf.saved_model.load(model_dir)
    batch = tf.constant(records)
    transformed = model.signatures[signatures.TRANSFORM_FEATURES](examples=batch)
    logits = model.signatures[signatures.SERVING_TF_EXAMPLE](examples=batch)['logits']
    drawn = visualize.prediction_grid(transformed[keys.transformed_name(keys.IMAGE_KEY)].numpy(),
                                      transformed[keys.transformed_name(keys.MASK_KEY)].numpy(),
                                      tf.argmax(logits, -1).numpy(), path, names=names,
                                      colors=classes.read_from_model(model_dir)[0].colors)
    return drawn, names


def draw_training_curves(model_run_uri: str, path: str) -> Optional[str]:
    """Draws the curves from the Trainer's history.json; None when the run has none."""
    history = run_summary.read_history(model_run_uri)
    return visualize.training_curves(history, path) if history else None


def _markdown(summary: run_summary.RunSummary, config: PipelineConfig, pictures: List[str],
              shown: List[str] = ()) -> str:
    data = config.data
    # What the model was trained with: the Trainer's record (the Tuner's values applied), else the config.
    trained = dict(run_summary.read_trained_settings(summary.model_run_uri)) if summary.model_run_uri else {}
    decided = trained.pop(hparams.DECIDED_KEY, {})
    settings = hparams.flatten(trained or dataclasses.asdict(config.training))
    source = data.source_dir or data.data_dir or 'TFDS default data dir'
    lines = [f'# petseg run {summary.run_id}', '',
             '## Data', '',
             f'- dataset: `{data.dataset}` from `{source}`',
             f'- splits: train = `{data.train_split}`, eval = `{data.eval_split}`',
             f'- examples: {", ".join(f"{k} {v}" for k, v in sorted(summary.num_examples.items())) or "n/a"}', '',
             '## Training settings' + (' (in effect)' if trained else ' (configured)'), '',
             '| setting | value | decided by the Trainer, because |', '|---|---|---|']
    lines += [f'| {k} | {v} | {decided.get(k, "")} |' for k, v in settings.items()]
    lines += ['', '## Components', '', '| component | state | seconds | peak memory (MiB) |', '|---|---|---|---|']
    lines += [f'| {c.node_id} | {c.state} | {c.seconds:.1f} | {summary.peak_rss_mb.get(c.node_id, "-")} |'
              for c in summary.components]
    if summary.peak_rss_mb:
        lines += ['', f'Peak resident memory of the run (this process and its workers): '
                      f'{summary.peak_rss_mb["run"]:.0f} MiB.']
    lines += ['', '## Evaluation (eval split)', '', run_summary.format_table(summary), '']
    if summary.slices:
        lines += ['## Slices (worst mean IoU first)', '', *run_summary.slice_table(summary), '']
    if summary.model_uri:
        lines += [f'Candidate model: `{summary.model_uri}`', '']
    if summary.baseline_uri:
        lines += [f'Baseline model: `{summary.baseline_uri}`', '']
    for picture in pictures:
        lines += [f'![{os.path.splitext(os.path.basename(picture))[0]}]({os.path.basename(picture)})', '']
    if shown:
        lines += [f'Predictions shown for the eval images {", ".join(f"`{name}`" for name in shown if name)}.', '']
    return '\n'.join(lines)


def write_run_report(summary: run_summary.RunSummary, config: PipelineConfig, report_dir: str,
                     num_examples: int = 6) -> str:
    """Writes the pictures and report.md into `report_dir`; returns the report's path.

    Args:
      summary: the run, from `run_summary.read_run_summary`.
      config: the config the run used.
      report_dir: directory for this run's report.
      num_examples: eval images in the predictions grid.

    Returns:
      Path of report.md.
    """
    os.makedirs(report_dir, exist_ok=True)
    pictures, shown = [], []
    if summary.model_run_uri:
        pictures.append(draw_training_curves(summary.model_run_uri, os.path.join(report_dir, CURVES_FILE)))
    if summary.model_uri and summary.examples_uri:
        grid, shown = draw_predictions(paths.serving_model_dir(summary.model_uri), summary.examples_uri,
                                       os.path.join(report_dir, PREDICTIONS_FILE), num_examples)
        pictures.append(grid)
    full_size_pictures = []
    for name in (full_size_executor.HISTOGRAM_FILE, full_size_executor.WORST_IMAGES_FILE):
        source = os.path.join(summary.full_size_uri or '', name)
        if summary.full_size_uri and tf.io.gfile.exists(source):
            tf.io.gfile.copy(source, os.path.join(report_dir, name), overwrite=True)
            full_size_pictures.append(name)
    path = os.path.join(report_dir, REPORT_FILE)
    with open(path, 'w') as f:
        f.write(_markdown(summary, config, [p for p in pictures if p], shown)
                + _full_size_section(summary, full_size_pictures))
    return path


def _full_size_section(summary: run_summary.RunSummary, pictures: List[str]) -> str:
    """The full-size figures, the distribution of per-image IoU and the worst images, named by file."""
    if not summary.full_size:
        return ''
    figures = summary.full_size['metrics']
    lines = ['', '## At each image\'s own size (reported, not gated)', '',
             f'{run_summary.full_size_line(summary.full_size)}. Boundary IoU: the IoU of the bands within '
             f'{summary.full_size["dilation_ratio"]} of the image diagonal of each class\'s contour (Cheng et al., '
             'CVPR 2021).', '', '| metric | value |', '|---|---|']
    lines += [f'| {name} | {value:.4f} |' for name, value in sorted(figures.items()) if name != 'images']
    worst = summary.full_size.get('worst', [])
    if worst:
        lines += ['', 'Worst eval images (lowest mean IoU first): '
                  + ', '.join(f'`{w["file_name"]}` {w["mean_iou"]:.3f}' for w in worst) + '.']
    lines += [''] + [f'![{os.path.splitext(name)[0]}]({name})' for name in pictures] + ['']
    return '\n'.join(lines)
