"""The one place where running locally and running on Vertex AI differ: Beam args, Trainer, Pusher.

`create_pipeline` asks this module for the Trainer and the Pusher. Without `VertexOptions` they
are TFX's in-pipeline Trainer and our versioned filesystem Pusher; with them, training can run as a
Vertex AI custom job (GPU optional) and blessed models can be deployed to a Vertex endpoint.
"""

import dataclasses
from typing import Dict, List, Optional

from tfx import v1 as tfx

from components.versioned_pusher.component import VersionedPusher
from modules.beam_args import dataflow_beam_args, direct_beam_args
from pipeline import node_ids

__all__ = ['VertexOptions', 'dataflow_beam_args', 'direct_beam_args', 'make_pusher', 'make_trainer',
           'worker_pool_specs']

# Google's prebuilt TF serving image for Vertex endpoints (TF 2.16 is not offered; 2.15 reads our SavedModel).
VERTEX_SERVING_IMAGE = 'us-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-15:latest'


@dataclasses.dataclass(frozen=True)
class VertexOptions:
    """Where on Google Cloud to run, and which steps leave the pipeline's own containers."""

    project: str
    region: str
    train_on_vertex: bool = False
    training_machine_type: str = 'n1-standard-8'
    accelerator_type: Optional[str] = None  # e.g. NVIDIA_TESLA_T4
    accelerator_count: int = 0
    # Workers beside the chief, on the same machine type; > 0 makes a chief + workers job, and run_fn then
    # trains with MultiWorkerMirroredStrategy from the TF_CONFIG Vertex gives each replica.
    worker_count: int = 0
    endpoint_name: Optional[str] = None  # deploy blessed models to this Vertex endpoint
    serving_machine_type: str = 'n1-standard-4'


def worker_pool_specs(vertex: VertexOptions, image: str) -> List[Dict]:
    """Vertex worker pools: the chief (pool 0), then `worker_count` workers (pool 1), all on the same machines."""
    if vertex.worker_count < 0:
        raise ValueError(f'worker_count must be >= 0, got {vertex.worker_count}')
    machine_spec = {'machine_type': vertex.training_machine_type}
    if vertex.accelerator_type and vertex.accelerator_count:
        machine_spec.update(accelerator_type=vertex.accelerator_type, accelerator_count=vertex.accelerator_count)
    pools = [{'machine_spec': machine_spec, 'replica_count': 1, 'container_spec': {'image_uri': image}}]
    if vertex.worker_count:
        pools.append({'machine_spec': dict(machine_spec), 'replica_count': vertex.worker_count,
                      'container_spec': {'image_uri': image}})
    return pools


def make_trainer(vertex: Optional[VertexOptions], image: Optional[str], custom_config: Dict, **inputs):
    """Trainer running `modules.train.run_fn` in the pipeline, or as a Vertex AI custom job.

    Args:
      vertex: Vertex options; None or train_on_vertex=False trains inside the pipeline.
      image: container image for the Vertex training job.
      custom_config: the training settings (PipelineConfig.to_custom_config()).
      **inputs: the Trainer's input channels.

    Returns:
      The Trainer component.
    """
    if vertex is None or not vertex.train_on_vertex:
        return tfx.components.Trainer(run_fn='modules.train.run_fn', custom_config=custom_config, **inputs)
    cloud = tfx.extensions.google_cloud_ai_platform
    return cloud.Trainer(
        run_fn='modules.train.run_fn',
        custom_config={
            **custom_config,
            cloud.ENABLE_VERTEX_KEY: True,
            cloud.VERTEX_REGION_KEY: vertex.region,
            cloud.TRAINING_ARGS_KEY: {
                'project': vertex.project, 'worker_pool_specs': worker_pool_specs(vertex, image)},
        },
        **inputs)


def make_pusher(vertex: Optional[VertexOptions], serving_dir: str, tflite_models=None, model_card=None,
                card_inputs=None, **inputs):
    """Pusher to numbered versions under `serving_dir`, or to a Vertex endpoint.

    Args:
      vertex: Vertex options; an endpoint_name deploys there instead of the filesystem.
      serving_dir: serving root for filesystem pushes (local path or gs://).
      tflite_models: TfliteExport's channel; its passing variants are pushed into the filesystem version (a
        Vertex endpoint serves SavedModels only; the variants stay in the pipeline root).
      model_card: the card settings (`components.versioned_pusher.model_card.card_settings`); filesystem pushes
        write each version's card.
      card_inputs: the channels the card is written from (examples, evaluation, full_size_evaluation, model_run).
      **inputs: model and model_blessing channels.

    Returns:
      The Pusher component.
    """
    if vertex is None or not vertex.endpoint_name:
        return VersionedPusher(
            push_destination=tfx.proto.PushDestination(
                filesystem=tfx.proto.PushDestination.Filesystem(base_directory=serving_dir)),
            tflite_models=tflite_models, model_card=model_card, **(card_inputs or {}), **inputs).with_id(node_ids.PUSHER)
    cloud = tfx.extensions.google_cloud_ai_platform
    return cloud.Pusher(
        custom_config={
            cloud.ENABLE_VERTEX_KEY: True,
            cloud.VERTEX_REGION_KEY: vertex.region,
            cloud.VERTEX_CONTAINER_IMAGE_URI_KEY: VERTEX_SERVING_IMAGE,
            cloud.SERVING_ARGS_KEY: {'project_id': vertex.project, 'endpoint_name': vertex.endpoint_name,
                                     'machine_type': vertex.serving_machine_type},
        },
        **inputs).with_id(node_ids.PUSHER)
