"""Where a request's video comes from: a file under an allowed folder, an upload, or a download.

A client names its video by one string (`VideoSources.local_file`):

- ``file:///abs/clip.mp4`` or ``/abs/clip.mp4``: a file on the server's machine, read only when it lies, with
  every symbolic link resolved, under one of ``allowed_dirs`` (``--api-allowed-dir``). Without allowed folders
  every path is refused, so a server never reads files nobody chose to expose. Relative paths are refused.
- ``data:video/mp4;base64,...``: an upload of at most ``max_upload_bytes`` (``--api-max-upload-mb``; 413 when
  larger), written to a temporary folder that is deleted once the video's features are computed.
- ``http(s)://host/...``: downloaded (same size limit, no redirects followed) only from a host named in
  ``allowed_hosts`` (``--api-allowed-host``, compared with the URL's host name, any port); without such hosts
  every URL is refused before any connection.

Anything else is a 400 naming the rule it breaks (`ApiError`).
"""

from __future__ import annotations

import base64
import binascii
import logging
import mimetypes
import re
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import url2pathname

from llavidal_core.errors import LlavidalError
from llavidal_core.inference.openai_api.errors import ApiError, bad_request
from llavidal_core.video_ids import VIDEO_EXTENSIONS

logger = logging.getLogger(__name__)

MB = 1024 * 1024
DEFAULT_MAX_UPLOAD_MB = 200
DATA_URL = re.compile(r"data:(?P<mime>[^;,]*)(?P<params>(?:;[^;,]*)*),(?P<data>.*)", re.DOTALL | re.IGNORECASE)
# types mimetypes does not map to a video extension; other unknown types get ".mp4" (decoders sniff the content)
SUFFIXES = {"video/x-matroska": ".mkv", "video/avi": ".avi", "video/x-m4v": ".m4v"}
FALLBACK_SUFFIX = ".mp4"


def suffix_for(mime: str | None, name: str = "") -> str:
    """A video file suffix for a download's or upload's name (``name``'s own if it is a video's), else from
    its MIME type, else ``.mp4``."""
    own = Path(name).suffix.lower()
    if own in VIDEO_EXTENSIONS:
        return own
    mime = (mime or "").split(";")[0].strip().lower()
    guessed = SUFFIXES.get(mime) or mimetypes.guess_extension(mime) or ""
    return guessed if guessed in VIDEO_EXTENSIONS else FALLBACK_SUFFIX


def too_large(where: str, size: int, limit: int, at_least: bool = False) -> ApiError:
    """The 413 for a video of ``size`` bytes over ``limit``."""
    amount = f"{'more than ' if at_least else ''}{size / MB:.2f} MB"
    return ApiError(413, f"{where}: the video is {amount}; this server takes videos of at most {limit / MB:g} MB "
                         "(--api-max-upload-mb)", param="messages", code="video_too_large")


