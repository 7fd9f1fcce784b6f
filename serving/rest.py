"""TF Serving's REST API on aiohttp: model status, metadata and predict, plus the web page.

    GET  /v1/models/<name>[/versions/<v>]            version status
    GET  /v1/models/<name>[/versions/<v>]/metadata   signatures
    POST /v1/models/<name>[/versions/<v>]:predict    {"instances": [...]} or {"inputs": ...}
    GET  /                                           the web page (static/index.html)

Requests and answers follow TF Serving's formats, so a client written for TF Serving or a Vertex endpoint
works here unchanged (binary inputs as {"b64": ...}). Bad requests get HTTP 400 with {"error": "..."} naming
the problem; an unknown model or version gets 404. Model calls run on a thread pool of `max_concurrency`
workers, never on the event loop; requests beyond that wait their turn.
"""

import asyncio
import base64
import binascii
import concurrent.futures
import io
import json
import logging
import os
import time
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import orjson
import tensorflow as tf
from aiohttp import web
from PIL import Image, UnidentifiedImageError

from modules import classes, signatures
from modules.request_log import RequestLog
from serving import models
from serving.models import ModelRepository

STATIC_DIR = os.path.join(os.path.dirname(__file__), 'static')
_IMAGE_INPUTS = (signatures.IMAGE_BYTES_INPUT,)
_DTYPE_NAMES = {tf.string: 'DT_STRING', tf.float32: 'DT_FLOAT', tf.int32: 'DT_INT32', tf.int64: 'DT_INT64',
                tf.uint8: 'DT_UINT8'}


class BadRequest(ValueError):
    """The request cannot be served; the message says why (HTTP 400)."""


def _decode_value(value: Any, where: str) -> Any:
    if isinstance(value, dict):
        if set(value) != {'b64'}:
            raise BadRequest(f'{where}: an object value must be {{"b64": "..."}}, got keys {sorted(value)}')
        try:
            return base64.b64decode(value['b64'], validate=True)
        except (binascii.Error, TypeError, ValueError) as e:
            raise BadRequest(f'{where}: bad base64 ({e})') from None
    if isinstance(value, str):
        return value.encode()
    return value


def _check_image(data: bytes, where: str) -> None:
    if not data:
        raise BadRequest(f'{where}: empty image')
    try:
        with Image.open(io.BytesIO(data)):
            pass
    except UnidentifiedImageError:
        raise BadRequest(f'{where}: not an image ({len(data)} bytes that no image format recognizes)') from None


def requested_signature(body: Any) -> str:
    """The signature a predict request names in `signature_name`, else `serving_default` (as TF Serving)."""
    return (body.get('signature_name') if isinstance(body, dict) else None) or signatures.SERVING_DEFAULT


