"""Command-line flags for every setting of `PipelineConfig`, made from the dataclasses themselves.

Every entry point (`local_runner.py`, `kubeflow_runner.py`, `bench/run.py`) calls `add_config_flags` and
`config_from_args`, so a field added to a config dataclass is a flag everywhere, with the same name, type
and validation. A flag that is not given keeps the preset's value; a given one, 0 and negatives included,
goes through `PipelineConfig.with_overrides` and `validate()`, whose message names the field.

    parser = argparse.ArgumentParser()
    flags.add_config_flags(parser, default_preset='default')
    args = parser.parse_args(argv)
    config = flags.config_from_args(args, parser)      # parser.error() with validate()'s message
"""

import argparse
import dataclasses
import os
import typing
from typing import Any, Dict, Optional

from pipeline import config as config_lib

# Settings that are not flags: the generated sample is chosen by preset and turned off by any data source.
NOT_FLAGS = {'data.sample', 'data.class_description'}
_PATH_FIELDS = ('data.data_dir', 'data.source_dir')
# A flag is named after its setting's last part, with its section's prefix where that alone would be unclear
# (`--augment_scale` sets training.augmentation.scale; `--jit_compile` sets training.speed.jit_compile).
_FLAG_PREFIX = {'training.augmentation': 'augment_'}
_HELP = {
    'name': 'pipeline name; outputs go to OUTPUT_DIR/NAME',
    'data.dataset': 'TFDS dataset name[:version], e.g. oxford_iiit_pet:4.*.* (turns generated sample data off)',
    'data.data_dir': 'TFDS data dir holding the prepared dataset (turns generated sample data off)',
    'data.source_dir': 'local data: Oxford-IIIT Pet archives or folders, images/ + masks/ (folders layout), or a '
                       'Pascal VOC export (turns generated sample data off)',
    'data.classes': "the classes: 'oxford_iiit_pet', 'voc' or a classes.json path (default: the source's "
                    "classes.json, else VOC's for a VOC export, else Oxford-IIIT Pet's)",
    'data.image_size': "the model's input side in pixels: 96..512 in steps of 32",
    'data.source_layout': "how --source_dir is laid out: auto (detected), oxford, folders, voc",
    'data.eval_fraction': 'the share of a folders source without split lists that becomes the eval split',
    'data.train_split': 'the TFDS split (or slice, e.g. train[:90%%]) that becomes the train split',
    'data.eval_split': 'the TFDS split (or slice) that becomes the eval split the Evaluator blesses on',
    'data.image_feature': "the dataset's image feature, renamed to 'image'",
    'data.mask_feature': "the dataset's segmentation-mask feature, renamed to 'segmentation_mask'",
    'data.drift_threshold': 'Jensen-Shannon divergence of an image feature against the previous data above which '
                            'drift is reported',
    'data.transform_statistics': "Transform's pre- and post-transform statistics (off: their memory grows with the "
                                 'data)',
    'data.max_skipped_fraction': 'fail when more than this fraction of a split is unusable image/mask pairs',
    'data.anomalies': "'fail': data anomalies stop the run before training; 'warn': report them and train",
    'training.epochs': 'training epochs',
    'training.batch_size': 'examples per step per replica',
    'training.shuffle_buffer': 'examples in the shuffle buffer',
    'training.learning_rate': "Adam's (peak) learning rate",
    'training.train_encoder': 'fine-tune the encoder too (random encoder weights are always trained)',
    'training.dropout': 'dropout rate in the decoder blocks',
    'training.batchnorm_momentum': "every BatchNorm's momentum (default: Keras'; ~0.9 for small data from scratch)",
    'training.precise_batchnorm_images': "after training, every trained BatchNorm's statistics are recomputed from "
                                         'up to this many training images at the final weights (0: keep the '
                                         "moving averages)",
    'training.speed.jit_compile': 'XLA-compile the train step (off: slower on the CPUs measured)',
    'training.speed.subpixel_upsampling': 'every transposed convolution as a sub-pixel convolution, same function and weights',
    'training.steps_per_epoch': 'steps per epoch (default: one pass over the training split)',
    'training.validation_steps': 'validation steps per epoch (default: the whole validation data)',
    'training.warm_start': 'start from the weights of the latest trained model',
    'training.seed': 'seed of weights, shuffling and augmentation',
    'training.encoder_weights': "'imagenet', 'none' (random, trained) or a local MobileNetV2 no-top .h5",
    'training.speed.mixed_bfloat16': 'train in mixed bfloat16 (default: on AMX CPUs and GPUs of compute capability 8.0+, '
                               'measured against float32 on CPUs with AVX512-BF16 but no AMX)',
    'training.speed.gemm_upsampling': "the decoder's 4x4 and 8x8 transposed convolutions as one matrix multiply over the "
                                'nine taps, same function and weights (default: under mixed bfloat16)',
    'training.speed.split_skip_logits': 'the logits layer over the last decoder output and the first skip taken apart, not '
                                  'their concatenation; same function and weights (default: on unless subpixel)',
    'training.speed.cache_budget_mb': "keep the decoded training data in memory when it fits this many MiB, else "
                                      "read it from Transform's files every epoch (memory stays flat)",
    'training.class_weights': 'per-class loss weights, one per class of the data (Oxford: pet background border)',
    'training.augmentation.flip': 'flip training images and masks left-right at random (the tutorial\'s augmentation)',
    'training.augmentation.scale': 'training zoom in [1/(1+s), 1+s] at strength 1 (0: off)',
    'training.augmentation.rotation': 'training rotation in degrees, +-value at strength 1 (0: off)',
    'training.augmentation.shift': 'training shift as a fraction of the side, +-value at strength 1 (0: off)',
    'training.augmentation.color': 'training brightness/contrast/saturation/hue jitter at strength 1 (0: off; images only)',
    'training.augmentation.strength': 'multiplies every augmentation amount (what --tune searches)',
    'training.lr_schedule': "'constant' or 'cosine' (decays to ~0 by the last epoch, after the warm-up)",
    'training.warmup_epochs': 'epochs of linear learning-rate warm-up',
    'training.validation_split': 'fraction of the training examples held out to validate on (0: the eval split)',
    'training.early_stopping_patience': 'stop after this many epochs without a better validation mean IoU and keep '
                                        'the best weights (needs --validation_split)',
    'training.test_time_flip': 'the exported model averages each prediction with that of the mirrored image '
                               '(twice the inference compute, in serving, TFLite and the Evaluator alike)',
    'tuning.tune': 'search learning rate, dropout, BatchNorm momentum and augmentation strength with the TFX Tuner '
                   '(KerasTuner) before training; the best values feed the Trainer (needs --validation_split)',
    'tuning.max_trials': 'hyperparameter combinations the Tuner tries',
    'tuning.trial_epochs': 'epochs each Tuner trial trains',
    'tuning.trial_steps_per_epoch': 'steps per epoch of each trial (default: a pass over the data)',
    'evaluation.min_pixel_accuracy': 'lowest pixel accuracy the Evaluator blesses',
    'evaluation.min_mean_iou': 'lowest mean IoU the Evaluator blesses',
    'evaluation.max_regression': 'how far below the blessed baseline a candidate may score and still be blessed',
    'evaluation.slice_features': 'raw example features to slice the evaluation by, each alone (default: the '
                                 "dataset's: species and breed label for Oxford-IIIT Pet); the flag alone: no slices",
    'evaluation.max_slice_regression': 'gate: no slice of at least --min_slice_examples examples may score more than '
                                       'this below the baseline (default: off)',
    'evaluation.min_slice_examples': 'the smallest slice that is reported and gated when --max_slice_regression is set',
    'evaluation.full_size_examples': 'eval images scored at their own size (full-size and boundary IoU, per image)',
    'evaluation.worst_images': 'eval images with the lowest IoU drawn for the report and the model card',
    'serving.validator': "'serving_check' (fresh Python process, runs anywhere) or 'infra_validator' "
                         '(TFX InfraValidator with the TF Serving image; needs Docker or Kubernetes)',
    'serving.latency_budget_ms': 'highest acceptable p99 latency of one 500x375 JPEG before a push, in ms',
    'serving.latency_calls': 'timed calls for the p50/p99 latency (>= 50)',
    'serving.accuracy_tolerance': "how far the served pixel accuracy may differ from the Evaluator's",
    'serving.timeout_s': 'seconds the serving check may take before it blesses nothing',
    'serving.max_examples': 'eval images the serving check sends through serving_default',
    'tflite.tflite_variants': 'TFLite variants to make and push when they meet their targets: float32 float16 int8; '
                              'the flag alone turns the TFLite export off',
    'tflite.representative_examples': 'training images that calibrate the int8 activation ranges',
    'tflite.tflite_eval_examples': 'eval images each TFLite variant is scored on',
    'tflite.tflite_latency_calls': 'timed invokes per thread count',
    'tflite.float32_tolerance': "how far float32's pixel accuracy may fall below the SavedModel's",
    'tflite.float16_tolerance': "how far float16's pixel accuracy may fall below the SavedModel's",
    'tflite.int8_tolerance': "how far int8's pixel accuracy may fall below the SavedModel's",
    'tflite.int8_max_size_ratio': "the int8 model's largest allowed size as a fraction of float32's",
}


