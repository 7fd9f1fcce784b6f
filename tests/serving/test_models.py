"""The server's model repository: versions load once complete, and what each carries is read once, at load."""

import os
import shutil

from modules import classes, paths
from serving import models


def test_each_versions_classes_are_read_at_load_and_kept(scenario, tmp_path):
    root = str(tmp_path / 'petseg')
    first = paths.numbered_versions(scenario.serving_dir)[-1]
    shutil.copytree(os.path.join(scenario.serving_dir, str(first)), os.path.join(root, '1'))
    repository = models.ModelRepository(root, keep=2)
    assert repository.refresh() == [1]
    assert repository.classes(1) == (classes.OXFORD_IIIT_PET, classes.DEFAULT_IMAGE_SIZE)

    # A second version exported for other classes: its own description, the first one's unchanged.
    shutil.copytree(os.path.join(root, '1'), os.path.join(root, '2'))
    other = classes.ClassDescription.from_dict({'names': ['ground', 'pet']})
    classes.write_to_model(os.path.join(root, '2'), other, 128)
    assert repository.refresh() == [1, 2]
    assert repository.classes(2) == (other, 128) and repository.classes(1)[0] == classes.OXFORD_IIIT_PET

    # Read once: a file changed under a loaded version is not re-read per request.
    os.remove(os.path.join(root, '2', classes.MODEL_FILE))
    assert repository.refresh() == [1, 2] and repository.classes(2) == (other, 128)
