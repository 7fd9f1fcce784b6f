"""Typed, frozen settings of the pipeline and its named presets.

`PipelineConfig` groups data, training and evaluation settings; `PRESETS` names the ones we run:
- `smoke`: a few steps on a tiny generated dataset, for tests;
- `default`: the generated sample dataset, trains on 2 CPU cores in a few minutes;
- `real`: a few hundred real photographs without pretrained weights (augmentation, schedule, early stopping);
- `shapes`: generated five-class data in the `folders` layout at 160 px: your own data's path in one command;
- `tutorial`: the seed tutorial (Oxford-IIIT Pet, batch 64, 20 epochs, buffer 1000, ImageNet encoder);
- `full`: the tutorial's data and model, then fine-tuning of the encoder as well.

Nothing here reads files or the environment. Every entry point turns its flags into settings through one
path, `PipelineConfig.with_overrides({'training.epochs': 3, ...})` (see `pipeline/flags.py`), and
`validate()` rejects nonsense before any component runs. The Trainer receives `TrainingConfig` (defined in
`modules/hparams.py`, since Trainer code must not import the pipeline) as `custom_config`, so MLMD records
what made each model.
"""

import dataclasses
import os
import typing
from typing import Any, Dict, List, Mapping, Optional, Tuple

from modules import classes as classes_lib, hparams, keys
from modules.hparams import AugmentationConfig, SpeedConfig, TrainingConfig, TuningConfig

__all__ = ['AugmentationConfig', 'DataConfig', 'EvaluationConfig', 'PipelineConfig', 'PRESETS', 'SampleData', 'ServingConfig', 'SpeedConfig',
           'TfliteConfig', 'TrainingConfig', 'TuningConfig', 'preset']

ENCODER_WEIGHT_CHOICES = hparams.ENCODER_WEIGHT_CHOICES
SOURCE_LAYOUTS = ('auto', 'oxford', 'folders', 'voc')  # components.tfds_example_gen.sources.LAYOUTS
SAMPLE_LAYOUTS = ('folders', 'voc')
# MobileNetV2's skips need a multiple of 32; below 96 the deepest features are 3x3 or less.
IMAGE_SIZES = range(96, 513, 32)
ANOMALY_ACTIONS = ('fail', 'warn')
SERVING_VALIDATORS = ('serving_check', 'infra_validator')
CURATED_SCHEMAS = {'oxford_iiit_pet': os.path.join(os.path.dirname(__file__), 'schemas', 'oxford_iiit_pet.pbtxt')}


