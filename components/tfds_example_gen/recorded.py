"""What TfdsExampleGen records on its Examples artifact, read back: one reader for the run summary and the model card.

    facts = recorded.read(examples_artifact.mlmd_artifact)   # or an artifact proto straight from MLMD
    facts['data_version']   # {'span', 'version', 'fingerprint'}
"""

import json
from typing import Any, Dict

from ml_metadata.proto import metadata_store_pb2


def _json(artifact: metadata_store_pb2.Artifact, name: str, default):
    value = artifact.custom_properties.get(name)
    if value is None or value.WhichOneof('value') != 'string_value':
        return default
    return json.loads(value.string_value)


def _text(artifact: metadata_store_pb2.Artifact, name: str) -> str:
    value = artifact.custom_properties.get(name)
    return value.string_value if value is not None else ''


def read(artifact: metadata_store_pb2.Artifact) -> Dict[str, Any]:
    """The data version (span, version, source fingerprint), the TFDS dataset read, counts per split, what was
    skipped, and the classes."""
    properties = artifact.properties
    return {
        'data_version': {'span': properties['span'].int_value if 'span' in properties else None,
                         'version': properties['version'].int_value if 'version' in properties else None,
                         'fingerprint': _text(artifact, 'input_fingerprint') or None},
        'tfds': f'{_text(artifact, "tfds_dataset")} {_text(artifact, "tfds_version")}',
        'num_examples': _json(artifact, 'num_examples', {}),
        'num_skipped': _json(artifact, 'num_skipped', {}),
        'skipped_examples': _json(artifact, 'skipped_examples', []),
        'classes': _json(artifact, 'classes', {}).get('names', []),
    }