def parse_predict(body: Any, input_names: List[str], max_instances: int) -> Tuple[Dict[str, list], bool]:
    """Reads a TF Serving predict request's inputs.

    Args:
      body: the decoded JSON body.
      input_names: the input names of the signature the request names (`requested_signature`).
      max_instances: the most instances one request may hold.

    Returns:
      ({input name: list of values}, whether the request was in row format).

    Raises:
      BadRequest: naming what is wrong.
    """
    if not isinstance(body, dict):
        raise BadRequest('the body must be a JSON object with "instances" or "inputs"')
    has_rows, has_columns = 'instances' in body, 'inputs' in body
    if has_rows == has_columns:
        raise BadRequest('the request needs exactly one of "instances" (row format) or "inputs" (columnar format)')
    values: Dict[str, list] = {name: [] for name in input_names}
    if has_rows:
        rows = body['instances']
        if not isinstance(rows, list) or not rows:
            raise BadRequest('"instances" must be a non-empty list')
        if len(rows) > max_instances:
            raise BadRequest(f'too many instances: {len(rows)} > {max_instances}')
        for index, row in enumerate(rows):
            if isinstance(row, dict) and set(row) != {'b64'}:
                missing = set(input_names) - set(row)
                if missing or set(row) - set(input_names):
                    raise BadRequest(f'instance {index} has inputs {sorted(row)}, the signature takes {input_names}')
                for name in input_names:
                    values[name].append(_decode_value(row[name], f'instance {index} input {name!r}'))
            elif len(input_names) == 1:
                values[input_names[0]].append(_decode_value(row, f'instance {index}'))
            else:
                raise BadRequest(f'instance {index} must name the inputs {input_names}')
    else:
        columns = body['inputs']
        if not isinstance(columns, dict) or set(columns) == {'b64'}:
            if len(input_names) != 1:
                raise BadRequest(f'"inputs" must map the inputs {input_names} to lists')
            columns = {input_names[0]: columns}
        if set(columns) != set(input_names):
            raise BadRequest(f'"inputs" has {sorted(columns)}, the signature takes {input_names}')
        for name in input_names:
            column = columns[name] if isinstance(columns[name], list) else [columns[name]]
            if not column:
                raise BadRequest(f'input {name!r} is empty')
            if len(column) > max_instances:
                raise BadRequest(f'too many instances: {len(column)} > {max_instances}')
            values[name] = [_decode_value(v, f'input {name!r} item {i}') for i, v in enumerate(column)]
    for name in input_names:
        if name in _IMAGE_INPUTS:
            for index, data in enumerate(values[name]):
                _check_image(data, f'instance {index}')
    return values, has_rows


def _jsonable(array: np.ndarray) -> Any:
    if array.dtype.kind in 'SO':
        return [_jsonable(np.asarray(item, dtype=object)) for item in array] if array.ndim else \
            {'b64': base64.b64encode(array.item()).decode()}
    return np.ascontiguousarray(array) if array.ndim else array.item()


def encode_json(answer: Any) -> bytes:
    """JSON bytes of an answer holding numpy arrays; orjson writes them directly (`tolist` + `json` took ~10x
    longer for a 128x128x3 probability map, the bulk of a request's time)."""
    return orjson.dumps(answer, option=orjson.OPT_SERIALIZE_NUMPY)


def format_outputs(outputs: Dict[str, tf.Tensor], rows: bool) -> Dict[str, Any]:
    """TF Serving's answer: {"predictions": [...]} for row requests, {"outputs": ...} for columnar ones
    (numpy arrays inside; see `encode_json`)."""
    arrays = {name: tensor.numpy() for name, tensor in outputs.items()}
    if not rows:
        columns = {name: _jsonable(array) for name, array in arrays.items()}
        return {'outputs': next(iter(columns.values())) if len(columns) == 1 else columns}
    count = len(next(iter(arrays.values())))
    predictions = [{name: _jsonable(array[i]) for name, array in arrays.items()} for i in range(count)]
    if len(arrays) == 1:
        predictions = [next(iter(p.values())) for p in predictions]
    return {'predictions': predictions}


def signature_metadata(model) -> Dict[str, Any]:
    """`signature_def` as TF Serving's metadata endpoint writes it."""
    def tensors(specs):
        return {name: {'dtype': _DTYPE_NAMES.get(spec.dtype, spec.dtype.name), 'name': name,
                       'tensor_shape': {'dim': [{'size': str(-1 if d is None else d)} for d in spec.shape.as_list()]}}
                for name, spec in specs.items()}
    return {name: {'inputs': tensors(fn.structured_input_signature[1]), 'outputs': tensors(fn.structured_outputs),
                   'method_name': 'tensorflow/serving/predict'}
            for name, fn in model.signatures.items()}


def _error(status: int, message: str) -> web.Response:
    return web.json_response({'error': message}, status=status)