@dataclasses.dataclass(frozen=True)
class SampleData:
    """A generated dataset, made by the runner when no data is given: Oxford-IIIT Pet look-alikes in its layout
    (`classes` 0), or `classes` kinds of shapes (the background included) in the `folders` or `voc` layout."""

    num_train: int = 240
    num_test: int = 60
    seed: int = 0
    classes: int = 0
    layout: str = 'folders'

    def validate(self) -> None:
        _require(self.num_train >= 1 and self.num_test >= 1, 'data.sample needs >= 1 train and test image')
        _require(self.classes == 0 or 2 <= self.classes <= 9,
                 f'data.sample.classes must be 0 (pets) or 2..9 kinds of shapes, got {self.classes}')
        _require(self.layout in SAMPLE_LAYOUTS, f'data.sample.layout must be one of {SAMPLE_LAYOUTS}, got {self.layout!r}')


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Where the examples come from and how TFDS splits map to the pipeline's train/eval splits."""

    dataset: str = 'oxford_iiit_pet'
    data_dir: Optional[str] = None
    source_dir: Optional[str] = None
    sample: Optional[SampleData] = None
    train_split: str = 'train'
    eval_split: str = 'test'
    image_feature: str = keys.IMAGE_KEY
    mask_feature: str = keys.MASK_KEY
    # The classes: a built-in description (oxford_iiit_pet, voc) or a classes.json path; None: the source's own
    # classes.json, else VOC's for a VOC export, else Oxford-IIIT Pet's (modules/classes.py).
    classes: Optional[str] = None
    # What `classes` resolves to; the runner reads it (`pipeline.data_source.resolve_classes`), not a flag.
    class_description: Optional[classes_lib.ClassDescription] = None
    # The model's input side: Transform resizes to it and the U-Net is built for it.
    image_size: int = classes_lib.DEFAULT_IMAGE_SIZE
    # How source_dir is laid out: oxford, folders (images/ + masks/), voc, or auto (detected).
    source_layout: str = 'auto'
    # The share of a folders source without split lists that becomes the eval split.
    eval_fraction: float = 0.2
    max_skipped_fraction: float = 0.05
    # What data anomalies (ExampleValidator against the schema) do: 'fail' stops the run before training,
    # 'warn' reports them and trains anyway.
    anomalies: str = 'fail'
    # Jensen-Shannon divergence between a split's per-example image features and the previous data
    # version's, above which the run summary reports drift.
    drift_threshold: float = 0.3
    # Transform's own statistics of its input and output (TFDV over every transformed value: 65,536 per 128 px
    # example). Off: they held the run's memory growing with the data (4.4 GB at 3,000 images against 1.0 GB
    # without), and StatisticsGen already describes the input.
    transform_statistics: bool = False

    @property
    def dataset_name(self) -> str:
        return self.dataset.partition(':')[0]

    def validate(self) -> None:
        """Raises ValueError naming the first nonsensical data setting."""
        _require(bool(self.dataset_name), 'data.dataset must name a TFDS dataset')
        _require(self.train_split != '' and self.eval_split != '', 'data.train_split and data.eval_split must be set')
        _require(0.0 <= self.max_skipped_fraction < 1.0,
                 f'data.max_skipped_fraction must be in [0, 1), got {self.max_skipped_fraction}')
        _require(self.anomalies in ANOMALY_ACTIONS,
                 f'data.anomalies must be one of {ANOMALY_ACTIONS}, got {self.anomalies!r}')
        _require(0.0 < self.drift_threshold <= 1.0, f'data.drift_threshold must be in (0, 1], got {self.drift_threshold}')
        _require(self.image_size in IMAGE_SIZES,
                 f'data.image_size must be a multiple of 32 in 96..512, got {self.image_size}')
        _require(self.source_layout in SOURCE_LAYOUTS,
                 f'data.source_layout must be one of {SOURCE_LAYOUTS}, got {self.source_layout!r}')
        _require(0.0 < self.eval_fraction < 1.0, f'data.eval_fraction must be in (0, 1), got {self.eval_fraction}')
        if self.sample is not None:
            _require(self.dataset_name == 'oxford_iiit_pet', 'data.sample generates Oxford-IIIT Pet data only')
            self.sample.validate()

    @property
    def description(self) -> classes_lib.ClassDescription:
        """The classes the pipeline trains on.

        Raises:
          ValueError: `classes` names a file that was not read yet (`pipeline.data_source.resolve_classes`).
        """
        if self.class_description is not None:
            return self.class_description
        if self.classes is None:
            return classes_lib.OXFORD_IIIT_PET
        if self.classes in classes_lib.BUILT_IN:
            return classes_lib.BUILT_IN[self.classes]
        raise ValueError(f'data.classes {self.classes!r} has not been read; runners call '
                         'pipeline.data_source.resolve_classes(config) before building the pipeline')

    @property
    def schema_path(self) -> Optional[str]:
        """The curated schema for this dataset, or None to infer one with SchemaGen."""
        own_data = self.source_layout in ('folders', 'voc') or self.description != classes_lib.OXFORD_IIIT_PET
        return None if own_data else CURATED_SCHEMAS.get(self.dataset_name)


@dataclasses.dataclass(frozen=True)
class EvaluationConfig:
    """Blessing rules: absolute lower bounds, and how much worse than the baseline is tolerated."""

    min_pixel_accuracy: float = 0.5
    min_mean_iou: float = 0.3
    max_regression: float = 0.01
    # Features of the raw examples to score slices of, each on its own (every metric on every slice). None: the
    # dataset's own (Oxford-IIIT Pet: species and breed label); no values: the overall slice only.
    slice_features: Optional[Tuple[str, ...]] = None
    # When set, no slice of at least min_slice_examples examples may score more than this below the baseline
    # on pixel accuracy or mean IoU (TFMA then leaves smaller slices out of its output).
    max_slice_regression: Optional[float] = None
    min_slice_examples: int = 10
    # The full-size evaluation (`components/full_size_eval`): eval images scored at their own size, and the
    # worst of them drawn for the report and the model card.
    full_size_examples: int = 1000
    worst_images: int = 6

    def validate(self) -> None:
        """Raises ValueError naming the first nonsensical blessing rule."""
        for name in ('min_pixel_accuracy', 'min_mean_iou'):
            value = getattr(self, name)
            _require(0.0 <= value <= 1.0, f'evaluation.{name} must be in [0, 1], got {value}')
        _require(self.max_regression >= 0.0, f'evaluation.max_regression must be >= 0, got {self.max_regression}')
        _require(self.max_slice_regression is None or self.max_slice_regression >= 0.0,
                 f'evaluation.max_slice_regression must be None or >= 0, got {self.max_slice_regression}')
        for name in ('min_slice_examples', 'full_size_examples'):
            value = getattr(self, name)
            _require(value >= 1, f'evaluation.{name} must be >= 1, got {value}')
        _require(self.worst_images >= 0, f'evaluation.worst_images must be >= 0, got {self.worst_images}')


