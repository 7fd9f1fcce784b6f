"""The one source of truth for feature keys, class layout and image size.

ExampleGen writes the canonical raw keys below whatever the TFDS dataset calls its features;
`preprocessing_fn`, `run_fn`, the serving signatures and the TFMA config all import from here.
"""

IMAGE_KEY = 'image'
MASK_KEY = 'segmentation_mask'
FILE_NAME_KEY = 'file_name'

IMAGE_SIZE = 128
IMAGE_CHANNELS = 3

# Oxford-IIIT Pet trimaps store 1=pet, 2=background, 3=border; the model predicts 0, 1, 2.
TRIMAP_OFFSET = 1
CLASS_NAMES = ('pet', 'background', 'border')
NUM_CLASSES = len(CLASS_NAMES)
PET_CLASS_ID = 0


def transformed_name(key: str) -> str:
    """Returns the name Transform gives to the transformed version of `key`.

    Args:
      key: a raw feature key such as `IMAGE_KEY`.

    Returns:
      The transformed feature key, e.g. `image_xf`.
    """
    return f'{key}_xf'