class Server:
    """The REST handlers over one model's repository.

    Args:
      repository: the loaded versions.
      model_name: the name in the URLs (`/v1/models/<name>`).
      max_concurrency: model calls running at once.
      max_instances: instances one request may hold.
      max_body_bytes: the largest request body.
      request_log: where a sample of the request images goes (`modules.request_log`); None logs nothing.
      monitor_verdict: the monitor's latest verdict file (`python -m pipeline.monitor`), shown on the page.
    """

    def __init__(self, repository: ModelRepository, model_name: str, max_concurrency: int = 2,
                 max_instances: int = 32, max_body_bytes: int = 32 * 1024 * 1024,
                 request_log: Optional[RequestLog] = None, monitor_verdict: Optional[str] = None):
        self.repository = repository
        self.model_name = model_name
        self.max_instances = max_instances
        self.max_body_bytes = max_body_bytes
        self.request_log = request_log
        self.monitor_verdict = monitor_verdict
        self._pool = concurrent.futures.ThreadPoolExecutor(max_concurrency, thread_name_prefix='model')

    def _model(self, request: web.Request):
        if request.match_info['name'] != self.model_name:
            raise web.HTTPNotFound(text=json.dumps({'error': f'Servable not found for request: '
                                                             f'Latest({request.match_info["name"]})'}),
                                   content_type='application/json')
        version = request.match_info.get('version')
        try:
            return self.repository.get(int(version) if version is not None else None)
        except (KeyError, ValueError) as e:
            raise web.HTTPNotFound(text=json.dumps({'error': f'Servable not found: {e}'}),
                                   content_type='application/json') from None

    async def status(self, request: web.Request) -> web.Response:
        version = request.match_info.get('version')
        self._model(request)
        versions = [int(version)] if version is not None else self.repository.versions()
        return web.json_response({'model_version_status': [
            {'version': str(v), 'state': 'AVAILABLE', 'status': {'error_code': 'OK', 'error_message': ''}}
            for v in reversed(versions)]})

    async def metadata(self, request: web.Request) -> web.Response:
        version, model = self._model(request)
        return web.json_response({
            'model_spec': {'name': self.model_name, 'signature_name': '', 'version': str(version)},
            'metadata': {'signature_def': {'signature_def': signature_metadata(model)}}})

    async def predict(self, request: web.Request) -> web.Response:
        if request.content_length is not None and request.content_length > self.max_body_bytes:
            return _error(400, f'request body of {request.content_length} bytes is over the limit of '
                               f'{self.max_body_bytes} bytes')
        version, model = self._model(request)
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _error(400, f'request body is over the limit of {self.max_body_bytes} bytes')
        try:
            # orjson bounds the nesting depth (1024): the standard parser recurses and a body of 100,000
            # brackets raised RecursionError, a 500.
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as e:
            return _error(400, f'the body is not JSON ({e})')
        try:
            name = requested_signature(body)
            if name not in model.signatures:
                raise BadRequest(f'no signature {name!r}; the model has {sorted(model.signatures)}')
            function = model.signatures[name]
            input_specs = function.structured_input_signature[1]
            values, rows = parse_predict(body, sorted(input_specs), self.max_instances)
        except BadRequest as e:
            return _error(400, str(e))
        inputs = {key: tf.constant(values[key], dtype=spec.dtype) for key, spec in input_specs.items()}
        start = time.perf_counter()
        try:
            outputs = await asyncio.get_running_loop().run_in_executor(self._pool, lambda: function(**inputs))
        except tf.errors.InvalidArgumentError as e:
            return _error(400, signatures.error_reason(e))
        latency_ms = (time.perf_counter() - start) * 1000
        body = await asyncio.get_running_loop().run_in_executor(
            self._pool, lambda: encode_json(format_outputs(outputs, rows)))
        if self.request_log is not None and signatures.IMAGE_BYTES_INPUT in values and 'mask' in outputs:
            self.request_log.offer(values[signatures.IMAGE_BYTES_INPUT], outputs['mask'].numpy(),
                                   self.repository.classes(version)[0], version, latency_ms)
        return web.Response(body=body, content_type='application/json',
                            headers={'X-Model-Version': str(version),
                                     'X-Model-Seconds': f'{time.perf_counter() - start:.4f}'})

    async def page(self, request: web.Request) -> web.FileResponse:
        return web.FileResponse(os.path.join(STATIC_DIR, 'index.html'))

    async def info(self, request: web.Request) -> web.Response:
        """The page's facts: versions, and the classes (names, colours) the newest version carries."""
        versions = self.repository.versions()
        description, image_size = self.repository.classes(versions[-1]) if versions else (
            classes.OXFORD_IIIT_PET, classes.DEFAULT_IMAGE_SIZE)
        card = self.repository.card(versions[-1]) if versions else {}
        return web.json_response({'model': self.model_name, 'versions': versions, 'classes': list(description.names),
                                  'colors': [list(c) for c in description.colors], 'image_size': image_size,
                                  'padding_class': signatures.PADDING_CLASS,
                                  'model_card': f'/petseg/versions/{versions[-1]}/{models.CARD_PAGE_FILE}'
                                  if card else None, 'provenance': provenance(card),
                                  'monitor': monitor_summary(self.monitor_verdict)})

    async def model_card(self, request: web.Request) -> web.StreamResponse:
        """A loaded version's model card page; 404 for versions not loaded or pushed without a card."""
        version = request.match_info['version']
        path = os.path.join(self.repository.root, version, models.CARD_PAGE_FILE)
        if not version.isdigit() or int(version) not in self.repository.versions() or not os.path.exists(path):
            return web.json_response({'error': f'no model card for version {version}'}, status=404)
        return web.FileResponse(path)