@dataclasses.dataclass(frozen=True)
class ServingConfig:
    """The serving check before a push: how much to send, how fast it must answer, which validator runs it."""

    # 'serving_check' (ours: a fresh Python process, runs anywhere) or 'infra_validator' (TFX's, with the
    # TF Serving image under Docker or Kubernetes; where neither runs, it cannot bless anything).
    validator: str = 'serving_check'
    max_examples: int = 200
    latency_calls: int = 50
    # p99 of one 500x375 JPEG through serving_default, in ms; generous by default (slow CI machines).
    latency_budget_ms: float = 2000.0
    # Served pixel accuracy may differ this much from the Evaluator's (0.005 = 0.5 points).
    accuracy_tolerance: float = 0.005
    timeout_s: int = 900

    def validate(self) -> None:
        """Raises ValueError naming the first nonsensical serving-check setting."""
        _require(self.validator in SERVING_VALIDATORS,
                 f'serving.validator must be one of {SERVING_VALIDATORS}, got {self.validator!r}')
        for name in ('max_examples', 'latency_calls', 'timeout_s'):
            value = getattr(self, name)
            _require(value >= 1, f'serving.{name} must be >= 1, got {value}')
        _require(self.latency_calls >= 50, f'serving.latency_calls must be >= 50 for a p99, got {self.latency_calls}')
        _require(self.latency_budget_ms > 0, f'serving.latency_budget_ms must be > 0, got {self.latency_budget_ms}')
        _require(0 <= self.accuracy_tolerance < 1,
                 f'serving.accuracy_tolerance must be in [0, 1), got {self.accuracy_tolerance}')


