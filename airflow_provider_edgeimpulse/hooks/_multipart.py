"""
A streamed ``multipart/form-data`` body: files are read chunk by chunk while the request is being sent.

``requests``' own ``files=`` builds the whole body in memory, which for 1000 files of up to 100 MB each is not
an option. This body knows its exact length up front (so the request carries ``Content-Length`` rather than
chunked encoding, which some ingress proxies refuse) and can be iterated again for a retry.
"""

from __future__ import annotations

import mimetypes
import secrets
from collections.abc import Iterator, Sequence
from typing import Any

from airflow_provider_edgeimpulse.storage import file_size, open_for_read, shown_location

_CHUNK = 1024 * 1024


def _quote(value: str) -> str:
    # The form-data convention of browsers (WHATWG): escape the three characters that would break the header.
    return value.replace("\\", "\\\\").replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


class MultipartFiles:
    """
    ``len()`` gives the exact body size; each ``iter()`` opens the files afresh and streams them (local paths, or
    ``ObjectStoragePath`` objects read in bounded parts).
    """

    def __init__(self, paths: Sequence[Any], *, field: str = "data", boundary: str | None = None) -> None:
        self.boundary = boundary or f"----airflow-edgeimpulse-{secrets.token_hex(16)}"
        self._parts: list[tuple[Any, bytes, int]] = []
        for path in paths:
            content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            head = (
                f"--{self.boundary}\r\n"
                f'Content-Disposition: form-data; name="{field}"; filename="{_quote(path.name)}"\r\n'
                f"Content-Type: {content_type}\r\n\r\n"
            ).encode()
            self._parts.append((path, head, file_size(path)))
        self._tail = f"--{self.boundary}--\r\n".encode()

    @property
    def content_type(self) -> str:
        return f"multipart/form-data; boundary={self.boundary}"

    def __len__(self) -> int:
        return sum(len(head) + size + 2 for _, head, size in self._parts) + len(self._tail)

    def __iter__(self) -> Iterator[bytes]:
        for path, head, size in self._parts:
            yield head
            sent = 0
            with open_for_read(path) as handle:
                while sent < size:
                    chunk = handle.read(min(_CHUNK, size - sent))
                    if not chunk:
                        break
                    sent += len(chunk)
                    yield chunk
            if sent != size:
                # The announced Content-Length would be wrong: stop rather than send a corrupt body.
                raise ValueError(f"{shown_location(path)} changed size while being uploaded ({size} -> {sent} bytes)")
            yield b"\r\n"
        yield self._tail
