"""TF Serving's gRPC `PredictionService` (Predict, GetModelMetadata) over the same loaded versions.

Clients built on `tensorflow-serving-api` (`prediction_service_pb2_grpc.PredictionServiceStub`) work against
this server unchanged. Errors map to gRPC codes as TF Serving's do: unknown model or version NOT_FOUND, a bad
input or undecodable image INVALID_ARGUMENT.
"""

import concurrent.futures

import grpc
import tensorflow as tf
from tensorflow_serving.apis import get_model_metadata_pb2, predict_pb2, prediction_service_pb2_grpc

from modules import signatures
from serving.models import ModelRepository


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    """Predict and GetModelMetadata for one model name."""

    def __init__(self, repository: ModelRepository, model_name: str):
        self._repository = repository
        self._model_name = model_name

    def _model(self, model_spec, context):
        if model_spec.name != self._model_name:
            context.abort(grpc.StatusCode.NOT_FOUND, f'Servable not found for request: Latest({model_spec.name})')
        try:
            return self._repository.get(model_spec.version.value if model_spec.HasField('version') else None)
        except KeyError as e:
            context.abort(grpc.StatusCode.NOT_FOUND, f'Servable not found: {e}')

    def Predict(self, request, context):  # noqa: N802 (gRPC's method name)
        version, model = self._model(request.model_spec, context)
        name = request.model_spec.signature_name or 'serving_default'
        if name not in model.signatures:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f'no signature {name!r}')
        function = model.signatures[name]
        specs = function.structured_input_signature[1]
        if set(request.inputs) != set(specs):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f'inputs {sorted(request.inputs)}, the signature takes {sorted(specs)}')
        inputs = {key: tf.constant(tf.make_ndarray(request.inputs[key]), dtype=spec.dtype) for key, spec in specs.items()}
        try:
            outputs = function(**inputs)
        except tf.errors.InvalidArgumentError as e:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, signatures.error_reason(e))
        response = predict_pb2.PredictResponse()
        response.model_spec.name = self._model_name
        response.model_spec.version.value = version
        response.model_spec.signature_name = name
        for key, tensor in outputs.items():
            response.outputs[key].CopyFrom(tf.make_tensor_proto(tensor.numpy()))
        return response

    def GetModelMetadata(self, request, context):  # noqa: N802
        version, model = self._model(request.model_spec, context)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = self._model_name
        response.model_spec.version.value = version
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        for name, function in model.signatures.items():
            signature = signature_map.signature_def[name]
            signature.method_name = 'tensorflow/serving/predict'
            for key, spec in function.structured_input_signature[1].items():
                signature.inputs[key].dtype = spec.dtype.as_datatype_enum
                signature.inputs[key].tensor_shape.CopyFrom(spec.shape.as_proto())
            for key, spec in function.structured_outputs.items():
                signature.outputs[key].dtype = spec.dtype.as_datatype_enum
                signature.outputs[key].tensor_shape.CopyFrom(spec.shape.as_proto())
        response.metadata['signature_def'].Pack(signature_map)
        return response


def start(repository: ModelRepository, model_name: str, host: str, port: int, max_concurrency: int) -> grpc.Server:
    """Starts the gRPC server in background threads; returns it (call `.stop(grace)` to end it)."""
    server = grpc.server(concurrent.futures.ThreadPoolExecutor(max_concurrency),
                         options=[('grpc.max_receive_message_length', 64 * 1024 * 1024),
                                  ('grpc.max_send_message_length', 256 * 1024 * 1024)])
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionService(repository, model_name), server)
    if not server.add_insecure_port(f'{host}:{port}'):
        raise OSError(f'cannot listen for gRPC on {host}:{port}')
    server.start()
    return server
