"""The Trainer's settings: `TrainingConfig` (with its augmentation and speed sections), the Tuner's
`TuningConfig`, and their round trip through the custom_config.

User code the Trainer imports (`modules/`) must not depend on the pipeline's wiring, so the training
settings live here and `pipeline/config.py` builds on them. The pipeline serializes a `TrainingConfig`
into `custom_config['training']` (plain JSON, recorded in MLMD); `run_fn` rebuilds it with
`from_custom_config`. Progress comes back as records of the `PROGRESS_LOGGER` logger.
"""

import dataclasses
from typing import Any, Dict, Optional, Tuple

CUSTOM_CONFIG_KEY = 'training'
TUNING_KEY = 'tuning'
LR_SCHEDULES = ('constant', 'cosine')
ENCODER_WEIGHT_CHOICES = ('imagenet', 'none')  # or a local .h5 file
# What the Tuner searches (modules/tune.py), named like the settings they replace in the Trainer
# (`with_hyperparameters`; augment_strength is training.augmentation.strength).
TUNABLE = ('learning_rate', 'dropout', 'batchnorm_momentum', 'augment_strength')
# run_fn logs one record per epoch to this logger; a runner's console shows it (see pipeline/local/console.py).
PROGRESS_LOGGER = 'petseg.progress'
# What run_fn writes beside TensorBoard's logs: the per-epoch metrics, and the settings in effect (the Tuner's
# values applied, what the Trainer decided filled in) with why each decided one was decided so (`DECIDED_KEY`).
HISTORY_FILE = 'history.json'
TRAINED_SETTINGS_FILE = 'training.json'
DECIDED_KEY = 'decided'
# What the Trainer's recomputation of the BatchNorm statistics did, with the validation scores before and after.
BATCHNORM_FILE = 'batchnorm.json'


@dataclasses.dataclass(frozen=True)
class AugmentationConfig:
    """Augmentation of training batches only (`modules.augment`; never at evaluation or serving).

    The joint flip, largest zoom (1 + scale), rotation (degrees), shift (fraction of the side) and colour
    jitter, each multiplied by `strength` (the knob the Tuner searches); `at_strength()` applies it.
    """

    flip: bool = True
    # Zoom factor drawn log-uniformly in [1 / (1 + scale), 1 + scale]; zooming in crops, zooming out reflects.
    scale: float = 0.0
    # Rotation in degrees, uniformly in [-rotation, rotation].
    rotation: float = 0.0
    # Shift of the centre, a fraction of the side, uniformly in [-shift, shift] per axis.
    shift: float = 0.0
    # Brightness +-0.2c, contrast and saturation x[1-0.4c, 1+0.4c], hue +-0.05c turns, for c = color.
    color: float = 0.0
    strength: float = 1.0

    def validate(self) -> None:
        """Raises ValueError naming the first nonsensical augmentation setting."""
        for name in ('scale', 'rotation', 'shift', 'color', 'strength'):
            value = getattr(self, name)
            require(value >= 0, f'training.augmentation.{name} must be >= 0, got {value}')
        require(self.shift * self.strength < 1,
                'training.augmentation.shift x strength must be < 1 (a fraction of the side)')

    def at_strength(self) -> 'AugmentationConfig':
        """The amounts that are applied: each multiplied by `strength`, which becomes 1."""
        return dataclasses.replace(self, scale=self.scale * self.strength, rotation=self.rotation * self.strength,
                                   shift=self.shift * self.strength, color=self.color * self.strength, strength=1.0)

    @property
    def geometric(self) -> bool:
        return self.scale > 0 or self.rotation > 0 or self.shift > 0


