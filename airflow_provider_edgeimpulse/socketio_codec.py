"""
A sans-IO codec for the text frames of Engine.IO (protocol 3 and 4) carrying Socket.IO packets.

Shared by the provider's WebSocket client and the emulator's server. It only turns strings into frames and
back: no sockets, no event loop, nothing heavy to import. Edge Impulse Studio sends text frames only, so binary
packets (``b...`` engine frames, Socket.IO types 5 and 6) are rejected as :class:`MalformedFrame`; callers skip
those like any other frame they cannot read.

Frame layout, for reference::

    <engine type digit>[data]                          engine packet, e.g. "0{...}" open, "2probe" ping
    4<socket type digit>[/namespace,][ack id][json]    Socket.IO packet inside an engine message, e.g. '421["e",1]'
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

__all__ = [
    "EIOVersion",
    "EngineType",
    "Frame",
    "MalformedFrame",
    "SocketType",
    "decode_frame",
    "encode_ack",
    "encode_close",
    "encode_connect",
    "encode_connect_error",
    "encode_disconnect",
    "encode_event",
    "encode_noop",
    "encode_open",
    "encode_ping",
    "encode_pong",
    "parse_eio_version",
]

# socket.io caps ack ids at 2**53 in JS; anything longer is garbage, and int() on a huge digit string is slow.
_MAX_ACK_ID_DIGITS = 16
_DEFAULT_MAX_PAYLOAD = 1_000_000


class EIOVersion(IntEnum):
    """Engine.IO protocol revision, as sent in the ``EIO`` query parameter."""

    V3 = 3
    V4 = 4


class EngineType(IntEnum):
    """Engine.IO packet types (the first character of every frame)."""

    OPEN = 0
    CLOSE = 1
    PING = 2
    PONG = 3
    MESSAGE = 4
    UPGRADE = 5
    NOOP = 6


class SocketType(IntEnum):
    """Socket.IO packet types (the second character of an engine MESSAGE frame)."""

    CONNECT = 0
    DISCONNECT = 1
    EVENT = 2
    ACK = 3
    CONNECT_ERROR = 4
    BINARY_EVENT = 5
    BINARY_ACK = 6


class MalformedFrame(ValueError):
    """A frame that is not valid Engine.IO / Socket.IO text, or uses a feature this codec does not support."""


# Not frozen: a frozen dataclass sets each field through object.__setattr__, which tripled the cost of decoding a
# log line's frame (thousands of them arrive when a burst of jobs ends). A frame is read once and dropped.
@dataclass(slots=True)
class Frame:
    """
    One decoded frame.

    ``data`` is the raw text after the engine type digit (the ping/pong probe text, or the whole Socket.IO packet
    for a MESSAGE). For Socket.IO packets: ``event`` is set for EVENT; ``args`` holds the event's arguments, an
    ACK's values, or the single JSON payload of a CONNECT / CONNECT_ERROR (empty when it had none). ``open`` is the
    handshake object of an OPEN frame.
    """

    engine: EngineType
    data: str = ""
    socket: SocketType | None = None
    namespace: str = "/"
    event: str | None = None
    args: tuple[Any, ...] = ()
    ack_id: int | None = None
    open: dict[str, Any] | None = None

    @property
    def payload(self) -> Any:
        """The first argument, or None: the JSON object of a CONNECT / CONNECT_ERROR, the first arg of an event."""
        return self.args[0] if self.args else None


# ---------------------------------------------------------------------------------------------------- decoding

_ENGINE_DIGITS = {str(t.value): t for t in EngineType}
_SOCKET_DIGITS = {str(t.value): t for t in SocketType}


def _reject_constant(name: str) -> Any:
    # Python's json accepts NaN/Infinity; JavaScript peers never send them, so they mark a corrupt frame.
    raise ValueError(f"invalid JSON constant {name}")


# One decoder for every frame: ``json.loads`` with an option builds a new one per call.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def _loads(text: str) -> Any:
    try:
        return _DECODER.decode(text)
    except (ValueError, RecursionError) as exc:  # RecursionError: deeply nested arrays from a hostile peer
        raise MalformedFrame(f"invalid JSON: {type(exc).__name__}") from None


def decode_frame(text: str) -> Frame:
    """
    Decode one WebSocket text frame.

    Raises :class:`MalformedFrame` (and nothing else) when the frame cannot be read.
    """
    if not isinstance(text, str):
        raise MalformedFrame("not a text frame")
    if not text:
        raise MalformedFrame("empty frame")
    engine = _ENGINE_DIGITS.get(text[0])
    if engine is None:
        if text[0] == "b":
            raise MalformedFrame("binary frames are not supported")
        raise MalformedFrame("unknown engine packet type")
    data = text[1:]
    if engine is EngineType.OPEN:
        return Frame(engine=engine, data=data, open=_decode_open(data))
    if engine is EngineType.MESSAGE:
        return _decode_socket(data)
    return Frame(engine=engine, data=data)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _decode_open(data: str) -> dict[str, Any]:
    handshake = _loads(data)
    if not isinstance(handshake, dict):
        raise MalformedFrame("open payload is not an object")
    if not isinstance(handshake.get("sid"), str):
        raise MalformedFrame("open payload has no sid")
    for key in ("pingInterval", "pingTimeout"):
        if not _is_number(handshake.get(key)):
            raise MalformedFrame(f"open payload has no numeric {key}")
    return handshake


def _decode_socket(data: str) -> Frame:
    if not data:
        raise MalformedFrame("empty message")
    kind = _SOCKET_DIGITS.get(data[0])
    if kind is None:
        raise MalformedFrame("unknown socket packet type")
    if kind in (SocketType.BINARY_EVENT, SocketType.BINARY_ACK):
        raise MalformedFrame("binary packets are not supported")
    pos = 1
    namespace = "/"
    if data.startswith("/", pos):
        comma = data.find(",", pos)
        end = len(data) if comma < 0 else comma
        namespace = data[pos:end]
        pos = end + 1
    ack_id = None
    digits_end = pos
    while digits_end < len(data) and "0" <= data[digits_end] <= "9":  # ASCII only: str.isdigit() admits "٣"
        digits_end += 1
    if digits_end > pos:
        if digits_end - pos > _MAX_ACK_ID_DIGITS:
            raise MalformedFrame("ack id too long")
        ack_id = int(data[pos:digits_end])
        pos = digits_end
    rest = data[pos:]
    payload = _loads(rest) if rest else None
    if kind is SocketType.EVENT:
        if not isinstance(payload, list) or not payload or not isinstance(payload[0], str):
            raise MalformedFrame("event payload is not an array starting with a name")
        args: tuple[Any, ...] = tuple(payload[1:])
        return Frame(EngineType.MESSAGE, data, kind, namespace, payload[0], args, ack_id)
    if kind is SocketType.ACK:
        if ack_id is None:
            raise MalformedFrame("ack without an id")
        if not isinstance(payload, list):
            raise MalformedFrame("ack payload is not an array")
        args = tuple(payload)
    elif ack_id is not None:
        raise MalformedFrame("ack id on a packet that takes none")
    elif kind is SocketType.CONNECT:
        if rest and not isinstance(payload, dict):
            raise MalformedFrame("connect payload is not an object")
        args = (payload,) if rest else ()
    elif kind is SocketType.DISCONNECT:
        if rest:
            raise MalformedFrame("disconnect takes no payload")
        args = ()
    else:
        # CONNECT_ERROR: protocol 5 (EIO4) sends {"message": ...}; protocol 4 (EIO3) sends a bare JSON string.
        args = (payload,) if rest else ()
    return Frame(EngineType.MESSAGE, data, kind, namespace, None, args, ack_id)


# ---------------------------------------------------------------------------------------------------- encoding


def _dumps(value: Any) -> str:
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            # A lone surrogate cannot go out as UTF-8: escape it, as JSON.stringify does.
            text = json.dumps(value, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return text


def _namespace_prefix(namespace: str) -> str:
    if namespace in ("", "/"):
        return ""
    if not namespace.startswith("/") or "," in namespace:
        raise ValueError(f"invalid namespace {namespace!r}")
    return namespace + ","


def _ack_part(ack_id: int | None) -> str:
    if ack_id is None:
        return ""
    if isinstance(ack_id, bool) or not isinstance(ack_id, int) or ack_id < 0:
        raise ValueError(f"invalid ack id {ack_id!r}")
    return str(ack_id)


def encode_open(
    sid: str,
    ping_interval_ms: int,
    ping_timeout_ms: int,
    *,
    max_payload: int = _DEFAULT_MAX_PAYLOAD,
) -> str:
    """The server's handshake. ``maxPayload`` is an EIO4 field; EIO3 clients ignore it."""
    handshake = {
        "sid": sid,
        "upgrades": [],
        "pingInterval": ping_interval_ms,
        "pingTimeout": ping_timeout_ms,
        "maxPayload": max_payload,
    }
    return "0" + _dumps(handshake)