@dataclass(frozen=True)
class VideoSources:
    """The rules for a request's video (module docstring).

    Args:
        allowed_dirs: folders whose files (at any depth) clients may name; each must exist.
        allowed_hosts: host names videos may be downloaded from (case-insensitive, no scheme or port).
        max_upload_bytes: the largest upload or download, in bytes.
        upload_dir: where uploads and downloads are written (each in its own temporary folder, deleted after
            use); the system's temporary folder by default.
        download_timeout_s: seconds a download may wait for the connection or for each read.

    Raises:
        LlavidalError: a missing allowed folder or upload folder, a host that is not a bare host name, a limit
            that is not positive.
    """

    allowed_dirs: Sequence[str | Path] = ()
    allowed_hosts: Sequence[str] = ()
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_MB * MB
    upload_dir: str | Path | None = None
    download_timeout_s: float = 30.0

    def __post_init__(self) -> None:
        folders = []
        for folder in self.allowed_dirs:
            if not Path(folder).is_dir():
                raise LlavidalError(f"{folder}: no such folder (allowed video folder, --api-allowed-dir)")
            folders.append(Path(folder).resolve())
        hosts = tuple(host.strip().lower() for host in self.allowed_hosts)
        for host in hosts:
            if not host or any(mark in host for mark in "/:@ "):
                raise LlavidalError(f"--api-allowed-host {host!r}: give a bare host name such as example.org "
                                    "(no scheme, port or path)")
        if self.max_upload_bytes <= 0:
            raise LlavidalError(f"the upload limit must be positive, got {self.max_upload_bytes} bytes")
        if self.upload_dir is not None and not Path(self.upload_dir).is_dir():
            raise LlavidalError(f"{self.upload_dir}: no such folder (for uploaded videos)")
        object.__setattr__(self, "allowed_dirs", tuple(folders))
        object.__setattr__(self, "allowed_hosts", hosts)

    @property
    def max_request_bytes(self) -> int:
        """The largest request body: one upload in base64 (4/3 of its size) and 1 MiB for the rest."""
        return self.max_upload_bytes * 4 // 3 + 4 + MB

    @contextmanager
    def local_file(self, reference: str, where: str) -> Iterator[Path]:
        """The video ``reference`` names, as a local file for as long as the context lasts (an upload's or a
        download's temporary folder is deleted on exit). ``where`` (``"message 0, part 1"``) starts every error
        message.

        Raises:
            ApiError: 400 for a reference the rules refuse, naming the rule; 413 for a video over the limit.
        """
        if not isinstance(reference, str) or not reference.strip():
            raise bad_request(f"{where}: the video part has no URL or path")
        reference = reference.strip()
        scheme = urlsplit(reference).scheme.lower()
        if scheme == "data":
            with self._uploaded(reference, where) as path:
                yield path
        elif scheme in ("http", "https"):
            with self._downloaded(reference, where) as path:
                yield path
        elif scheme in ("file", ""):
            yield self._allowed_path(reference, where)
        else:
            raise bad_request(f"{where}: video URLs with the scheme {scheme!r} are not supported; give a path or "
                              "file:// URL under an allowed folder, a data:video/...;base64 upload, or an http(s) "
                              "URL from an allowed host")

    # -- files on this machine -------------------------------------------------------------------------------

    def _allowed_path(self, reference: str, where: str) -> Path:
        if reference.lower().startswith("file:"):
            parts = urlsplit(reference)
            if parts.netloc not in ("", "localhost"):
                raise bad_request(f"{where}: the file URL names the host {parts.netloc!r}; only files on this "
                                  "machine can be read (file:///abs/path)")
            path = Path(url2pathname(parts.path))
        else:
            path = Path(reference)
        if not path.is_absolute():
            raise bad_request(f"{where}: {reference!r} is a relative path; give an absolute path or a file:// URL")
        if not self.allowed_dirs:
            raise bad_request(f"{where}: local video files are refused: this server was started without "
                              "--api-allowed-dir; send the video as a data:video/...;base64 upload, or restart the "
                              "server with --api-allowed-dir DIR to let clients name files under DIR",
                              code="path_not_allowed")
        resolved = path.resolve()
        if not any(resolved.is_relative_to(folder) for folder in self.allowed_dirs):
            folders = ", ".join(str(folder) for folder in self.allowed_dirs)
            raise bad_request(f"{where}: {path} is outside the allowed video folders ({folders}): this server reads "
                              "only files under its --api-allowed-dir folders", code="path_not_allowed")
        if not resolved.is_file():
            raise bad_request(f"{where}: {path}: no such video file")
        return resolved

    # -- uploads ---------------------------------------------------------------------------------------------

    @contextmanager
    def _temporary_folder(self) -> Iterator[Path]:
        with tempfile.TemporaryDirectory(prefix="llavidal-video-", dir=self.upload_dir) as folder:
            yield Path(folder)

    @contextmanager
    def _uploaded(self, reference: str, where: str) -> Iterator[Path]:
        match = DATA_URL.fullmatch(reference)
        if match is None:
            raise bad_request(f"{where}: a malformed data URL; write data:video/mp4;base64,<the file in base64>")
        mime = match["mime"].strip().lower()
        if not mime.startswith("video/") and mime != "application/octet-stream":
            raise bad_request(f"{where}: a data URL of type {mime or 'text/plain'!r}; send a video "
                              "(data:video/mp4;base64,...)")
        if "base64" not in [param.strip().lower() for param in match["params"].split(";")]:
            raise bad_request(f"{where}: the data URL is not base64-encoded; write data:{mime};base64,...")
        data = match["data"]
        if len(data) // 4 * 3 > self.max_upload_bytes + 2:  # checked before decoding anything
            raise too_large(where, len(data) // 4 * 3, self.max_upload_bytes)
        try:
            content = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise bad_request(f"{where}: the data URL's base64 cannot be decoded ({exc})") from None
        if not content:
            raise bad_request(f"{where}: the uploaded video is empty")
        if len(content) > self.max_upload_bytes:
            raise too_large(where, len(content), self.max_upload_bytes)
        with self._temporary_folder() as folder:
            path = folder / f"upload{suffix_for(mime)}"
            path.write_bytes(content)
            logger.debug("%s: an upload of %d bytes written to %s", where, len(content), path)
            yield path

    # -- downloads -------------------------------------------------------------------------------------------

    @contextmanager
    def _downloaded(self, url: str, where: str) -> Iterator[Path]:
        host = (urlsplit(url).hostname or "").lower()
        if not self.allowed_hosts:
            raise bad_request(f"{where}: video URLs are refused: this server was started without --api-allowed-host; "
                              "send the video as a data:video/...;base64 upload or a path under an allowed folder",
                              code="host_not_allowed")
        if host not in self.allowed_hosts:
            raise bad_request(f"{where}: downloading from {host or 'a URL without a host'} is refused: this server "
                              f"downloads videos only from {', '.join(self.allowed_hosts)} (--api-allowed-host)",
                              code="host_not_allowed")
        with self._temporary_folder() as folder:
            yield self._fetch(url, folder, where)

    def _fetch(self, url: str, folder: Path, where: str) -> Path:
        """Download ``url`` into ``folder``; the file's path."""
        import httpx

        try:
            with httpx.stream("GET", url, timeout=self.download_timeout_s, follow_redirects=False) as response:
                if response.is_redirect:
                    raise bad_request(f"{where}: {url} redirects to {response.headers.get('location')}; redirects "
                                      "are not followed: give the video's own URL")
                if response.status_code != 200:
                    raise bad_request(f"{where}: downloading {url} failed: HTTP {response.status_code}")
                declared = response.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > self.max_upload_bytes:
                    raise too_large(where, int(declared), self.max_upload_bytes)
                path = folder / f"download{suffix_for(response.headers.get('content-type'), urlsplit(url).path)}"
                size = 0
                with path.open("wb") as out:
                    for chunk in response.iter_bytes():
                        size += len(chunk)
                        if size > self.max_upload_bytes:
                            raise too_large(where, size, self.max_upload_bytes, at_least=True)
                        out.write(chunk)
        except httpx.HTTPError as exc:
            raise bad_request(f"{where}: cannot download {url}: {type(exc).__name__}: {exc}") from None
        if size == 0:
            raise bad_request(f"{where}: {url} is empty")
        logger.debug("%s: downloaded %d bytes from %s to %s", where, size, url, path)
        return path
