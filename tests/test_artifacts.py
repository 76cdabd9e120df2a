"""The artifact store: atomic writes under one root, and nothing outside it."""

import pytest

from modyn_stream.artifacts import ArtifactError, ArtifactStore


def test_paths_stay_under_the_root(tmp_path):
    store = ArtifactStore(tmp_path / "root")
    assert store.path("p id (1)", "models", "m.pt") == (tmp_path / "root" / "p id (1)" / "models" / "m.pt").resolve()
    for parts in [("..", "victim"), ("/etc", "passwd"), ("p", "..", "..", "x")]:
        with pytest.raises(ArtifactError, match="leads outside the artifact store"):
            store.path(*parts)


def test_an_atomic_write_leaves_the_whole_file_or_none(tmp_path):
    store = ArtifactStore(tmp_path)
    target = store.path("a", "f.bin")
    with store.atomic(target) as tmp:
        tmp.write_bytes(b"whole")
    assert target.read_bytes() == b"whole"
    with pytest.raises(RuntimeError), store.atomic(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("crashed mid-write")
    assert target.read_bytes() == b"whole" and list(target.parent.iterdir()) == [target]
