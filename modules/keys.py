"""The one source of truth for feature keys.

ExampleGen writes the canonical raw keys below whatever the TFDS dataset calls its features;
`preprocessing_fn`, `run_fn`, the serving signatures and the TFMA config all import from here. What the
classes are and the image size are data and settings, not keys: see `modules/classes.py`.
"""

IMAGE_KEY = 'image'
MASK_KEY = 'segmentation_mask'
FILE_NAME_KEY = 'file_name'
# What Oxford-IIIT Pet examples say about the animal: the Evaluator's default slices (breed id, cat or dog).
LABEL_KEY = 'label'
SPECIES_KEY = 'species'
# Per-example numbers ExampleGen measures for data validation (never model inputs).
IMAGE_HEIGHT_KEY = 'image_height'
IMAGE_WIDTH_KEY = 'image_width'
IMAGE_CHANNELS_KEY = 'image_channels'
IMAGE_FEATURES = (IMAGE_HEIGHT_KEY, IMAGE_WIDTH_KEY, IMAGE_CHANNELS_KEY)
# ExampleGen also writes one `<class>_fraction` per class (`modules.classes.ClassDescription.fraction_keys`).
FRACTION_SUFFIX = '_fraction'
IMAGE_CHANNELS = 3

# TFLite variants of the model, in the order they are made and reported (see modules/tflite.py).
TFLITE_VARIANTS = ('float32', 'float16', 'int8')


def transformed_name(key: str) -> str:
    """Returns the name Transform gives to the transformed version of `key`.

    Args:
      key: a raw feature key such as `IMAGE_KEY`.

    Returns:
      The transformed feature key, e.g. `image_xf`.
    """
    return f'{key}_xf'


def is_drift_feature(key: str) -> bool:
    """Whether ExampleGen's per-example feature `key` is compared across data versions for drift."""
    return key in IMAGE_FEATURES or key.endswith(FRACTION_SUFFIX)