@dataclasses.dataclass(frozen=True)
class TfliteConfig:
    """TFLite variants made after training, and the targets a variant must meet to be pushed with the model."""

    # Any of float32, float16, int8; no values (`--tflite_variants` alone) turns the TFLite export off.
    tflite_variants: Tuple[str, ...] = keys.TFLITE_VARIANTS
    # Training images that calibrate the int8 activation ranges.
    representative_examples: int = 100
    tflite_eval_examples: int = 500
    tflite_latency_calls: int = 20
    # How far (fractions: 0.002 = 0.2 points) each variant's pixel accuracy may fall below the SavedModel's
    # on the same eval images.
    float32_tolerance: float = 0.001
    float16_tolerance: float = 0.002
    int8_tolerance: float = 0.015
    int8_max_size_ratio: float = 1 / 3

    def validate(self) -> None:
        """Raises ValueError naming the first nonsensical TFLite setting."""
        unknown = [v for v in self.tflite_variants if v not in keys.TFLITE_VARIANTS]
        _require(not unknown and len(set(self.tflite_variants)) == len(self.tflite_variants),
                 f'tflite.tflite_variants must be distinct values of {keys.TFLITE_VARIANTS}, got {self.tflite_variants}')
        for name in ('representative_examples', 'tflite_eval_examples', 'tflite_latency_calls'):
            value = getattr(self, name)
            _require(value >= 1, f'tflite.{name} must be >= 1, got {value}')
        for name in ('float32_tolerance', 'float16_tolerance', 'int8_tolerance'):
            value = getattr(self, name)
            _require(0.0 <= value < 1.0, f'tflite.{name} must be in [0, 1), got {value}')
        _require(0.0 < self.int8_max_size_ratio <= 1.0,
                 f'tflite.int8_max_size_ratio must be in (0, 1], got {self.int8_max_size_ratio}')

    @property
    def tolerances(self) -> Tuple[float, float, float]:
        """Per variant, in `modules.keys.TFLITE_VARIANTS` order."""
        return self.float32_tolerance, self.float16_tolerance, self.int8_tolerance


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    """Everything that defines a pipeline run except platform details (paths, images, Beam args)."""

    name: str = 'petseg'
    data: DataConfig = DataConfig()
    training: TrainingConfig = TrainingConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    serving: ServingConfig = ServingConfig()
    tflite: TfliteConfig = TfliteConfig()
    tuning: TuningConfig = TuningConfig()

    def validate(self) -> 'PipelineConfig':
        """Raises ValueError naming the first nonsensical setting; returns self for chaining.

        Each section validates itself; what is checked here spans sections."""
        _check(self.name.replace('-', '').replace('_', '').isalnum(), f'name {self.name!r} must be alphanumeric, - or _')
        for section in (self.data, self.training, self.evaluation, self.serving, self.tflite, self.tuning):
            try:
                section.validate()
            except ValueError as e:
                raise ValueError(f'Invalid pipeline config: {e}') from None
        data, training = self.data, self.training
        if training.class_weights is not None and (data.class_description or data.classes in (None, *classes_lib.BUILT_IN)):
            names = data.description.names
            _check(len(training.class_weights) == len(names),
                   f'training.class_weights needs {len(names)} positive values ({", ".join(names)}), '
                   f'got {training.class_weights}')
        if self.tuning.tune:
            _check(training.validation_split > 0, 'tuning.tune needs training.validation_split > 0: trials are '
                   'scored on held-out training examples, never on the eval split the Evaluator blesses on')
        return self

    @property
    def slice_features(self) -> Tuple[str, ...]:
        """The features the Evaluator slices by: the configured ones, else the dataset's own."""
        if self.evaluation.slice_features is not None:
            return self.evaluation.slice_features
        pets = self.data.description == classes_lib.OXFORD_IIIT_PET and self.data.source_layout in ('auto', 'oxford')
        return (keys.SPECIES_KEY, keys.LABEL_KEY) if pets else ()

    def to_transform_custom_config(self) -> Dict[str, Any]:
        """Transform's custom_config: the classes (mask values -> class ids) and the image size."""
        return classes_lib.to_custom_config(self.data.description, self.data.image_size)

    def to_custom_config(self) -> Dict[str, Any]:
        """The Trainer's custom_config: training settings plus what the model must agree with."""
        return {hparams.CUSTOM_CONFIG_KEY: self.training.to_custom_config(), 'dataset': self.data.dataset,
                **self.to_transform_custom_config()}

    def to_tuner_custom_config(self) -> Dict[str, Any]:
        """The Tuner's custom_config: the Trainer's plus the search's budget (`hparams.TUNING_KEY`)."""
        return {**self.to_custom_config(), hparams.TUNING_KEY: dataclasses.asdict(self.tuning)}

    def with_overrides(self, overrides: Mapping[str, Any]) -> 'PipelineConfig':
        """This config with `{'section.field': value}` settings replaced; validated.

        The one way flags become settings in every entry point. Naming a data source (`data.dataset`,
        `data.data_dir` or `data.source_dir`) turns the generated sample data off.

        Args:
          overrides: dotted setting names (`training.epochs`, `data.source_dir`, `name`) to values; None values
            are ignored (a flag that was not given).

        Returns:
          The new, validated config.

        Raises:
          ValueError: an unknown setting, or a value `validate()` rejects (the message names the field).
        """
        changes: Dict[str, Any] = {}
        for key, value in overrides.items():
            if value is not None:
                _check(_is_setting(PipelineConfig, key.split('.')), f'unknown setting {key!r}')
                changes[key] = value
        if any(changes.get(f'data.{name}') for name in DATA_SOURCE_FIELDS):
            changes.setdefault('data.sample', None)
        return _replaced(self, changes).validate()


def _is_setting(cls, path: List[str]) -> bool:
    """Whether `path` (a dotted name's parts) names a setting of dataclass `cls`, not a section."""
    hints = typing.get_type_hints(cls)
    head, rest = path[0], path[1:]
    if head not in hints:
        return False
    if dataclasses.is_dataclass(hints[head]):
        return bool(rest) and _is_setting(hints[head], rest)
    return not rest


def _replaced(settings, changes: Dict[str, Any]):
    """`settings` (a frozen dataclass) with `{'dotted.name': value}` replaced, nested sections included."""
    direct: Dict[str, Any] = {}
    nested: Dict[str, Dict[str, Any]] = {}
    for key, value in changes.items():
        head, _, rest = key.partition('.')
        if rest:
            nested.setdefault(head, {})[rest] = value
        else:
            direct[head] = value
    return dataclasses.replace(settings, **direct,
                               **{name: _replaced(getattr(settings, name), sub) for name, sub in nested.items()})


