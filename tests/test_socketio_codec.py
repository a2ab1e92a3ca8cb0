"""The Engine.IO / Socket.IO text codec: round trips, interop with python-socketio's parser, malformed input."""

from __future__ import annotations

import json
import random
import string

import engineio.packet as eio_packet
import pytest
import socketio.packet as sio_packet

from airflow_provider_edgeimpulse.socketio_codec import (
    EIOVersion,
    EngineType,
    Frame,
    MalformedFrame,
    SocketType,
    decode_frame,
    encode_ack,
    encode_close,
    encode_connect,
    encode_connect_error,
    encode_disconnect,
    encode_event,
    encode_noop,
    encode_open,
    encode_ping,
    encode_pong,
    parse_eio_version,
)

# ---------------------------------------------------------------------------------------------------- engine level


def test_open_round_trip_carries_ping_settings() -> None:
    text = encode_open("sid-1", 25000, 20000)
    assert text.startswith("0{")
    frame = decode_frame(text)
    assert frame.engine is EngineType.OPEN
    assert frame.open is not None
    assert frame.open["sid"] == "sid-1"
    assert frame.open["pingInterval"] == 25000
    assert frame.open["pingTimeout"] == 20000
    assert frame.open["upgrades"] == []


def test_decodes_eio3_open_without_max_payload() -> None:
    # What a Socket.IO v2 server (EIO3) sends: no maxPayload.
    frame = decode_frame('0{"sid":"abc","upgrades":[],"pingInterval":25000,"pingTimeout":5000}')
    assert frame.open == {"sid": "abc", "upgrades": [], "pingInterval": 25000, "pingTimeout": 5000}


def test_open_is_readable_by_python_engineio() -> None:
    pkt = eio_packet.Packet(encoded_packet=encode_open("s", 100, 200))
    assert pkt.packet_type == eio_packet.OPEN
    assert pkt.data["sid"] == "s"
    assert pkt.data["pingInterval"] == 100


@pytest.mark.parametrize(
    ("text", "engine", "data"),
    [
        (encode_ping(), EngineType.PING, ""),
        (encode_ping("probe"), EngineType.PING, "probe"),
        (encode_pong(), EngineType.PONG, ""),
        (encode_pong("probe"), EngineType.PONG, "probe"),
        (encode_close(), EngineType.CLOSE, ""),
        (encode_noop(), EngineType.NOOP, ""),
        ("5", EngineType.UPGRADE, ""),
    ],
)
def test_engine_packets_round_trip(text: str, engine: EngineType, data: str) -> None:
    frame = decode_frame(text)
    assert frame == Frame(engine=engine, data=data)


def test_engine_packet_wire_forms() -> None:
    assert encode_ping() == "2"
    assert encode_pong("probe") == "3probe"
    assert encode_close() == "1"


@pytest.mark.parametrize(("value", "expected"), [("3", EIOVersion.V3), ("4", EIOVersion.V4), ("5", None), (None, None)])
def test_parse_eio_version(value: str | None, expected: EIOVersion | None) -> None:
    assert parse_eio_version(value) is expected


# ---------------------------------------------------------------------------------------------------- socket level


def test_connect_forms() -> None:
    assert encode_connect() == "40"
    assert encode_connect(payload={"sid": "x"}) == '40{"sid":"x"}'
    assert encode_connect("/ns") == "40/ns,"
    assert encode_connect("/ns", {"token": "t"}) == '40/ns,{"token":"t"}'


@pytest.mark.parametrize(
    ("text", "namespace", "args"),
    [
        ("40", "/", ()),
        ('40{"sid":"x"}', "/", ({"sid": "x"},)),
        ("40/ns,", "/ns", ()),
        ("40/ns", "/ns", ()),  # socket.io-parser also reads a namespace that runs to the end of the frame
        ('40/ns,{"a":1}', "/ns", ({"a": 1},)),
    ],
)
def test_connect_decodes(text: str, namespace: str, args: tuple[object, ...]) -> None:
    frame = decode_frame(text)
    assert frame.engine is EngineType.MESSAGE
    assert frame.socket is SocketType.CONNECT
    assert frame.namespace == namespace
    assert frame.args == args
    assert frame.payload == (args[0] if args else None)


def test_disconnect_round_trip() -> None:
    assert encode_disconnect() == "41"
    assert decode_frame("41").socket is SocketType.DISCONNECT
    frame = decode_frame(encode_disconnect("/ns"))
    assert (frame.socket, frame.namespace) == (SocketType.DISCONNECT, "/ns")


