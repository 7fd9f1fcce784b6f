"""The model card of a pushed version: what the model is, what it was trained and scored on, where not to use it.

`gather` collects the facts from the artifacts the Pusher is given (the Examples, the Trainer's ModelRun, the
Evaluator's and the FullSizeEvaluator's results, the serving check's blessing, the TFLite report) and from the
card settings the pipeline records (`card_settings`: dataset terms, intended use, limitations, caveats);
`render` fills `templates/model_card.md.j2` and `.html.j2` with Jinja2 (the model-card-toolkit package pins
TFMA < 0.42 and cannot be installed with TFX 1.16). The Pusher writes both into the version before it is
renamed into place, so a version never appears without its card.
"""

import datetime
import json
import os
from typing import Any, Dict, List, Mapping, Optional, Sequence

import jinja2
import tensorflow as tf
from tfx import types

from components import tfma_results
from components.tfds_example_gen import recorded
from modules import classes, hparams

MARKDOWN_FILE = 'model_card.md'
HTML_FILE = 'model_card.html'
# The card's facts as data, for the server's page (provenance of the served version) and other tools.
JSON_FILE = 'model_card.json'
TEMPLATES = os.path.join(os.path.dirname(__file__), 'templates')
# What is known about the terms of the built-in datasets; other data's card says to state its own.
DATASET_TERMS = {
    'oxford_iiit_pet': 'Oxford-IIIT Pet (Parkhi et al., 2012): the annotations are for research purposes only; the '
                       'images remain subject to the terms of the web sites they were taken from.',
}
UNKNOWN_TERMS = 'Not recorded: state the terms of your data (its licence and who may use models trained on it).'


def card_settings(dataset: str, description: classes.ClassDescription, image_size: int, eval_examples_hint: str,
                  caveats: Sequence[str] = ()) -> Dict[str, Any]:
    """What the pipeline knows about the data and use of its models, recorded as the Pusher's execution property.

    Args:
      dataset: the TFDS name of the data (`oxford_iiit_pet` for Oxford-layout sources and the generated pets).
      description: the classes.
      image_size: the model's input side.
      eval_examples_hint: where the eval split comes from, in words.
      caveats: what a reader must know about how the figures were obtained.

    Returns:
      A JSON-ready dict.
    """
    return {'dataset': dataset, 'classes': list(description.names), 'image_size': image_size,
            'terms': DATASET_TERMS.get(dataset, UNKNOWN_TERMS), 'eval_split': eval_examples_hint,
            'intended_use': (f'Segmenting photographs like the training data into {", ".join(description.names)} '
                             f'at {image_size}x{image_size} (masks are resized back to each image); a baseline '
                             'to compare and retrain, in the settings the training data allows.'),
            'limitations': ['Trained on the data described below only: photographs of other kinds (other '
                            'subjects, cameras, lighting, drawings) were never seen and are scored nowhere.',
                            'Not for decisions about people, animals\' welfare or safety: pixel accuracy says '
                            'nothing about any one image (see the worst images).'],
            'caveats': list(caveats)}


def _json_custom(artifact: Optional[types.Artifact], name: str, default):
    if artifact is None:
        return default
    value = artifact.mlmd_artifact.custom_properties.get(name)
    if value is None:
        return default
    return json.loads(value.string_value) if value.WhichOneof('value') == 'string_value' else default


def _read_json(path: str) -> Dict[str, Any]:
    if not tf.io.gfile.exists(path):
        return {}
    with tf.io.gfile.GFile(path) as f:
        return json.load(f)


def _data(examples: Optional[types.Artifact]) -> Dict[str, Any]:
    if examples is None:
        return {'uri': None, 'span': None, 'version': None, 'fingerprint': None, 'tfds': '', 'num_examples': {},
                'num_skipped': {}, 'skipped_examples': []}
    facts = recorded.read(examples.mlmd_artifact)
    return {'uri': examples.uri, **facts.pop('data_version'), **facts}


def _metric_rows(candidate: Mapping[str, float], baseline: Mapping[str, float]) -> List[Dict[str, Any]]:
    first = ('pixel_accuracy', 'mean_iou')
    names = [n for n in first if n in candidate] + sorted(n for n in candidate if n not in first and n != 'example_count')
    return [{'name': name, 'candidate': candidate[name], 'baseline': baseline.get(name)} for name in names]