@dataclasses.dataclass(frozen=True)
class SpeedConfig:
    """How training computes and holds its data, never what: every setting here trains the same function with the
    same weights.

    None means the Trainer decides (`modules.train.effective_settings`) and records why in training.json.
    """

    # bfloat16 compute with float32 variables (None: as the training machine's hardware calls for, measured
    # against float32 where it does not settle it; `modules.precision.choose`). The exported model always
    # computes in float32.
    mixed_bfloat16: Optional[bool] = None
    # XLA compilation of the train step (off: on CPU it made training 5-7x slower, see bench/README.md).
    jit_compile: bool = False
    # Each stride-2 Conv2DTranspose as a 2x2 convolution + depth_to_space (modules.layers.SubPixelConv2DTranspose).
    # Off unless the benchmark shows it faster.
    subpixel_upsampling: bool = False
    # The transposed convolutions of the decoder's 4x4 and 8x8 inputs as one matrix multiply over the nine
    # kernel taps (modules.layers.GemmConv2DTranspose). None: under mixed bfloat16, where it measured faster
    # (AMX); the stock layer in float32, where it measured no faster.
    gemm_upsampling: Optional[bool] = None
    # The logits layer from the last decoder block's output and the first skip taken apart (each part's
    # transposed convolution with its slice of the kernel, summed) instead of their concatenation
    # (modules.layers.SplitSkipConv2DTranspose); with a frozen encoder the skip part needs no input gradient.
    # None: on unless subpixel_upsampling (which computes the logits layer its own way).
    split_skip_logits: Optional[bool] = None
    # The decoded training and validation tensors are kept in memory after the first epoch when they fit in
    # this many MiB; larger data is read and parsed from Transform's files every epoch (memory stays flat).
    cache_budget_mb: int = 4096

    def validate(self) -> None:
        """Raises ValueError when two forms of the same layers are asked for, or a negative budget."""
        require(self.cache_budget_mb >= 0, f'training.speed.cache_budget_mb must be >= 0, got {self.cache_budget_mb}')
        require(not (self.subpixel_upsampling and self.gemm_upsampling),
                'training.speed.subpixel_upsampling and gemm_upsampling are two forms of the same layers: choose one')
        require(not (self.subpixel_upsampling and self.split_skip_logits),
                'training.speed.subpixel_upsampling and split_skip_logits are two forms of the logits layer: '
                'choose one')