def test_event_wire_form() -> None:
    assert encode_event("hello", {"hello": {"version": 1}}) == '42["hello",{"hello":{"version":1}}]'
    assert encode_event("e", 1, ack_id=1) == '421["e",1]'
    assert encode_event("e", namespace="/ns", ack_id=12) == '42/ns,12["e"]'


@pytest.mark.parametrize("namespace", ["/", "/admin"])
@pytest.mark.parametrize("ack_id", [None, 0, 7, 123456])
@pytest.mark.parametrize(
    "args",
    [(), ({"jobId": 5},), ("a", 1, None, True, [1, 2]), ({"data": "epoch 1/10 ✓ 日本語 🚀\nnext"},)],
)
def test_event_round_trip(namespace: str, ack_id: int | None, args: tuple[object, ...]) -> None:
    frame = decode_frame(encode_event("job-data-5", *args, namespace=namespace, ack_id=ack_id))
    assert frame.engine is EngineType.MESSAGE
    assert frame.socket is SocketType.EVENT
    assert frame.event == "job-data-5"
    assert frame.args == args
    assert frame.ack_id == ack_id
    assert frame.namespace == namespace


def test_unicode_is_sent_raw_but_lone_surrogates_are_escaped() -> None:
    assert encode_event("e", "é🚀") == '42["e","é🚀"]'
    text = encode_event("e", "x\ud800")
    text.encode("utf-8")  # must be sendable as a UTF-8 text frame
    assert decode_frame(text).args == ("x\ud800",)


@pytest.mark.parametrize("namespace", ["/", "/ns"])
def test_ack_round_trip(namespace: str) -> None:
    text = encode_ack(3, "ok", {"a": 1}, namespace=namespace)
    frame = decode_frame(text)
    assert frame.socket is SocketType.ACK
    assert frame.ack_id == 3
    assert frame.args == ("ok", {"a": 1})
    assert frame.namespace == namespace


def test_connect_error_per_version() -> None:
    v4 = decode_frame(encode_connect_error("denied"))
    assert v4.socket is SocketType.CONNECT_ERROR
    assert v4.payload == {"message": "denied"}
    v3 = decode_frame(encode_connect_error("denied", version=EIOVersion.V3))
    assert v3.payload == "denied"


@pytest.mark.parametrize(
    ("packet_type", "data", "namespace", "ack_id"),
    [
        (sio_packet.EVENT, ["job-finished", {"jobId": 3, "success": True}], None, None),
        (sio_packet.EVENT, ["e", "ü"], "/ns", 9),
        (sio_packet.ACK, ["x"], None, 4),
        (sio_packet.CONNECT, {"sid": "abc"}, None, None),
        (sio_packet.CONNECT, None, "/ns", None),
        (sio_packet.DISCONNECT, None, None, None),
    ],
)
def test_decodes_what_python_socketio_encodes(
    packet_type: int, data: object, namespace: str | None, ack_id: int | None
) -> None:
    pkt = sio_packet.Packet(packet_type, data=data, namespace=namespace, id=ack_id)
    frame = decode_frame("4" + str(pkt.encode()))
    assert frame.socket == SocketType(packet_type)
    assert frame.namespace == (namespace or "/")
    assert frame.ack_id == ack_id
    if packet_type == sio_packet.EVENT:
        assert isinstance(data, list)
        assert (frame.event, list(frame.args)) == (data[0], data[1:])
    elif packet_type == sio_packet.ACK:
        assert list(frame.args) == data
    elif data is not None:
        assert frame.payload == data


@pytest.mark.parametrize(
    "text",
    [
        encode_event("e", {"a": [1, "ü"]}),
        encode_event("e", namespace="/ns", ack_id=42),
        encode_connect(payload={"sid": "x"}),
        encode_connect("/ns"),
        encode_ack(8, 1, 2),
        encode_disconnect(),
    ],
)
def test_python_socketio_decodes_what_we_encode(text: str) -> None:
    engine = eio_packet.Packet(encoded_packet=text)
    assert engine.packet_type == eio_packet.MESSAGE
    pkt = sio_packet.Packet(encoded_packet=engine.data)
    ours = decode_frame(text)
    assert pkt.packet_type == ours.socket
    assert (pkt.namespace or "/") == ours.namespace
    assert pkt.id == ours.ack_id
    if ours.socket is SocketType.EVENT:
        assert pkt.data == [ours.event, *ours.args]


