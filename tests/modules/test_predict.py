"""The prediction CLI's path handling: which SavedModel it loads and which files it reads."""

import os

import pytest

from modules import predict


def _saved_model(path):
    os.makedirs(path)
    open(os.path.join(path, 'saved_model.pb'), 'wb').close()
    return str(path)


def test_resolve_model_dir_takes_a_savedmodel_or_the_newest_version(tmp_path):
    single = _saved_model(tmp_path / 'export')
    assert predict.resolve_model_dir(single) == single
    root = tmp_path / 'serving'
    for version in ('7', '12', '9'):
        _saved_model(root / version)
    os.makedirs(root / '.13.incomplete')  # a push in progress is never a version
    assert predict.resolve_model_dir(str(root)) == str(root / '12'), 'numeric, not lexical, order'
    assert predict.resolve_model_dir(str(root), version=7) == str(root / '7')
    with pytest.raises(FileNotFoundError, match=r"Version 8 not in .*available: \[7, 9, 12\]"):
        predict.resolve_model_dir(str(root), version=8)
    with pytest.raises(FileNotFoundError, match='No SavedModel in .* and no numbered versions under it'):
        predict.resolve_model_dir(str(tmp_path / 'empty'))


def test_expand_inputs_reads_files_folders_and_globs_once_each(tmp_path):
    folder = tmp_path / 'photos'
    folder.mkdir()
    for name in ('b.jpg', 'a.PNG', 'notes.txt', 'c.gif'):
        (folder / name).write_bytes(b'x')
    extra = tmp_path / 'extra1.jpg'
    extra.write_bytes(b'x')
    paths = predict.expand_inputs([str(folder), str(tmp_path / 'extra*.jpg'), str(folder / 'b.jpg'), 'missing.jpg'])
    assert paths == [str(folder / 'a.PNG'), str(folder / 'b.jpg'), str(folder / 'c.gif'), str(extra), 'missing.jpg']
