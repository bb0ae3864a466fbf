"""Finding, downloading, verifying and caching the files of a dataset.

Every loader looks for its files in the same places, in this order, and uses the first
folder that holds a complete set:

1. the folder passed as ``path``;
2. ``$FASTCONV_DATA/<dataset>``, when the environment variable ``FASTCONV_DATA`` is set;
3. the cache folder ``~/.fastconv/datasets/<dataset>``.

When none does, the files are downloaded into the cache folder, each from a list of
mirrors tried in turn. A download goes to a temporary file in the cache folder, is
verified against its known checksum, and only then is renamed into place with
`os.replace`, so the cache never holds a partial or unverified file. When nothing is
found and downloading fails, `DatasetNotFoundError` names every place looked in, every
URL tried, and how to provide the files.

Checksums are verified for downloads only. Local files (yours, or the cache's, which
were verified when downloaded) are checked for structure instead, as they are read:
magic numbers, dimensions, exact lengths and the gzip CRC. That catches truncated and
corrupt files at no extra cost, and hashing tens of megabytes on every load would not.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import os
import shutil
import sys
import tempfile
import urllib.request
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http.client import HTTPException
from pathlib import Path
from typing import BinaryIO

__all__ = [
    "ENV_VAR",
    "DatasetNotFoundError",
    "Remote",
    "cache_folder",
    "copy_url",
    "download",
    "find_or_download",
    "verify",
]

ENV_VAR = "FASTCONV_DATA"
TIMEOUT_S = 30.0  # per blocking network operation, not for the whole download


class DatasetNotFoundError(FileNotFoundError):
    """A dataset's files were found nowhere and could not be downloaded.

    A subclass of `FileNotFoundError`, hence of `OSError`. The message names every
    folder looked in, every URL tried, and how to provide the files.
    """


@dataclass(frozen=True)
class Remote:
    """A file that can be downloaded, with its checksum.

    Attributes
    ----------
    name : str
        File name, both on the mirrors and in the cache folder.
    algorithm : str
        A `hashlib` algorithm name, e.g. ``"sha256"`` or ``"md5"``.
    digest : str
        The expected hex digest.
    decompressed : bool
        True if the digest is of the gunzipped bytes rather than of the file itself.
    """

    name: str
    algorithm: str
    digest: str
    decompressed: bool = False


def cache_folder(dataset: str) -> Path:
    """Return ``~/.fastconv/datasets/<dataset>`` (it may not exist)."""
    return Path.home() / ".fastconv" / "datasets" / dataset


def find_or_download(
    *,
    dataset: str,
    title: str,
    path: str | os.PathLike | None,
    missing: Callable[[Path], list[str]],
    remotes: Sequence[Remote],
    mirrors: Sequence[str],
    wanted: str,
) -> Path:
    """Return a folder that holds a complete set of a dataset's files.

    Parameters
    ----------
    dataset : str
        Folder name under ``$FASTCONV_DATA`` and the cache, e.g. ``"mnist"``.
    title : str
        The dataset's name for messages, e.g. ``"MNIST"``.
    path : str or path-like, optional
        A folder to look in first.
    missing : callable
        ``missing(folder)`` returns the names of the files that ``folder`` lacks, an
        empty list when it holds a complete set.
    remotes : sequence of Remote
        The files to download when no folder is complete.
    mirrors : sequence of str
        Base URLs, each ending in ``/``, tried in turn for each file.
    wanted : str
        How to provide the files, for the error message.

    Returns
    -------
    Path
        The first complete folder: ``path``, ``$FASTCONV_DATA/<dataset>``, or the
        cache folder, possibly after downloading into it.

    Raises
    ------
    DatasetNotFoundError
        If no folder is complete and downloading fails.
    """
    looked = []
    cache = cache_folder(dataset)
    env = os.environ.get(ENV_VAR)
    candidates = [  # (where, folder or None, why None)
        ("the path argument", None if path is None else Path(path).expanduser(), "not given"),
        (f"${ENV_VAR}/{dataset}", Path(env).expanduser() / dataset if env else None,
         f"{ENV_VAR} is not set"),
        ("the cache", cache, ""),
    ]
    for where, folder, why_none in candidates:
        if folder is None:
            looked.append(f"{where}: {why_none}")
        elif not folder.is_dir():
            looked.append(f"{folder} ({where}): no such folder")
        else:
            lacking = missing(folder)
            if not lacking:
                return folder
            looked.append(f"{folder} ({where}): missing {', '.join(lacking)}")

    try:
        cache.mkdir(parents=True, exist_ok=True)
        for remote in remotes:
            if not (cache / remote.name).is_file():
                download(remote, mirrors, cache)
    except OSError as exc:
        failure = str(exc)
    else:
        lacking = missing(cache)
        if not lacking:
            return cache
        failure = f"after downloading, {cache} still lacks {', '.join(lacking)}"

    places = "\n".join(f"  - {line}" for line in looked)
    raise DatasetNotFoundError(
        f"{title} files not found, and downloading them failed.\n"
        f"Looked in, in order:\n{places}\n"
        f"Download into {cache} failed: {failure}\n"
        f"To provide the files, put {wanted} in a folder and pass it as "
        f"load_data(path=folder), or set {ENV_VAR} to a folder whose subfolder "
        f"'{dataset}' holds them."
    )


def download(remote: Remote, mirrors: Sequence[str], folder: Path) -> Path:
    """Download one file into ``folder``, trying each mirror in turn.

    The file is written to a temporary file in ``folder``, verified with `verify`,
    and renamed to ``folder / remote.name`` only if it matches; on any failure the
    temporary file is removed.

    Returns
    -------
    Path
        The downloaded file.

    Raises
    ------
    OSError
        If every mirror fails; the message names each URL tried and why it failed.
    """
    errors = []
    for base in mirrors:
        url = base + remote.name
        print(f"fastconv: downloading {url}", file=sys.stderr)
        try:
            return _download_verified(url, remote, folder)
        except (OSError, HTTPException, ValueError) as exc:
            errors.append(f"{url}: {exc}")
    tried = "".join(f"\n    {line}" for line in errors)
    raise OSError(f"could not download {remote.name}; tried:{tried}")


def _download_verified(url: str, remote: Remote, folder: Path) -> Path:
    """Download ``url`` to a temporary file, verify it, then move it into place."""
    fd, temp = tempfile.mkstemp(dir=folder, prefix=f".{remote.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            copy_url(url, out)
        verify(Path(temp), remote)
        target = folder / remote.name
        os.replace(temp, target)
        return target
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(temp)
        raise


def copy_url(url: str, out: BinaryIO, timeout: float = TIMEOUT_S) -> None:
    """Write the content at ``url`` to the open binary file ``out``.

    The only function here that touches the network (tests replace it).

    Raises
    ------
    OSError or http.client.HTTPException
        On network errors, HTTP error statuses and time-outs.
    """
    request = urllib.request.Request(url, headers={"User-Agent": "fastconv"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        shutil.copyfileobj(response, out, 1 << 20)


def verify(path: Path, remote: Remote) -> None:
    """Check that a file has ``remote``'s checksum.

    Raises
    ------
    ValueError
        If the checksum differs or, for a checksum of decompressed bytes, the file is
        not valid gzip.
    """
    digest = hashlib.new(remote.algorithm, usedforsecurity=False)
    opener = gzip.open if remote.decompressed else open
    try:
        with opener(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise ValueError(f"not a valid gzip file ({exc})") from exc
    if digest.hexdigest() != remote.digest:
        of = "decompressed bytes" if remote.decompressed else "file"
        raise ValueError(
            f"{remote.algorithm} checksum mismatch: the {of} has {digest.hexdigest()}, "
            f"expected {remote.digest}"
        )
