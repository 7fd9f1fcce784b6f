"""Typed, frozen settings of the pipeline and its named presets.

`PipelineConfig` groups data, training and evaluation settings; `PRESETS` names the ones we run:
- `smoke`: a few steps on a tiny generated dataset, for tests;
- `default`: the generated sample dataset, trains on 2 CPU cores in a few minutes;
- `tutorial`: the seed tutorial (Oxford-IIIT Pet, batch 64, 20 epochs, buffer 1000, ImageNet encoder);
- `full`: the tutorial's data and model, then fine-tuning of the encoder as well.

Nothing here reads files or the environment; runners turn flags into `dataclasses.replace` calls
and `validate()` rejects nonsense before any component runs. The Trainer receives
`TrainingConfig` as `custom_config` (see `to_custom_config`), so MLMD records what made each model.
"""

import dataclasses
import os
from typing import Any, Dict, Optional, Tuple

from modules import keys

ENCODER_WEIGHT_CHOICES = ('imagenet', 'none')
CURATED_SCHEMAS = {'oxford_iiit_pet': os.path.join(os.path.dirname(__file__), 'schemas', 'oxford_iiit_pet.pbtxt')}


@dataclasses.dataclass(frozen=True)
class SampleData:
    """A generated dataset in the Oxford-IIIT Pet layout, made by the runner when no data is given."""

    num_train: int = 240
    num_test: int = 60
    seed: int = 0


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
    max_skipped_fraction: float = 0.05

    @property
    def dataset_name(self) -> str:
        return self.dataset.partition(':')[0]

    @property
    def schema_path(self) -> Optional[str]:
        """The curated schema for this dataset, or None to infer one with SchemaGen."""
        return CURATED_SCHEMAS.get(self.dataset_name)


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    """Hyperparameters handed to `run_fn` through the Trainer's custom_config."""

    epochs: int = 10
    batch_size: int = 16
    shuffle_buffer: int = 1000
    learning_rate: float = 1e-3
    # 'imagenet' (Keras download), 'none' (random init; the encoder is then trained), or a local .h5 path.
    encoder_weights: str = 'none'
    train_encoder: bool = False
    dropout: float = 0.0
    # None keeps Keras' BatchNorm momentum; small datasets trained from random weights need ~0.9.
    batchnorm_momentum: Optional[float] = None
    # Speed: bfloat16 compute with float32 variables (None: where the training machine has native bfloat16,
    # see modules.model.native_bfloat16; the exported model always computes in float32), and XLA compilation
    # of the train step (off: on CPU it made training 5-7x slower, see bench/README.md).
    mixed_bfloat16: Optional[bool] = None
    jit_compile: bool = False
    class_weights: Optional[Tuple[float, ...]] = None
    steps_per_epoch: Optional[int] = None
    validation_steps: Optional[int] = None
    warm_start: bool = False
    seed: int = 0

    @property
    def encoder_is_trained(self) -> bool:
        """Random encoder weights are useless frozen, so they are always trained."""
        return self.train_encoder or self.encoder_weights == 'none'


