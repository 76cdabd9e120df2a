"""The artifact store: immutable files (manifests, models, reports) under one root directory.

Files are addressed by `file://` URIs so events stay meaningful outside the process that wrote
them. Writes are atomic (a temporary file in the same directory, fsynced, then renamed), so a
reader or a crashed writer never sees half a file, and rewriting the same content is harmless.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import unquote, urlsplit

from modyn_stream.exceptions import ModynStreamError


class ArtifactError(ModynStreamError):
    """An artifact that cannot be written, found or trusted."""


class ArtifactStore:
    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).resolve()

    def path(self, *parts: str) -> Path:
        """A path under the root; parts that would lead outside it (`..`, absolute paths) are refused."""
        path = self.root.joinpath(*parts)
        if not path.resolve().is_relative_to(self.root):
            raise ArtifactError(f"artifact path {'/'.join(parts)!r} leads outside the artifact store {self.root}")
        return path

    @staticmethod
    def uri(path: Path) -> str:
        return path.resolve().as_uri()

    @staticmethod
    def resolve(uri: str) -> Path:
        parts = urlsplit(uri)
        if parts.scheme != "file":
            raise ArtifactError(f"artifact {uri}: only file:// URIs are supported")
        return Path(unquote(parts.path))

    @contextmanager
    def atomic(self, path: Path) -> Iterator[Path]:
        """Yield a temporary path to write; on success it replaces `path` in one rename."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            yield tmp
            with open(tmp, "rb") as handle:
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    except OSError as exc:
        raise ArtifactError(f"{path}: cannot read: {exc.strerror}") from None
    return digest.hexdigest()


def verified(uri: str, sha256: str) -> Path:
    """The artifact's path, after checking it exists and has the checksum its event announced."""
    path = ArtifactStore.resolve(uri)
    if not path.exists():
        raise ArtifactError(f"artifact {uri}: missing")
    actual = sha256_file(path)
    if actual != sha256:
        raise ArtifactError(f"artifact {uri}: sha256 {actual[:12]}… does not match the announced {sha256[:12]}…")
    return path