# Any of these names the data to read, so the generated sample is not wanted.
DATA_SOURCE_FIELDS = ('dataset', 'data_dir', 'source_dir')


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(f'Invalid pipeline config: {message}')


_require = hparams.require


PRESETS: Dict[str, PipelineConfig] = {
    'smoke': PipelineConfig(
        data=DataConfig(sample=SampleData(num_train=12, num_test=6)),
        training=TrainingConfig(epochs=1, batch_size=4, shuffle_buffer=16, steps_per_epoch=2, validation_steps=1,
                                batchnorm_momentum=0.9),
        evaluation=EvaluationConfig(min_pixel_accuracy=0.0, min_mean_iou=0.0, max_regression=1.0),
    ),
    # The cosine decay settles the weights: with a constant rate the last epoch's validation pixel accuracy
    # swung by ~1 point from run to run (0.953-0.962); decayed, the last four epochs stay within 0.1 (0.966).
    'default': PipelineConfig(
        data=DataConfig(sample=SampleData()),
        training=TrainingConfig(epochs=12, batch_size=16, shuffle_buffer=256, batchnorm_momentum=0.9,
                                lr_schedule='cosine'),
        evaluation=EvaluationConfig(min_pixel_accuracy=0.7, min_mean_iou=0.4, max_regression=0.01),
    ),
    # A few hundred real photographs and no pretrained encoder (docs/training.md, "The `real` preset"): augmented batches,
    # a warm-up + cosine schedule, border and pet weighted twice the background, every training photo trained
    # on to the last epoch (holding 10% out for early stopping cost more than it chose), and predictions
    # averaged with the mirrored image's. Chosen by 40-epoch ablation runs (docs/training.md). Give it the data:
    # `--source_dir ../shared/data/oxford-pets-real` (or archives, or a TFDS data_dir).
    'real': PipelineConfig(
        training=TrainingConfig(epochs=40, batch_size=16, shuffle_buffer=256, learning_rate=2e-3,
                                batchnorm_momentum=0.9,
                                augmentation=AugmentationConfig(scale=0.3, rotation=10.0, shift=0.1, color=0.5),
                                lr_schedule='cosine', warmup_epochs=2, class_weights=(2.0, 1.0, 2.0),
                                test_time_flip=True),
        evaluation=EvaluationConfig(min_pixel_accuracy=0.75, min_mean_iou=0.5, max_regression=0.01),
    ),
    # Your own data in one command: five classes (a background and four kinds of shapes) generated in the folders
    # layout with its classes.json, trained at 160 px. Its own name, so its models never meet the pets' as baseline.
    'shapes': PipelineConfig(
        name='shapes',
        data=DataConfig(sample=SampleData(num_train=160, num_test=40, classes=5), image_size=160),
        training=TrainingConfig(epochs=10, batch_size=16, shuffle_buffer=256, batchnorm_momentum=0.9,
                                lr_schedule='cosine'),
        evaluation=EvaluationConfig(min_pixel_accuracy=0.7, min_mean_iou=0.4, max_regression=0.01),
    ),
    'tutorial': PipelineConfig(
        training=TrainingConfig(epochs=20, batch_size=64, shuffle_buffer=1000, encoder_weights='imagenet'),
        evaluation=EvaluationConfig(min_pixel_accuracy=0.85, min_mean_iou=0.6, max_regression=0.005),
        # A real budget: one 500x375 JPEG took ~22 ms p50 on 2 CPU cores (bench/README.md).
        serving=ServingConfig(latency_budget_ms=250.0),
    ),
    'full': PipelineConfig(
        training=TrainingConfig(epochs=40, batch_size=64, shuffle_buffer=1000, encoder_weights='imagenet',
                                train_encoder=True, learning_rate=2e-4, class_weights=(2.0, 2.0, 1.0)),
        evaluation=EvaluationConfig(min_pixel_accuracy=0.88, min_mean_iou=0.65, max_regression=0.005),
    ),
}


def preset(name: str) -> PipelineConfig:
    """Returns the named preset.

    Args:
      name: one of `PRESETS`.

    Returns:
      The preset's config.

    Raises:
      ValueError: unknown name.
    """
    if name not in PRESETS:
        raise ValueError(f'Unknown preset {name!r}; choose one of {", ".join(PRESETS)}')
    return PRESETS[name]