def _settings():
    """(dotted name, flag name, type hint, built-in default) of every overridable setting."""
    yield from _section_settings(config_lib.PipelineConfig, '')


def _section_settings(cls, section: str):
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        dotted = f'{section}.{field.name}' if section else field.name
        if dataclasses.is_dataclass(hints[field.name]):
            yield from _section_settings(hints[field.name], dotted)
        elif dotted not in NOT_FLAGS:
            yield dotted, _FLAG_PREFIX.get(section, '') + field.name, hints[field.name], field.default


def _unwrap_optional(hint):
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if typing.get_origin(hint) is typing.Union and len(args) == 1 else hint


def add_config_flags(parser: argparse.ArgumentParser, default_preset: str = 'default') -> None:
    """Adds `--preset` and one flag per setting, all defaulting to the preset's value.

    Args:
      parser: the entry point's parser.
      default_preset: the preset used when `--preset` is not given.
    """
    parser.add_argument('--preset', default=default_preset, choices=sorted(config_lib.PRESETS),
                        help=f'settings to start from (default: {default_preset})')
    groups = {}
    for dotted, flag, hint, default in _settings():
        section = dotted.rpartition('.')[0] or 'pipeline'
        if section not in groups:
            groups[section] = parser.add_argument_group(f'{section} settings (default: the preset\'s)')
        kind = _unwrap_optional(hint)
        help_text = f"{_HELP.get(dotted, dotted)} (built-in default: {default})"
        if kind is bool:
            groups[section].add_argument(f'--{flag}', dest=dotted, action=argparse.BooleanOptionalAction,
                                         default=None, help=help_text)
        elif typing.get_origin(kind) is tuple:
            # '*': the flag alone gives an empty tuple (e.g. `--tflite_variants` turns the TFLite export off).
            groups[section].add_argument(f'--{flag}', dest=dotted, type=typing.get_args(kind)[0], nargs='*',
                                         default=None, metavar='VALUE', help=help_text)
        else:
            groups[section].add_argument(f'--{flag}', dest=dotted, type=kind, default=None, help=help_text)


