"""Pictures of masks: class colours, overlays on the original image, and the seed's Input/True/Predicted grid.

Used by the prediction CLI (`modules.predict`), the run report and TensorBoard image summaries.
Matplotlib runs with the non-interactive Agg backend, so this works on machines without a display.
"""

from typing import Dict, Optional, Sequence

import matplotlib

matplotlib.use('Agg')

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from modules import classes  # noqa: E402

_OXFORD_COLORS = classes.OXFORD_IIIT_PET.colors


def colorize(mask: np.ndarray, colors: Sequence[Sequence[int]] = _OXFORD_COLORS) -> np.ndarray:
    """Class ids [H, W] -> RGB uint8 [H, W, 3] with one colour per class; black where no class is (ignored)."""
    palette = np.array(list(colors) + [(0, 0, 0)], dtype=np.uint8)
    return palette[np.clip(mask, 0, len(colors))]


def overlay(image: Image.Image, mask: np.ndarray, alpha: float = 0.45,
            colors: Sequence[Sequence[int]] = _OXFORD_COLORS) -> Image.Image:
    """The colourised mask blended over `image` at the image's own size.

    Args:
      image: the original picture.
      mask: class ids [h, w], at the image's size (a smaller mask is upsampled with nearest).
      alpha: opacity of the mask.
      colors: RGB per class.

    Returns:
      RGB image of `image.size`.
    """
    colored = Image.fromarray(colorize(mask, colors)).resize(image.size, Image.NEAREST)
    return Image.blend(image.convert('RGB'), colored, alpha)


def class_areas(mask: np.ndarray, names: Sequence[str] = classes.OXFORD_IIIT_PET.names) -> Dict[str, float]:
    """Fraction of pixels of each class, keyed by class name."""
    counts = np.bincount(np.asarray(mask).ravel(), minlength=len(names))[:len(names)]
    return {name: float(c) / max(1, counts.sum()) for name, c in zip(names, counts)}


def prediction_grid(images: Sequence[np.ndarray], true_masks: Sequence[np.ndarray],
                    predicted_masks: Sequence[np.ndarray], path: str, title: Optional[str] = None,
                    names: Optional[Sequence[str]] = None, colors: Sequence[Sequence[int]] = _OXFORD_COLORS) -> str:
    """Saves the seed tutorial's display: one row per example, Input / True Mask / Predicted Mask.

    Args:
      images: float images in [0, 1] or uint8, [H, W, 3].
      true_masks: class ids [H, W] (or [H, W, 1]).
      predicted_masks: class ids [H, W].
      path: PNG to write.
      title: optional figure title.
      names: optional file name of each row, shown above its input image.
      colors: RGB per class.

    Returns:
      `path`.
    """
    rows = len(images)
    figure, axes = plt.subplots(rows, 3, figsize=(9, 3 * rows), squeeze=False)
    for row, panels in enumerate(zip(images, true_masks, predicted_masks)):
        for column, (panel, name) in enumerate(zip(panels, ('Input Image', 'True Mask', 'Predicted Mask'))):
            panel = np.asarray(panel)
            axes[row][column].imshow(panel if column == 0 else colorize(panel.reshape(panel.shape[:2]), colors))
            label = names[row] if names and column == 0 and names[row] else (name if row == 0 else '')
            axes[row][column].set_title(label, fontsize=9 if label != name else None)
            axes[row][column].axis('off')
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)
    return path


def training_curves(history: Dict[str, Sequence[float]], path: str) -> str:
    """Saves training vs validation loss and pixel accuracy per epoch (the seed's loss plot, plus accuracy).

    Args:
      history: Keras history (`loss`, `val_loss`, `pixel_accuracy`, `val_pixel_accuracy`).
      path: PNG to write.

    Returns:
      `path`.
    """
    figure, axes = plt.subplots(1, 2, figsize=(11, 4))
    for axis, metric, label in ((axes[0], 'loss', 'Loss'), (axes[1], 'pixel_accuracy', 'Pixel accuracy')):
        for key, style, name in ((metric, 'r-', 'Training'), (f'val_{metric}', 'bo', 'Validation')):
            if key in history:
                axis.plot(range(1, len(history[key]) + 1), history[key], style, label=f'{name} {label.lower()}')
        axis.set_title(f'Training and validation {label.lower()}')
        axis.set_xlabel('Epoch')
        axis.set_ylabel(label)
        axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)
    return path


def histogram(values: Sequence[float], path: str, title: str, xlabel: str, bins: int = 20) -> str:
    """Saves a histogram of `values` in [0, 1]; returns `path`."""
    figure, axis = plt.subplots(figsize=(6, 3.5))
    axis.hist(values, bins=bins, range=(0.0, 1.0), color='#4c72b0', edgecolor='white')
    axis.set_title(title, fontsize=10)
    axis.set_xlabel(xlabel)
    axis.set_ylabel('images')
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)
    return path
