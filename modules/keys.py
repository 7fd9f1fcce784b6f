"""The one source of truth for feature keys, class layout (names, colours) and image size.

ExampleGen writes the canonical raw keys below whatever the TFDS dataset calls its features;
`preprocessing_fn`, `run_fn`, the serving signatures and the TFMA config all import from here.
"""

IMAGE_KEY = 'image'
MASK_KEY = 'segmentation_mask'
FILE_NAME_KEY = 'file_name'
# Per-example numbers ExampleGen measures for data validation (never model inputs).
IMAGE_HEIGHT_KEY = 'image_height'
IMAGE_WIDTH_KEY = 'image_width'
IMAGE_CHANNELS_KEY = 'image_channels'
CLASS_FRACTION_KEYS = ('pet_fraction', 'background_fraction', 'border_fraction')  # one per CLASS_NAMES entry
DRIFT_FEATURES = (IMAGE_HEIGHT_KEY, IMAGE_WIDTH_KEY, IMAGE_CHANNELS_KEY) + CLASS_FRACTION_KEYS

IMAGE_SIZE = 128
IMAGE_CHANNELS = 3

# Oxford-IIIT Pet trimaps store 1=pet, 2=background, 3=border; the model predicts 0, 1, 2.
TRIMAP_OFFSET = 1
CLASS_NAMES = ('pet', 'background', 'border')
NUM_CLASSES = len(CLASS_NAMES)
PET_CLASS_ID = 0
# RGB per class, for masks people look at (report, TensorBoard, CLI, web page): warm pet, neutral
# background, bright border so the thin ring is easy to see.
CLASS_COLORS = ((230, 90, 40), (40, 60, 120), (250, 230, 60))

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
