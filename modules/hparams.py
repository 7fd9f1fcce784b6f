"""The Trainer's hyperparameters: `TrainingConfig` and its round trip through the Trainer's custom_config.

User code the Trainer imports (`modules/`) must not depend on the pipeline's wiring, so the training
settings live here and `pipeline/config.py` builds on them. The pipeline serializes a `TrainingConfig`
into `custom_config['training']` (plain JSON, recorded in MLMD); `run_fn` rebuilds it with
`from_custom_config`. Progress comes back as records of the `PROGRESS_LOGGER` logger.
"""

import dataclasses
from typing import Any, Dict, Optional, Tuple

CUSTOM_CONFIG_KEY = 'training'
LR_SCHEDULES = ('constant', 'cosine')
ENCODER_WEIGHT_CHOICES = ('imagenet', 'none')  # or a local .h5 file
# What the Tuner searches (modules/tune.py); each is a TrainingConfig field, so its best values replace the
# configured ones in the Trainer.
TUNABLE = ('learning_rate', 'dropout', 'batchnorm_momentum', 'augment_strength')
# run_fn logs one record per epoch to this logger; a runner's console shows it (see pipeline/local/console.py).
PROGRESS_LOGGER = 'petseg.progress'
# What run_fn writes beside TensorBoard's logs: the per-epoch metrics, and the settings in effect (the Tuner's
# values applied, what the Trainer decided filled in) with why each decided one was decided so (`DECIDED_KEY`).
HISTORY_FILE = 'history.json'
TRAINED_SETTINGS_FILE = 'training.json'
DECIDED_KEY = 'decided'


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    """Hyperparameters handed to `run_fn` through the Trainer's custom_config."""

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
    # Speed: bfloat16 compute with float32 variables (None: as the training machine's hardware calls for, measured
    # against float32 where it does not settle it; see modules.precision.choose; the exported model
    # always computes in float32; training.json records what was used), and XLA compilation
    # of the train step (off: on CPU it made training 5-7x slower, see bench/README.md).
    mixed_bfloat16: Optional[bool] = None
    jit_compile: bool = False
    # Compute each stride-2 Conv2DTranspose as a 2x2 convolution + depth_to_space (the same function and
    # weights; see modules.layers.SubPixelConv2DTranspose). Off unless the benchmark shows it faster.
    subpixel_upsampling: bool = False
    # Compute the transposed convolutions of the decoder's 4x4 and 8x8 inputs as one matrix multiply over the
    # nine kernel taps (the same function and weights; modules.layers.GemmConv2DTranspose). None: under mixed
    # bfloat16, where it measured faster (AMX); the stock layer in float32, where it measured no faster.
    gemm_upsampling: Optional[bool] = None
    # Compute the logits layer from the last decoder block's output and the first skip taken apart (each part's
    # transposed convolution with its slice of the kernel, summed) instead of their concatenation: the same
    # function and weights (modules.layers.SplitSkipConv2DTranspose); with a frozen encoder the skip part needs no
    # input gradient. None: on unless subpixel_upsampling (which computes the logits layer its own way).
    split_skip_logits: Optional[bool] = None
    class_weights: Optional[Tuple[float, ...]] = None
    # Augmentation of training batches only (modules.augment; never at evaluation or serving): the joint flip,
    # largest zoom (1 + scale), rotation (degrees), shift (fraction of the side) and colour jitter, each
    # multiplied by augment_strength (the knob the Tuner searches).
    augment_flip: bool = True
    augment_scale: float = 0.0
    augment_rotation: float = 0.0
    augment_shift: float = 0.0
    augment_color: float = 0.0
    augment_strength: float = 1.0
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
        require(not (self.subpixel_upsampling and self.gemm_upsampling),
                'training.subpixel_upsampling and training.gemm_upsampling are two forms of the same layers: choose one')
        require(not (self.subpixel_upsampling and self.split_skip_logits),
                'training.subpixel_upsampling and training.split_skip_logits are two forms of the logits layer: '
                'choose one')
        require(self.encoder_weights in ENCODER_WEIGHT_CHOICES or self.encoder_weights.endswith('.h5'),
                f'training.encoder_weights must be one of {ENCODER_WEIGHT_CHOICES} or a path to a .h5 file, '
                f'got {self.encoder_weights!r}')
        require(self.class_weights is None or all(w > 0 for w in self.class_weights),
                f'training.class_weights needs positive values, got {self.class_weights}')
        self._validate_augmentation()
        self._validate_schedule()

    def _validate_augmentation(self) -> None:
        for name in ('augment_scale', 'augment_rotation', 'augment_shift', 'augment_color', 'augment_strength'):
            value = getattr(self, name)
            require(value >= 0, f'training.{name} must be >= 0, got {value}')
        require(self.augment_shift * self.augment_strength < 1,
                'training.augment_shift x augment_strength must be < 1 (a fraction of the side)')

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

    def to_custom_config(self) -> Dict[str, Any]:
        """The JSON-ready form stored under `custom_config['training']`."""
        return dataclasses.asdict(self)


def from_custom_config(custom_config: Dict[str, Any]) -> TrainingConfig:
    """Rebuilds the TrainingConfig that the pipeline put into the Trainer's custom_config.

    Args:
      custom_config: the Trainer's custom_config.

    Returns:
      The TrainingConfig, with tuples restored from JSON lists.

    Raises:
      ValueError: the custom_config holds no training settings, or unknown ones.
    """
    if not custom_config or CUSTOM_CONFIG_KEY not in custom_config:
        raise ValueError(f"The Trainer's custom_config has no {CUSTOM_CONFIG_KEY!r} settings; "
                         'build the Trainer with PipelineConfig.to_custom_config().')
    values = dict(custom_config[CUSTOM_CONFIG_KEY])
    known = {field.name for field in dataclasses.fields(TrainingConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f'Unknown training settings in custom_config: {", ".join(unknown)}')
    if values.get('class_weights') is not None:
        values['class_weights'] = tuple(values['class_weights'])
    return TrainingConfig(**values)


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
    return dataclasses.replace(training, **values)


def require(condition: bool, message: str) -> None:
    """Raises ValueError(`message`) unless `condition`: how every settings type says what is wrong with it."""
    if not condition:
        raise ValueError(message)