def _slice_rows(by_slice: Mapping[str, Mapping[str, Mapping[str, float]]],
                value_names: Mapping[str, Mapping[str, str]]) -> List[Dict[str, Any]]:
    rows = []
    for name, models in by_slice.items():
        candidate = models.get('candidate', {})
        feature, _, value = name.partition('=')
        readable = value_names.get(feature, {}).get(value)
        rows.append({'slice': f'{name} ({readable})' if readable else name,
                     'examples': int(candidate.get('example_count', 0)),
                     'pixel_accuracy': candidate.get('pixel_accuracy'), 'mean_iou': candidate.get('mean_iou')})
    return sorted(rows, key=lambda row: (row['mean_iou'] is None, row['mean_iou']))


def gather(inputs: Mapping[str, List[types.Artifact]], settings: Mapping[str, Any], *, model_path: str,
           version: str, pushed_at: float) -> Dict[str, Any]:
    """Every fact the card states, from the Pusher's inputs.

    Args:
      inputs: the Pusher's input artifacts by key (`examples`, `evaluation`, `full_size_evaluation`,
        `model_run`, `infra_blessing`, `tflite_models`; each optional).
      settings: `card_settings`' dict.
      model_path: the pushed SavedModel.
      version: the version's name.
      pushed_at: UNIX seconds of the push.

    Returns:
      The template's context.
    """
    one = {key: (artifacts or [None])[0] for key, artifacts in inputs.items()}
    description, image_size = classes.read_from_model(model_path)
    evaluation = one.get('evaluation')
    by_model = tfma_results.metrics_by_model(evaluation.uri) if evaluation else {}
    full_size = _read_json(os.path.join(one['full_size_evaluation'].uri, 'full_size.json')) \
        if one.get('full_size_evaluation') else {}
    trained = _read_json(os.path.join(one['model_run'].uri, hparams.TRAINED_SETTINGS_FILE)) \
        if one.get('model_run') else {}
    decided = trained.pop(hparams.DECIDED_KEY, {})
    blessing = one.get('infra_blessing')
    blessed = blessing.mlmd_artifact.custom_properties.get('blessed') if blessing is not None else None
    serving = {'blessed': bool(blessed.int_value) if blessed is not None else None, 'figures': _json_custom(one.get('infra_blessing'), 'figures', {}),
               'reasons': _json_custom(one.get('infra_blessing'), 'reasons', [])}
    data = _data(one.get('examples'))
    evaluated = data['num_examples'].get('eval')
    caveats = list(settings.get('caveats', []))
    if evaluated and evaluated < 1000:
        caveats.append(f'The eval split has {evaluated} images: on another sample of the same data a share such as '
                       f'pixel accuracy could differ by up to about {100 / evaluated ** 0.5:.1f} points (a 95% '
                       'interval is about 1/sqrt(n) wide), more on small slices.')
    return {
        'version': version, 'pushed_at': pushed_at, 'model_path': model_path,
        'settings': {**settings, 'caveats': caveats},
        'classes': list(description.names), 'image_size': image_size,
        'data': data,
        'training': [{'name': k, 'value': v, 'why': decided.get(k, '')} for k, v in hparams.flatten(trained).items()],
        'metrics': _metric_rows(by_model.get('candidate', {}), by_model.get('baseline', {})),
        'slices': _slice_rows(tfma_results.metrics_by_slice(evaluation.uri) if evaluation else {},
                              full_size.get('slice_value_names', {})),
        'full_size': full_size, 'serving': serving,
        'tflite': _json_custom(one.get('tflite_models'), 'report', {}),
    }


def render(context: Mapping[str, Any]) -> Dict[str, str]:
    """{file name: text} of the Markdown and HTML cards (the HTML escaped, the Markdown as written) and the facts."""
    cards = {JSON_FILE: json.dumps(context, indent=1, default=str)}
    for name in (MARKDOWN_FILE, HTML_FILE):
        environment = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), undefined=jinja2.StrictUndefined,
                                         trim_blocks=True, lstrip_blocks=True, autoescape=name == HTML_FILE)
        environment.filters['fmt'] = lambda value: '-' if value is None else f'{value:.4f}'
        environment.filters['when'] = lambda seconds: datetime.datetime.fromtimestamp(
            seconds, datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')
        cards[name] = environment.get_template(name + '.j2').render(**context)
    return cards
