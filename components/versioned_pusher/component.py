"""VersionedPusher: TFX's Pusher with an executor that stages each push and renames it into place.

    VersionedPusher(model=..., model_blessing=..., push_destination=PushDestination(
        filesystem=PushDestination.Filesystem(base_directory='/serving/petseg')))
"""

from tfx.components.pusher import component as pusher_component
from tfx.dsl.components.base import executor_spec

from components.versioned_pusher import executor


class VersionedPusher(pusher_component.Pusher):
    """Pushes blessed models to `<base_directory>/<version>/`, never touching published versions."""

    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)