def test_encoders_reject_bad_arguments() -> None:
    with pytest.raises(ValueError, match="namespace"):
        encode_event("e", namespace="ns")
    with pytest.raises(ValueError, match="ack id"):
        encode_event("e", ack_id=-1)
    with pytest.raises(ValueError, match="Out of range"):
        encode_event("e", float("nan"))


# ---------------------------------------------------------------------------------------------------- malformed


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        ("9", "unknown engine"),
        ("x42", "unknown engine"),
        ("b4AAAA", "binary"),
        ("0", "invalid JSON"),
        ("0[]", "not an object"),
        ('0{"pingInterval":1,"pingTimeout":1}', "no sid"),
        ('0{"sid":"s","pingInterval":"1","pingTimeout":1}', "pingInterval"),
        ('0{"sid":"s","pingInterval":1,"pingTimeout":true}', "pingTimeout"),
        ("4", "empty message"),
        ("4x", "unknown socket"),
        ("49", "unknown socket"),
        ('451-["e",{"_placeholder":true,"num":0}]', "binary"),
        ('461-0[{"_placeholder":true,"num":0}]', "binary"),
        ("42", "event payload"),
        ("42{}", "event payload"),
        ("42[]", "event payload"),
        ("42[1]", "event payload"),
        ('42["e"', "invalid JSON"),
        ('42["e",NaN]', "invalid JSON"),
        ('42["e",Infinity]', "invalid JSON"),
        ("43[1]", "without an id"),
        ('431{"a":1}', "not an array"),
        ("401", "ack id on"),
        ("40[1]", "not an object"),
        ("41{}", "no payload"),
        ('4212345678901234567["e"]', "too long"),
        ('42٣["e"]', "invalid JSON"),  # a non-ASCII digit is not an ack id
        ("42" + "[" * 100_000, "invalid JSON"),
    ],
)
def test_malformed_frames(text: str, reason: str) -> None:
    with pytest.raises(MalformedFrame, match=reason):
        decode_frame(text)


@pytest.mark.parametrize("value", [b"42[]", None, 42])
def test_non_text_is_malformed(value: object) -> None:
    with pytest.raises(MalformedFrame, match="not a text frame"):
        decode_frame(value)  # type: ignore[arg-type]


def _mutations(rng: random.Random) -> list[str]:
    seeds = [
        encode_open("sid", 25000, 20000),
        encode_event("job-data-1", {"data": "x"}, ack_id=3),
        encode_event("e", namespace="/ns"),
        encode_connect(payload={"sid": "x"}),
        encode_ack(1, [1, {"a": None}]),
        '44{"message":"no"}',
        "2probe",
    ]
    alphabet = string.printable + '[]{}",:/0123456789é🚀\ud800\x00'
    out: list[str] = []
    for _ in range(4000):
        seed = rng.choice(seeds)
        chars = list(seed)
        for _ in range(rng.randint(1, 4)):
            op = rng.randrange(3)
            pos = rng.randrange(len(chars) + 1)
            if op == 0:
                chars.insert(pos, rng.choice(alphabet))
            elif op == 1 and chars:
                del chars[min(pos, len(chars) - 1)]
            elif chars:
                chars[min(pos, len(chars) - 1)] = rng.choice(alphabet)
        out.append("".join(chars))
    for _ in range(2000):
        out.append("".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40))))
    return out


def test_fuzz_never_raises_anything_but_malformed_frame() -> None:
    rng = random.Random(20240601)
    decoded = 0
    reasons: set[str] = set()
    for text in _mutations(rng):
        try:
            frame = decode_frame(text)
        except MalformedFrame as exc:
            reasons.add(str(exc))
            continue
        decoded += 1
        assert isinstance(frame.engine, EngineType)
        if frame.socket is SocketType.EVENT:
            assert isinstance(frame.event, str)
    # The mutations must exercise both outcomes, or the fuzz proves nothing.
    assert decoded > 100
    assert len(reasons) > 5
    assert "" not in reasons


def test_payload_survives_json_round_trip() -> None:
    payload = {"jobId": 12, "success": False, "nested": {"list": [1.5, None, "\u2028"]}}
    frame = decode_frame(encode_event("job-finished", payload))
    assert json.dumps(frame.payload, sort_keys=True) == json.dumps(payload, sort_keys=True)