def provenance(card: dict) -> dict:
    """What the page says about the served version, from its model card's facts ({} without a card)."""
    if not card:
        return {}
    metrics = {row['name']: row['candidate'] for row in card.get('metrics', [])}
    data = card.get('data', {})
    return {'pushed_at': card.get('pushed_at'), 'dataset': card.get('settings', {}).get('dataset'),
            'data_span': data.get('span'), 'data_fingerprint': data.get('fingerprint'),
            'examples': data.get('num_examples'), 'pixel_accuracy': metrics.get('pixel_accuracy'),
            'mean_iou': metrics.get('mean_iou')}


def monitor_summary(path: Optional[str]) -> Optional[dict]:
    """The latest monitor verdict's headline for the page (None without one)."""
    if not path or not os.path.exists(path):
        return None
    try:
        with open(path) as f:
            verdict = json.load(f)
    except (OSError, ValueError) as e:
        return {'error': f'cannot read {path}: {e}'}
    return {key: verdict.get(key) for key in ('checked_at', 'requests', 'retrain', 'reasons')}


def make_app(server: Server, poll_s: float = 2.0) -> web.Application:
    """The aiohttp application, polling the serving root every `poll_s` seconds while it runs."""
    app = web.Application(client_max_size=server.max_body_bytes)
    name, version = '/v1/models/{name:[^/:]+}', '/versions/{version:[^/:]+}'
    app.add_routes([
        web.get(name, server.status), web.get(name + version, server.status),
        web.get(name + '/metadata', server.metadata), web.get(name + version + '/metadata', server.metadata),
        web.post(name + ':predict', server.predict), web.post(name + version + ':predict', server.predict),
        web.get('/', server.page), web.get('/petseg/info', server.info),
        web.get('/petseg/versions/{version}/' + models.CARD_PAGE_FILE, server.model_card),
    ])
    loader = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix='loader')

    async def poll(app_: web.Application):
        async def loop():
            while True:
                try:
                    await asyncio.get_running_loop().run_in_executor(loader, server.repository.refresh)
                except Exception:  # a listing error must not stop serving what is loaded
                    logging.exception('Polling %s failed', server.repository.root)
                await asyncio.sleep(poll_s)
        task = asyncio.create_task(loop())
        yield
        task.cancel()

    app.cleanup_ctx.append(poll)
    return app