@dataclasses.dataclass(frozen=True)
class EvaluationConfig:
    """Blessing rules: absolute lower bounds, and how much worse than the baseline is tolerated."""

    min_pixel_accuracy: float = 0.5
    min_mean_iou: float = 0.3
    max_regression: float = 0.01


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    """Everything that defines a pipeline run except platform details (paths, images, Beam args)."""

    name: str = 'petseg'
    data: DataConfig = DataConfig()
    training: TrainingConfig = TrainingConfig()
    evaluation: EvaluationConfig = EvaluationConfig()

    def validate(self) -> 'PipelineConfig':
        """Raises ValueError naming the first nonsensical setting; returns self for chaining."""
        _check(self.name.replace('-', '').replace('_', '').isalnum(), f'name {self.name!r} must be alphanumeric, - or _')
        data, training, evaluation = self.data, self.training, self.evaluation
        _check(bool(data.dataset_name), 'data.dataset must name a TFDS dataset')
        _check(data.train_split != '' and data.eval_split != '', 'data.train_split and data.eval_split must be set')
        _check(0.0 <= data.max_skipped_fraction < 1.0, 'data.max_skipped_fraction must be in [0, 1)')
        if data.sample is not None:
            _check(data.sample.num_train >= 1 and data.sample.num_test >= 1, 'data.sample needs >= 1 train and test image')
            _check(data.dataset_name == 'oxford_iiit_pet', 'data.sample generates Oxford-IIIT Pet data only')
        _check(training.epochs >= 1, f'training.epochs must be >= 1, got {training.epochs}')
        _check(training.batch_size >= 1, f'training.batch_size must be >= 1, got {training.batch_size}')
        _check(training.shuffle_buffer >= 1, 'training.shuffle_buffer must be >= 1')
        _check(0.0 < training.learning_rate < 1.0, f'training.learning_rate must be in (0, 1), got {training.learning_rate}')
        _check(0.0 <= training.dropout < 1.0, 'training.dropout must be in [0, 1)')
        _check(training.batchnorm_momentum is None or 0.0 < training.batchnorm_momentum < 1.0,
               'training.batchnorm_momentum must be None or in (0, 1)')
        weights = training.encoder_weights
        _check(weights in ENCODER_WEIGHT_CHOICES or weights.endswith('.h5'),
               f'training.encoder_weights must be one of {ENCODER_WEIGHT_CHOICES} or a path to a .h5 file, got {weights!r}')
        if training.class_weights is not None:
            _check(len(training.class_weights) == keys.NUM_CLASSES and all(w > 0 for w in training.class_weights),
                   f'training.class_weights needs {keys.NUM_CLASSES} positive values, got {training.class_weights}')
        for name in ('steps_per_epoch', 'validation_steps'):
            value = getattr(training, name)
            _check(value is None or value >= 1, f'training.{name} must be None or >= 1, got {value}')
        for name in ('min_pixel_accuracy', 'min_mean_iou'):
            _check(0.0 <= getattr(evaluation, name) <= 1.0, f'evaluation.{name} must be in [0, 1]')
        _check(evaluation.max_regression >= 0.0, 'evaluation.max_regression must be >= 0')
        return self

    def to_custom_config(self) -> Dict[str, Any]:
        """The Trainer's custom_config: training settings plus what the model must agree with."""
        return {'training': dataclasses.asdict(self.training), 'dataset': self.data.dataset}


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(f'Invalid pipeline config: {message}')


def training_config_from_custom_config(custom_config: Dict[str, Any]) -> TrainingConfig:
    """Rebuilds the TrainingConfig that `PipelineConfig.to_custom_config` serialized.

    Args:
      custom_config: the Trainer's custom_config.

    Returns:
      The TrainingConfig, with tuples restored from JSON lists.
    """
    values = dict(custom_config['training'])
    if values.get('class_weights') is not None:
        values['class_weights'] = tuple(values['class_weights'])
    return TrainingConfig(**values)


PRESETS: Dict[str, PipelineConfig] = {
    'smoke': PipelineConfig(
        data=DataConfig(sample=SampleData(num_train=12, num_test=6)),
        training=TrainingConfig(epochs=1, batch_size=4, shuffle_buffer=16, steps_per_epoch=2, validation_steps=1,
                                batchnorm_momentum=0.9),
        evaluation=EvaluationConfig(min_pixel_accuracy=0.0, min_mean_iou=0.0, max_regression=1.0),
    ),
    'default': PipelineConfig(
        data=DataConfig(sample=SampleData()),
        training=TrainingConfig(epochs=12, batch_size=16, shuffle_buffer=256, batchnorm_momentum=0.9),
        evaluation=EvaluationConfig(min_pixel_accuracy=0.7, min_mean_iou=0.4, max_regression=0.01),
    ),
    'tutorial': PipelineConfig(
        training=TrainingConfig(epochs=20, batch_size=64, shuffle_buffer=1000, encoder_weights='imagenet'),
        evaluation=EvaluationConfig(min_pixel_accuracy=0.85, min_mean_iou=0.6, max_regression=0.005),
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
