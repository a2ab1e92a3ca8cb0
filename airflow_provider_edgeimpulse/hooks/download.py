"""
Saving a downloaded artefact: streamed to a temporary file, checked for what it claims to be, then put in place.

An HTTP 200 is not yet an artefact. A proxy's sign-in page, a ``{"success": false}`` answer, a body cut short by a
dropped connection and a server that stalls half-way all arrive as 200s; ``ArtefactDownload`` turns each into an
``EdgeImpulseAPIError`` that says which, and the file appears at its destination only when it is complete and
checked. Memory stays flat: the body is written in chunks, and only its first bytes are kept to tell what it is.

What "complete" can mean depends on the answer. A zip (by its content type, its file name or its first bytes) must
open as a zip: its central directory sits at the very end, so a zip cut short anywhere does not open. Any other
artefact is as complete as HTTP can tell: its ``Content-Length`` (compared with the bytes on the wire, so a
gzip-encoded answer is measured as sent) or its chunked framing; a body without either ends when the connection
does, and a cut there cannot be told from the end (a warning says so). ``Transfer-Encoding: gzip``, which the HTTP
client leaves as it came, is undone here; its end must arrive too.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import socket
import stat
import tempfile
import threading
import time
import unicodedata
import zipfile
import zlib
from collections.abc import Callable, Iterator
from email.message import Message
from pathlib import Path
from typing import Any, TypedDict

import requests

from airflow_provider_edgeimpulse.exceptions import EdgeImpulseAPIError
from airflow_provider_edgeimpulse.hooks.policy import decode_response
from airflow_provider_edgeimpulse.storage import (
    OBJECT_PART_BYTES,
    file_size,
    is_object_path,
    open_for_read,
    shown_location,
)

DOWNLOAD_CHUNK_BYTES = 1024 * 1024
# A deadline for the whole download, not per read: a server that sends a byte now and then never trips a read
# timeout. An hour moves gigabytes on any link a build is fetched over.
# A server-chosen file name longer than this (in UTF-8 bytes) is not used; file systems stop at 255.
MAX_FILENAME_BYTES = 200
# A server-chosen name never replaces another file: the next free "<stem>-<n><ext>" is taken, up to this many.
MAX_NAME_VARIANTS = 1000
# Enough of the body's start to quote a JSON error whole and to recognise a page or a zip.
_HEAD_BYTES = 64 * 1024
_TEMP_PREFIX = ".edgeimpulse-download-"
_PREVIEW_CHARS = 200
_ZIP_TYPES = frozenset({"application/zip", "application/x-zip", "application/x-zip-compressed"})
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a local file header, or the end record of an empty zip
_HTML_STARTS = (b"<!doctype html", b"<html", b"<?xml")
# Transfer codings the HTTP client undoes itself (chunked) or that change nothing; gzip is undone here.
_PLAIN_TRANSFER_CODINGS = frozenset({"chunked", "identity"})
_GZIP_TRANSFER_CODINGS = (("gzip",), ("x-gzip",))


class DownloadResult(TypedDict):
    path: str
    size: int
    sha256: str
    filename: str | None  # the server's file name, when it gave a usable one


def server_filename(content_disposition: str | None) -> tuple[str | None, str | None]:
    """
    The file name of a ``Content-Disposition`` header (RFC 6266, ``filename*`` too), and why it was refused.

    A name with directories is reduced to its last part, so it cannot climb out of the destination directory.
    A name that is still no plain file name (a control character such as a newline or NUL, a leading dot, too
    long) is refused: ``(None, reason)``. No header or no name: ``(None, None)``.
    """
    if not content_disposition:
        return None, None
    message = Message()
    message["Content-Disposition"] = content_disposition
    raw = message.get_filename()
    if not raw:
        return None, None
    name = raw.replace("\\", "/").rsplit("/", 1)[-1].strip()
    shown = repr(raw[:100]) + (f" ({len(raw)} characters)" if len(raw) > 100 else "")
    if any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in name):
        return None, f"the name {shown} holds control characters"
    if name in ("", ".", ".."):
        return None, f"the name {shown} names no file"
    if name.startswith("."):
        return None, f"the name {shown} would be a hidden file"
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        return None, f"the name {shown} is not valid text"
    if size > MAX_FILENAME_BYTES:
        return None, f"the name {shown} is over {MAX_FILENAME_BYTES} bytes long"
    return name, None


class _Deadline:
    """
    Ends a download at its deadline even while a read is blocked, by shutting its socket down.

    The read timeout of ``requests`` is per read: a server that drips a byte at a time never trips it. A timer
    shuts the connection's socket down at the deadline (through a duplicate of its descriptor, so the timer can
    never touch a socket the pool has handed to another request), which ends the blocked read at once.
    """

    def __init__(self, response: requests.Response, deadline: float) -> None:
        self.deadline = deadline
        self.expired = False
        self._lock = threading.Lock()
        self._done = False
        self._sock: socket.socket | None = None
        with contextlib.suppress(AttributeError, OSError, ValueError):
            self._sock = socket.socket(fileno=os.dup(response.raw.fileno()))
        self._timer = threading.Timer(max(0.0, deadline - time.monotonic()), self._expire)
        self._timer.daemon = True

    def __enter__(self) -> _Deadline:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._done = True
            self._timer.cancel()
            if self._sock is not None:
                self._sock.close()

    def _expire(self) -> None:
        with self._lock:
            if self._done:
                return
            self.expired = True
            if self._sock is not None:
                with contextlib.suppress(OSError):
                    self._sock.shutdown(socket.SHUT_RDWR)

    def passed(self) -> bool:
        """True once the deadline has passed (checked between chunks too, where no read is blocked)."""
        if time.monotonic() >= self.deadline:
            self.expired = True
        return self.expired


class ArtefactDownload:
    """
    Stream ``response`` to ``dest`` (a file, or an existing directory to use the server's file name) and check
    it; ``run()`` returns the result or raises, leaving nothing behind. ``dest`` is a ``Path`` or an
    ``ObjectStoragePath`` (written to a temporary key beside the target in parts of ``OBJECT_PART_BYTES``, checked,
    then moved); ``into_directory`` says which ``dest`` is where the store cannot tell (an empty prefix).

    ``deadline`` (a ``time.monotonic()`` value) ends the download wherever it is; ``timeout_s`` is how it was set,
    for the message. ``max_bytes`` bounds what is written (the connection's ``max_download_bytes``): a longer
    download, announced or found, is an error. Into a directory, the server's name never replaces another file:
    an identical file of that name is kept as the result, otherwise the next free ``<stem>-<n><ext>`` is used.
    A named file is replaced.
    """

    def __init__(
        self,
        response: requests.Response,
        dest: Any,
        *,
        default_name: str,
        deadline: float,
        timeout_s: float,
        max_bytes: int,
        path: str,
        scrub: Callable[[str], str],
        log: Any,
        into_directory: bool | None = None,
    ) -> None:
        self.response = response
        self.dest = dest
        self.default_name = default_name
        self.deadline = deadline
        self.timeout_s = timeout_s
        self.max_bytes = max_bytes
        self.path = path
        self.scrub = scrub
        self.log = log
        headers = response.headers
        self.media_type = (headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
        self.filename, refused = server_filename(headers.get("Content-Disposition"))
        if refused is not None:
            log.warning("Edge Impulse GET %s: not using the file name the server gave: %s", path, scrub(refused))
        codings = (c.strip() for c in (headers.get("Transfer-Encoding") or "").lower().split(","))
        self.transfer_codings = tuple(c for c in codings if c and c not in _PLAIN_TRANSFER_CODINGS)
        self.gzip_coded = self.transfer_codings in _GZIP_TRANSFER_CODINGS
        self.store: _LocalStore | _ObjectStore = _ObjectStore() if is_object_path(dest) else _LocalStore()
        self.into_directory = dest.is_dir() if into_directory is None else into_directory
        self.head = b""
        self.size = 0
        self.digest = hashlib.sha256()

    def error(self, message: str, *, status: int | None = None) -> EdgeImpulseAPIError:
        return EdgeImpulseAPIError(
            self.scrub(f"Edge Impulse GET {self.path}: {message}"), status=status, method="GET", path=self.path
        )

    def run(self) -> DownloadResult:
        directory = self.dest if self.into_directory else self.dest.parent
        store = self.store
        with _Deadline(self.response, self.deadline) as deadline:
            if self.transfer_codings and not self.gzip_coded:
                raise self.error(
                    f"download arrived in the transfer coding {', '.join(self.transfer_codings)!r}, which cannot be "
                    "undone here (gzip can); nothing was saved"
                )
            if _is_document(self.media_type):
                # Not an artefact whatever follows: read only enough of it to say what it is.
                self._read(deadline, None, limit=_HEAD_BYTES)
                raise self._not_an_artefact()
            announced = self.response.headers.get("Content-Length", "").strip()
            # Content-Length counts encoded bytes: only a plain answer's says how much would be written.
            plain = not self.response.headers.get("Content-Encoding")
            if plain and announced.isdigit() and int(announced) > self.max_bytes:
                raise self._too_big(f"it announces {announced} bytes")
            out, tmp = store.create_temp(directory)
            try:
                try:
                    self._read(deadline, out)
                except BaseException:
                    store.abandon(out)
                    raise
                out.close()
                self._verify(tmp)
                final = self._place(tmp, directory)
            finally:
                store.remove(tmp)
        return {
            "path": shown_location(final),
            "size": self.size,
            "sha256": self.digest.hexdigest(),
            "filename": self.filename,
        }

    def _read(self, deadline: _Deadline, out: Any, *, limit: int | None = None) -> None:
        gunzip = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS) if self.gzip_coded else None
        try:
            for received in self.response.iter_content(chunk_size=DOWNLOAD_CHUNK_BYTES):
                for chunk in (received,) if gunzip is None else _inflated(gunzip, received):
                    if deadline.passed():
                        raise self._too_slow()
                    if len(self.head) < _HEAD_BYTES:
                        self.head += chunk[: _HEAD_BYTES - len(self.head)]
                    if out is not None:
                        out.write(chunk)
                    self.digest.update(chunk)
                    self.size += len(chunk)
                    if limit is not None and self.size >= limit:
                        return
                    if self.size > self.max_bytes:
                        raise self._too_big(f"{self.size} bytes had arrived")
        except EdgeImpulseAPIError:
            raise
        except Exception as exc:
            if deadline.passed():
                raise self._too_slow() from None
            if isinstance(exc, requests.RequestException):
                raise self.error(
                    f"download broke off after {self.size} bytes ({_reason(exc)}); nothing was saved"
                ) from None
            if isinstance(exc, zlib.error):
                raise self.error(f"download's gzip transfer coding is corrupt ({exc}); nothing was saved") from None
            raise
        if deadline.passed():
            raise self._too_slow()
        if gunzip is not None and not gunzip.eof:
            raise self.error(
                f"download broke off after {self.size} bytes (its gzip transfer coding did not end); nothing was saved"
            )

    def _too_big(self, seen: str) -> EdgeImpulseAPIError:
        return self.error(
            f"download is larger than the limit of {self.max_bytes} bytes (the connection extra max_download_mib "
            f"raises it; {seen}); nothing was saved"
        )

    def _too_slow(self) -> EdgeImpulseAPIError:
        return self.error(
            f"download did not complete within its deadline of {self.timeout_s:g} s (download_timeout; "
            f"{self.size} bytes had arrived); nothing was saved"
        )

    def _verify(self, tmp: Any) -> None:
        expected = self.response.headers.get("Content-Length", "").strip()
        # Content-Length counts the bytes as sent, before any Content-Encoding is undone: so do we.
        sent = self.response.raw.tell()
        if expected.isdigit() and int(expected) != sent:
            raise self.error(f"download ended after {sent} of {expected} bytes; nothing was saved")
        if self.size == 0:
            raise self.error("answered with an empty body instead of the artefact; nothing was saved")
        if _looks_like_a_document(self.head, whole=self.size <= _HEAD_BYTES):
            raise self._not_an_artefact()
        if self.is_zip:
            with open_for_read(tmp) as handle:
                problem = _zip_problem(handle, self.size)
            if problem is not None:
                raise self.error(
                    f"the download is not a readable zip ({problem}): cut short, or not the artefact "
                    f"({self.size} bytes, content type {self.media_type or 'none'!r}); nothing was saved"
                )
        elif not expected.isdigit() and not getattr(self.response.raw, "chunked", False):
            self.log.warning(
                "Edge Impulse GET %s: the server gave neither a length nor chunked framing, and the artefact is no "
                "zip: whether all of its %d bytes arrived cannot be checked",
                self.path,
                self.size,
            )

    @property
    def is_zip(self) -> bool:
        named_zip = (self.filename or "").lower().endswith(".zip")
        return self.media_type in _ZIP_TYPES or named_zip or self.head.startswith(_ZIP_MAGIC)

    def _not_an_artefact(self) -> EdgeImpulseAPIError:
        text = self.scrub(self.head.decode("utf-8", errors="replace"))
        kind = self.media_type or "no content type"
        try:
            body = json.loads(text)
        except ValueError:
            body = None
        if isinstance(body, dict):
            try:
                decode_response(status=self.response.status_code, method="GET", path=self.path, text=text)
            except EdgeImpulseAPIError as err:  # ``success: false``: the API error it is
                error = self.scrub(err.error) if err.error else None
                return EdgeImpulseAPIError(
                    self.scrub(str(err)), status=err.status, method="GET", path=self.path, error=error
                )
        html = "html" in kind or text.lstrip()[:16].lower().startswith(("<!doctype html", "<html"))
        what = "an HTML page (a sign-in or error page?)" if html else f"a body of type {kind!r}"
        preview = text[:_PREVIEW_CHARS].strip() or "<empty body>"
        return self.error(
            f"answered HTTP {self.response.status_code} with {what} instead of the artefact: {preview!r}; "
            "nothing was saved",
            status=self.response.status_code,
        )

    def _place(self, tmp: Any, directory: Any) -> Any:
        store = self.store
        if not self.into_directory:
            store.replace(tmp, self.dest)  # a path the caller named: it is theirs to replace
            return self.dest
        name = self.filename or f"{self.default_name}{'.zip' if self.is_zip else '.bin'}"
        stem, ext = _split_name(name)
        for n in range(MAX_NAME_VARIANTS):
            target = directory / (name if n == 0 else f"{stem}-{n}{ext}")
            if store.put_new(tmp, target):
                if n:
                    self.log.info(
                        "%s already exists with other content; saved the download as %s", name, shown_location(target)
                    )
                return target
            if store.same_content(target, self.size, self.digest.hexdigest()):
                self.log.info("%s already holds this artefact (same sha256); kept it", shown_location(target))
                return target
        raise self.error(
            f"{shown_location(directory / name)} and {MAX_NAME_VARIANTS - 1} numbered variants already exist with "
            "other content; nothing was saved"
        )


class _LocalStore:
    """A local destination: a temporary file beside it, atomic renames and hard links."""

    def create_temp(self, directory: Path) -> tuple[Any, Path]:
        fd, tmp_name = tempfile.mkstemp(prefix=_TEMP_PREFIX, suffix=".part", dir=directory)
        return os.fdopen(fd, "wb"), Path(tmp_name)

    @staticmethod
    def abandon(out: Any) -> None:
        out.close()

    @staticmethod
    def replace(tmp: Path, dest: Path) -> None:
        os.replace(tmp, dest)

    @staticmethod
    def put_new(tmp: Path, target: Path) -> bool:
        return _put_new(tmp, target)

    @staticmethod
    def same_content(target: Path, size: int, sha256: str) -> bool:
        return _same_file_content(target, size, sha256)

    @staticmethod
    def remove(tmp: Path) -> None:
        tmp.unlink(missing_ok=True)


class _ObjectStore:
    """
    An ``ObjectStoragePath`` destination: a temporary key beside the target, written in bounded parts, then moved.

    An object store moves by copy and delete, and has no "create only if absent": into a directory, a key that
    appears between the check and the move is replaced (local paths have no such gap).
    """

    def create_temp(self, directory: Any) -> tuple[Any, Any]:
        tmp = directory / f"{_TEMP_PREFIX}{secrets.token_hex(8)}.part"
        return tmp.open("wb", block_size=OBJECT_PART_BYTES), tmp

    @staticmethod
    def abandon(out: Any) -> None:
        # A multipart upload is dropped, not completed: closing it would publish a partial object.
        discard = getattr(out, "discard", None)
        with contextlib.suppress(Exception):
            discard() if callable(discard) else out.close()

    @staticmethod
    def replace(tmp: Any, dest: Any) -> None:
        tmp.fs.mv(tmp.path, dest.path)

    def put_new(self, tmp: Any, target: Any) -> bool:
        if target.exists():
            return False
        self.replace(tmp, target)
        return True

    @staticmethod
    def same_content(target: Any, size: int, sha256: str) -> bool:
        try:
            if not target.is_file() or file_size(target) != size:
                return False
            digest = hashlib.sha256()
            with open_for_read(target) as handle:
                while chunk := handle.read(DOWNLOAD_CHUNK_BYTES):
                    digest.update(chunk)
        except OSError:
            return False
        return digest.hexdigest() == sha256

    @staticmethod
    def remove(tmp: Any) -> None:
        with contextlib.suppress(FileNotFoundError):
            if tmp.exists():
                tmp.fs.rm(tmp.path)


def _inflated(gunzip: Any, data: bytes) -> Iterator[bytes]:
    """What ``data`` unpacks to, in pieces of at most ``DOWNLOAD_CHUNK_BYTES``: a small gzip cannot fill memory."""
    while True:
        piece = gunzip.decompress(data, DOWNLOAD_CHUNK_BYTES)
        if piece:
            yield piece
        data = gunzip.unconsumed_tail
        if not data and len(piece) < DOWNLOAD_CHUNK_BYTES:
            return


def _is_document(media_type: str) -> bool:
    """A content type no artefact comes as: a page, a JSON answer or text."""
    return (
        media_type.startswith("text/")
        or media_type in ("application/json", "application/xhtml+xml", "application/problem+json")
        or media_type.endswith("+json")
    )


def _looks_like_a_document(head: bytes, *, whole: bool) -> bool:
    """A body that is a page or a JSON answer whatever its content type says (``whole``: ``head`` is all of it)."""
    start = head.lstrip()[:16].lower()
    if start.startswith(_HTML_STARTS):
        return True
    if whole and start.startswith(b"{"):
        try:
            return isinstance(json.loads(head), dict)
        except ValueError:
            return False
    return False


def _zip_problem(handle: Any, size: int) -> str | None:
    """Why the open file ``handle`` is no readable zip (its central directory, and where it says entries lie)."""
    try:
        with zipfile.ZipFile(handle) as archive:
            for info in archive.infolist():
                if info.header_offset + info.compress_size > size:
                    return f"entry {info.filename!r} runs past the end"
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as err:
        return str(err) or type(err).__name__
    return None


def _split_name(name: str) -> tuple[str, str]:
    """``model.zip`` -> (``model``, ``.zip``); a name without an extension keeps all of it as the stem."""
    dot = name.rfind(".")
    return (name[:dot], name[dot:]) if dot > 0 else (name, "")


def _put_new(tmp: Path, target: Path) -> bool:
    """Give ``tmp`` the name ``target`` only if nothing has it yet (atomically where hard links work)."""
    try:
        os.link(tmp, target)
    except FileExistsError:
        return False
    except OSError:
        # No hard links on this file system: check, then rename (a file created in between would be replaced).
        if os.path.lexists(target):
            return False
        os.replace(tmp, target)
    return True


def _same_file_content(target: Path, size: int, sha256: str) -> bool:
    try:
        info = os.lstat(target)
    except OSError:
        return False
    if not stat.S_ISREG(info.st_mode) or info.st_size != size:
        return False
    digest = hashlib.sha256()
    with open(target, "rb") as handle:
        while chunk := handle.read(DOWNLOAD_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest() == sha256


def _reason(exc: BaseException) -> str:
    text = str(exc)
    if "IncompleteRead" in text or "ended prematurely" in text:
        return "the connection closed before the end of the body"
    return type(exc).__name__
