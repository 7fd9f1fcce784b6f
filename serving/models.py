"""The versions a server offers: numbered SavedModels under a serving root, picked up as they are pushed.

Like TF Serving's file-system poller: every `poll_s` seconds the root is listed; a new numbered directory
is loaded once it is complete (its `saved_model.pb` and variables index exist; the versioned Pusher
renames a version into place only after copying it, and `.N.incomplete` staging directories are never
numbers); versions that disappear are unloaded. The newest loaded version is the default; the
`keep` newest stay loaded and addressable.
"""

import json
import logging
import os
import threading
from typing import Dict, List, Optional, Tuple

import tensorflow as tf

from modules import classes, paths

# Written by the Pusher beside the SavedModel (components/versioned_pusher/model_card.py), with .md and .html.
CARD_FACTS_FILE = 'model_card.json'
CARD_PAGE_FILE = 'model_card.html'
_COMPLETE_MARKERS = (paths.SAVED_MODEL_FILE, os.path.join('variables', 'variables.index'))


class ModelRepository:
    """Loaded versions of one model, refreshed from its serving root.

    Args:
      root: the serving root holding numbered version directories.
      keep: how many of the newest versions stay loaded.
    """

    def __init__(self, root: str, keep: int = 3):
        self.root = root
        self._keep = keep
        self._models: Dict[int, object] = {}
        # What each loaded version carries beside its graph (its classes and input size, its model card's facts),
        # read once at load.
        self._facts: Dict[int, Tuple[classes.ClassDescription, int]] = {}
        self._cards: Dict[int, Dict] = {}
        self._errors: Dict[int, str] = {}
        self._lock = threading.Lock()

    def refresh(self) -> List[int]:
        """Loads new complete versions, drops removed ones; returns the loaded versions, ascending."""
        present = [v for v in paths.numbered_versions(self.root)
                   if all(tf.io.gfile.exists(os.path.join(self.root, str(v), m)) for m in _COMPLETE_MARKERS)]
        wanted = present[-self._keep:]
        for version in wanted:
            if version in self._models or version in self._errors:
                continue
            try:
                model = tf.saved_model.load(os.path.join(self.root, str(version)))
                facts = classes.read_from_model(os.path.join(self.root, str(version)))
                card = _read_card(os.path.join(self.root, str(version)))
            except Exception as e:  # a broken version must not stop the others from serving
                logging.error('Cannot load version %d: %s', version, e)
                with self._lock:
                    self._errors[version] = f'{type(e).__name__}: {e}'
                continue
            with self._lock:
                self._models[version], self._facts[version], self._cards[version] = model, facts, card
            logging.info('Loaded version %d from %s', version, self.root)
        with self._lock:
            for version in [v for v in self._models if v not in wanted]:
                del self._models[version], self._facts[version], self._cards[version]
                logging.info('Unloaded version %d', version)
            return sorted(self._models)

    def versions(self) -> List[int]:
        with self._lock:
            return sorted(self._models)

    def errors(self) -> Dict[int, str]:
        with self._lock:
            return dict(self._errors)

    def classes(self, version: int) -> Tuple[classes.ClassDescription, int]:
        """(classes, input size) a loaded version was exported with; KeyError when it is not loaded."""
        with self._lock:
            return self._facts[version]

    def card(self, version: int) -> Dict:
        """The facts of a loaded version's model card (`model_card.json`); {} for versions pushed without one."""
        with self._lock:
            return self._cards[version]

    def get(self, version: Optional[int] = None):
        """(version, loaded SavedModel): the newest, or the one asked for; KeyError when it is not loaded."""
        with self._lock:
            if not self._models:
                raise KeyError('no version of the model is loaded yet')
            chosen = max(self._models) if version is None else version
            if chosen not in self._models:
                raise KeyError(f'version {chosen} is not loaded; loaded: {sorted(self._models)}')
            return chosen, self._models[chosen]


def _read_card(version_dir: str) -> Dict:
    path = os.path.join(version_dir, CARD_FACTS_FILE)
    if not tf.io.gfile.exists(path):
        return {}
    with tf.io.gfile.GFile(path) as f:
        return json.load(f)