def encode_close() -> str:
    return "1"


def encode_ping(data: str = "") -> str:
    return "2" + data


def encode_pong(data: str = "") -> str:
    return "3" + data


def encode_noop() -> str:
    return "6"


def encode_connect(namespace: str = "/", payload: dict[str, Any] | None = None) -> str:
    """``40``, ``40{...}`` (EIO4 server answer / client auth) or ``40/ns,``."""
    body = "" if payload is None else _dumps(payload)
    return "40" + _namespace_prefix(namespace) + body


def encode_disconnect(namespace: str = "/") -> str:
    return "41" + _namespace_prefix(namespace)


def encode_event(event: str, *args: Any, namespace: str = "/", ack_id: int | None = None) -> str:
    """``42["event",arg,...]``, with ``/ns,`` and an ack id between the type digit and the JSON when given."""
    return "42" + _namespace_prefix(namespace) + _ack_part(ack_id) + _dumps([event, *args])


def encode_ack(ack_id: int, *args: Any, namespace: str = "/") -> str:
    return "43" + _namespace_prefix(namespace) + _ack_part(ack_id) + _dumps(list(args))


def encode_connect_error(message: str, namespace: str = "/", *, version: EIOVersion = EIOVersion.V4) -> str:
    """A refused namespace connect: an object for EIO4 (Socket.IO protocol 5), a bare string for EIO3."""
    payload: Any = {"message": message} if version is EIOVersion.V4 else message
    return "44" + _namespace_prefix(namespace) + _dumps(payload)


def parse_eio_version(value: str | None) -> EIOVersion | None:
    """The ``EIO`` query parameter as a supported version, or None when absent or unsupported."""
    if value == "3":
        return EIOVersion.V3
    if value == "4":
        return EIOVersion.V4
    return None