@dataclasses.dataclass(frozen=True)
class TuningConfig:
    """The opt-in hyperparameter search (TFX Tuner + KerasTuner, `modules/tune.py`) before the Trainer."""

    tune: bool = False
    max_trials: int = 4
    # Each trial trains this many epochs (of trial_steps_per_epoch steps, when set) and scores its best
    # validation mean IoU on the held-out part of the training split (training.validation_split).
    trial_epochs: int = 6
    trial_steps_per_epoch: Optional[int] = None

    def validate(self) -> None:
        """Raises ValueError naming the first nonsensical search setting."""
        for name in ('max_trials', 'trial_epochs'):
            value = getattr(self, name)
            require(value >= 1, f'tuning.{name} must be >= 1, got {value}')
        require(self.trial_steps_per_epoch is None or self.trial_steps_per_epoch >= 1,
                f'tuning.trial_steps_per_epoch must be None or >= 1, got {self.trial_steps_per_epoch}')


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    """Hyperparameters handed to `run_fn` through the Trainer's custom_config.

    What the model learns (optimiser, schedule, architecture options, export) lives here; the augmentation and
    the speed settings, which do not change the function trained, are nested sections.
    """

    epochs: int = 10
    # Per replica: with several devices or workers each step sees batch_size x replicas examples.
    batch_size: int = 16
    shuffle_buffer: int = 1000
    learning_rate: float = 1e-3
    # 'imagenet' (Keras download), 'none' (random init; the encoder is then trained), or a local .h5 path.
    encoder_weights: str = 'none'
    train_encoder: bool = False
    dropout: float = 0.0
    # None keeps Keras' BatchNorm momentum; small datasets trained from random weights need ~0.9.
    batchnorm_momentum: Optional[float] = None
    # After training, every trained BatchNorm's moving statistics are recomputed from up to this many training
    # images at the final weights (`modules.precise_batchnorm`); 0 keeps the moving averages of training.
    precise_batchnorm_images: int = 1024
    class_weights: Optional[Tuple[float, ...]] = None
    augmentation: AugmentationConfig = AugmentationConfig()
    speed: SpeedConfig = SpeedConfig()
    # 'constant', or 'cosine': decay to ~0 by the last epoch, after warmup_epochs of linear warm-up.
    lr_schedule: str = 'constant'
    warmup_epochs: int = 0
    # Fraction of the training examples held out to validate on (0: validate on the eval split). Early
    # stopping and the Tuner need it, so that the eval split the Evaluator blesses on stays unseen.
    validation_split: float = 0.0
    # Stop after this many epochs without a better validation mean IoU and keep the best epoch's weights
    # (None: train every epoch, keep the last weights).
    early_stopping_patience: Optional[int] = None
    # Export: every prediction averages the logits of the image and of its mirror image (twice the inference
    # compute; modules.signatures.segment_logits). Training is unchanged.
    test_time_flip: bool = False
    steps_per_epoch: Optional[int] = None
    validation_steps: Optional[int] = None
    warm_start: bool = False
    seed: int = 0

    def validate(self) -> None:
        """Raises ValueError naming the first nonsensical training setting."""
        for name in ('epochs', 'batch_size', 'shuffle_buffer'):
            value = getattr(self, name)
            require(value >= 1, f'training.{name} must be >= 1, got {value}')
        require(self.seed >= 0, f'training.seed must be >= 0, got {self.seed}')
        require(0.0 < self.learning_rate < 1.0, f'training.learning_rate must be in (0, 1), got {self.learning_rate}')
        require(0.0 <= self.dropout < 1.0, f'training.dropout must be in [0, 1), got {self.dropout}')
        require(self.batchnorm_momentum is None or 0.0 < self.batchnorm_momentum < 1.0,
                f'training.batchnorm_momentum must be None or in (0, 1), got {self.batchnorm_momentum}')
        require(self.precise_batchnorm_images >= 0,
                f'training.precise_batchnorm_images must be >= 0, got {self.precise_batchnorm_images}')
        require(self.encoder_weights in ENCODER_WEIGHT_CHOICES or self.encoder_weights.endswith('.h5'),
                f'training.encoder_weights must be one of {ENCODER_WEIGHT_CHOICES} or a path to a .h5 file, '
                f'got {self.encoder_weights!r}')
        require(self.class_weights is None or all(w > 0 for w in self.class_weights),
                f'training.class_weights needs positive values, got {self.class_weights}')
        self.augmentation.validate()
        self.speed.validate()
        self._validate_schedule()

    def _validate_schedule(self) -> None:
        require(self.lr_schedule in LR_SCHEDULES,
                f'training.lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}')
        require(0 <= self.warmup_epochs < self.epochs, f'training.warmup_epochs must be in [0, epochs), got {self.warmup_epochs}')
        require(0.0 <= self.validation_split <= 0.5,
                f'training.validation_split must be in [0, 0.5], got {self.validation_split}')
        if self.early_stopping_patience is not None:
            require(self.early_stopping_patience >= 1,
                    f'training.early_stopping_patience must be None or >= 1, got {self.early_stopping_patience}')
            require(self.validation_split > 0, 'training.early_stopping_patience needs training.validation_split > 0, '
                    'so that choosing the best epoch never looks at the eval split the Evaluator blesses on')
        for name in ('steps_per_epoch', 'validation_steps'):
            value = getattr(self, name)
            require(value is None or value >= 1, f'training.{name} must be None or >= 1, got {value}')

    @property
    def encoder_is_trained(self) -> bool:
        """Random encoder weights are useless frozen, so they are always trained."""
        return self.train_encoder or self.encoder_weights == 'none'

    def with_speed(self, **values: Any) -> 'TrainingConfig':
        """These settings with some speed settings replaced."""
        return dataclasses.replace(self, speed=dataclasses.replace(self.speed, **values))

    def with_augmentation(self, **values: Any) -> 'TrainingConfig':
        """These settings with some augmentation settings replaced."""
        return dataclasses.replace(self, augmentation=dataclasses.replace(self.augmentation, **values))

    def to_custom_config(self) -> Dict[str, Any]:
        """The JSON-ready form stored under `custom_config['training']` (sections as nested objects)."""
        return dataclasses.asdict(self)