def overrides_from_args(args: argparse.Namespace, absolute_paths: bool = True) -> Dict[str, Any]:
    """The settings given on the command line, as `PipelineConfig.with_overrides` takes them.

    Args:
      args: parsed flags of a parser set up by `add_config_flags`.
      absolute_paths: make local data paths absolute (they are part of ExampleGen's cache key, so
        `pets`, `./pets` and `/abs/pets` must be one source); off where paths mean another machine's.

    Returns:
      {dotted setting: value} for the flags that were given.
    """
    values = vars(args)
    overrides = {dotted: values[dotted] for dotted, *_ in _settings() if values.get(dotted) is not None}
    for dotted, value in overrides.items():
        if isinstance(value, list):
            overrides[dotted] = tuple(value)
    if absolute_paths:
        for dotted in _PATH_FIELDS:
            if dotted in overrides and '://' not in overrides[dotted]:
                overrides[dotted] = os.path.abspath(os.path.expanduser(overrides[dotted]))
    return overrides


def config_from_args(args: argparse.Namespace, parser: Optional[argparse.ArgumentParser] = None,
                     absolute_paths: bool = True, base_overrides: Optional[Dict[str, Any]] = None,
                     ) -> config_lib.PipelineConfig:
    """The preset with `base_overrides`, then the given flags, applied and validated.

    Args:
      args: parsed flags.
      parser: when given, an invalid setting ends the program through `parser.error` (exit code 2).
      absolute_paths: see `overrides_from_args`.
      base_overrides: the entry point's own defaults on top of the preset (flags still win).

    Returns:
      The validated config.

    Raises:
      ValueError: an invalid setting, when no parser is given.
    """
    try:
        config = config_lib.preset(args.preset)
        if base_overrides:
            config = config.with_overrides(base_overrides)
        return config.with_overrides(overrides_from_args(args, absolute_paths))
    except ValueError as e:
        if parser is None:
            raise
        parser.error(str(e))


def dataclass_default(cls, name: str) -> Any:
    """The default of field `name` of dataclass `cls`, so a flag's default is defined once."""
    return {field.name: field.default for field in dataclasses.fields(cls)}[name]