# Settings of custom_configs written before the augmentation and speed sections were nested (MLMD keeps them):
# flat name -> (section, field).
_FLAT_NAMES = {**{f'augment_{field.name}': ('augmentation', field.name) for field in dataclasses.fields(AugmentationConfig)},
               **{field.name: ('speed', field.name) for field in dataclasses.fields(SpeedConfig)}}
_SECTIONS = {'augmentation': AugmentationConfig, 'speed': SpeedConfig}


def from_custom_config(custom_config: Dict[str, Any]) -> TrainingConfig:
    """Rebuilds the TrainingConfig that the pipeline put into the Trainer's custom_config.

    Args:
      custom_config: the Trainer's custom_config; the flat names of earlier runs (`augment_scale`,
        `mixed_bfloat16`, ...) are read into their sections.

    Returns:
      The TrainingConfig, with sections and tuples restored from JSON.

    Raises:
      ValueError: the custom_config holds no training settings, or unknown ones.
    """
    if not custom_config or CUSTOM_CONFIG_KEY not in custom_config:
        raise ValueError(f"The Trainer's custom_config has no {CUSTOM_CONFIG_KEY!r} settings; "
                         'build the Trainer with PipelineConfig.to_custom_config().')
    values = dict(custom_config[CUSTOM_CONFIG_KEY])
    sections = {name: dict(values.pop(name, None) or {}) for name in _SECTIONS}
    for flat, (section, field) in _FLAT_NAMES.items():
        if flat in values:
            sections[section].setdefault(field, values.pop(flat))
    unknown = sorted(set(values) - {field.name for field in dataclasses.fields(TrainingConfig)})
    unknown += [f'{name}.{field}' for name, cls in _SECTIONS.items()
                for field in sorted(set(sections[name]) - {f.name for f in dataclasses.fields(cls)})]
    if unknown:
        raise ValueError(f'Unknown training settings in custom_config: {", ".join(unknown)}')
    if values.get('class_weights') is not None:
        values['class_weights'] = tuple(values['class_weights'])
    return TrainingConfig(**values, **{name: cls(**sections[name]) for name, cls in _SECTIONS.items()})


def with_hyperparameters(training: TrainingConfig, values: Optional[Dict[str, Any]]) -> TrainingConfig:
    """`training` with the Tuner's best values (`TUNABLE` names) in place of the configured ones.

    Args:
      training: the configured settings.
      values: hyperparameter name -> value (KerasTuner's `HyperParameters.values`), or None.

    Returns:
      The settings to train with.

    Raises:
      ValueError: a name that is not tunable.
    """
    if not values:
        return training
    unknown = sorted(set(values) - set(TUNABLE))
    if unknown:
        raise ValueError(f'Hyperparameters {", ".join(unknown)} are not tunable; expected some of {", ".join(TUNABLE)}')
    values = dict(values)
    strength = values.pop('augment_strength', None)
    training = dataclasses.replace(training, **values)
    return training if strength is None else training.with_augmentation(strength=strength)


def tuned_values(training: TrainingConfig) -> Dict[str, Any]:
    """The `TUNABLE` hyperparameters' values in `training`, named as the Tuner names them."""
    return {name: training.augmentation.strength if name == 'augment_strength' else getattr(training, name)
            for name in TUNABLE}


def tuning_from_custom_config(custom_config: Optional[Dict[str, Any]]) -> TuningConfig:
    """The search's settings the pipeline put under `custom_config['tuning']` (defaults where absent)."""
    return TuningConfig(**((custom_config or {}).get(TUNING_KEY) or {}))


def flatten(settings: Dict[str, Any], prefix: str = '') -> Dict[str, Any]:
    """`{'speed': {'jit_compile': False}}` -> `{'speed.jit_compile': False}`: nested settings as one table."""
    flat: Dict[str, Any] = {}
    for name, value in settings.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f'{prefix}{name}.'))
        else:
            flat[prefix + name] = value
    return flat


def require(condition: bool, message: str) -> None:
    """Raises ValueError(`message`) unless `condition`: how every settings type says what is wrong with it."""
    if not condition:
        raise ValueError(message)
