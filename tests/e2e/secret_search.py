"""
Looking for secrets everywhere an Airflow deployment keeps things (see test_secrets.py for what and why): files,
every cell of every table of the metadata DB (SQLite or PostgreSQL), with Fernet tokens decrypted and zlib blobs
inflated, trigger kwargs as Airflow's own Trigger model hands them to a triggerer, and every key and value of a
distributed stack's Redis (the Celery broker).
"""

from __future__ import annotations

import base64
import configparser
import json
import re
import sqlite3
import zlib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

from tests.e2e.stack import AirflowStack, StackError

# The only table a secret may sit in (encrypted with the deployment's Fernet key).
ALLOWED_TABLES = frozenset({"connection"})
_FERNET_TOKEN = re.compile(rb"gAAAAA[0-9A-Za-z_\-]{40,}={0,2}")
TRIGGER_DUMP = """
import json
from sqlalchemy import select
from airflow.models.trigger import Trigger
from airflow.utils.session import create_session
with create_session() as session:
    rows = [
        {"id": t.id, "classpath": t.classpath, "kwargs": repr(t.kwargs)}
        for t in session.scalars(select(Trigger))
    ]
print("TRIGGERS " + json.dumps(rows))
"""


def encoded_forms(value: str) -> list[tuple[str, bytes]]:
    """The value as bytes, and base64 of it at each alignment (what survives inside a longer encoded text)."""
    raw = value.encode()
    forms = [("plain", raw)]
    for shift in range(3):
        padded = b"\0" * shift + raw
        whole_groups = len(padded) // 3
        for name, encode in (("base64", base64.b64encode), ("base64url", base64.urlsafe_b64encode)):
            encoded = encode(padded)[4 if shift else 0 : whole_groups * 4]
            if len(encoded) >= 16:
                forms.append((name, encoded))
    return forms


@dataclass(frozen=True)
class Hit:
    needle: str
    place: str
    how: str  # "plain", or the decodings that exposed it ("fernet", "zlib", "fernet+base64" ...)


class Search:
    """Looks for named needles in bytes, text and the Fernet tokens and zlib streams inside them."""

    def __init__(self, needles: Mapping[str, str], fernet: Fernet) -> None:
        self._forms = {name: encoded_forms(value) for name, value in needles.items()}
        self._fernet = fernet
        self.hits: set[Hit] = set()
        self.counts: Counter[str] = Counter()
        self.decrypted: Counter[str] = Counter()
        # Ciphertexts of the allowed tables: the raw DB file holds them too, which is the same place, not a leak.
        self.allowed_ciphertexts: set[bytes] = set()

    def scan(self, place: str, data: bytes | str, how: str = "") -> None:
        raw = data.encode(errors="surrogateescape") if isinstance(data, str) else data
        self.counts["bytes searched"] += len(raw)
        for name, forms in self._forms.items():
            for form, needle in forms:
                if needle in raw:
                    layers = [layer for layer in (how, "" if form == "plain" else form) if layer]
                    self.hits.add(Hit(name, place, "+".join(layers) or "plain"))
        for token in set(_FERNET_TOKEN.findall(raw)):
            if token in self.allowed_ciphertexts and not in_allowed_table(place):
                self.counts["connection-table ciphertexts seen in the raw DB file"] += 1
                continue
            try:
                plain = self._fernet.decrypt(token)
            except InvalidToken:
                continue
            self.counts["Fernet values decrypted"] += 1
            self.decrypted[place] += 1
            self.scan(place, plain, "+".join(filter(None, (how, "fernet"))))
        if raw[:1] == b"\x78":  # a zlib stream's first byte
            try:
                inflated = zlib.decompress(raw)
            except zlib.error:
                return
            self.counts["zlib blobs inflated"] += 1
            self.scan(place, inflated, "+".join(filter(None, (how, "zlib"))))

    def places(self, needle: str, prefix: str = "") -> set[str]:
        return {h.place for h in self.hits if h.needle == needle and h.place.startswith(prefix)}


def in_allowed_table(place: str) -> bool:
    return any(place.startswith(f"db:{table}.") for table in ALLOWED_TABLES)


def search_files(search: Search, stack: AirflowStack) -> None:
    artifacts = stack.settings.artifacts
    groups = {
        "task log files": [artifacts / "task-logs"],
        "dag-processor log files": [artifacts / "dag-processor-logs"],
        # The emulator stands in for Edge Impulse itself, which knows the key: not a place Airflow keeps things.
        "component log files": [c.log for c in stack.components if c.name != "emulator"]
        + [artifacts / "db-migrate.log"],
        "AIRFLOW_HOME and working-folder files": [stack.home, stack.workdir],
        # A distributed stack's PostgreSQL files (free pages and the WAL keep deleted rows) and Redis folder.
        "service files": [s.root for s in (stack.postgres, stack.redis) if s],
    }
    for group, roots in groups.items():
        for root in roots:
            files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
            for path in files:
                search.counts[group] += 1
                search.scan(f"file:{_short(path, stack)}", path.read_bytes())


def _short(path: Path, stack: AirflowStack) -> str:
    for base, label in ((stack.settings.artifacts, ""), (stack.home, "AIRFLOW_HOME/"), (stack.workdir, "workdir/")):
        if path.is_relative_to(base):
            return label + str(path.relative_to(base))
    return str(path)


def search_database(search: Search, stack: AirflowStack) -> dict[str, int]:
    """Every text/blob cell of every table of the stack's metadata DB, SQLite or PostgreSQL; the rows per table."""
    if stack.postgres is not None:
        rows_per_table = _search_postgres(search, stack.postgres.dsn)
    else:
        rows_per_table = _search_sqlite(search, stack.home / "airflow.db")
    search.counts["DB tables"] = len(rows_per_table)
    search.counts["DB rows"] = sum(rows_per_table.values())
    search.counts["DB tables with rows"] = sum(1 for rows in rows_per_table.values() if rows)
    return rows_per_table


def _search_rows(search: Search, table: str, columns: list[str], rows: Iterable[Sequence[object]]) -> int:
    rows = list(rows)
    for row in rows:
        for column, value in zip(columns, row, strict=True):
            _search_cell(search, table, column, value)
    return len(rows)


def _search_cell(search: Search, table: str, column: str, value: object) -> None:
    if isinstance(value, memoryview):
        value = value.tobytes()
    elif isinstance(value, dict | list):  # PostgreSQL's json/jsonb, decoded by the driver
        value = json.dumps(value)
    if not isinstance(value, str | bytes):
        return
    search.counts["DB cells searched"] += 1
    place = f"db:{table}.{column}"
    if in_allowed_table(place):
        raw = value.encode() if isinstance(value, str) else value
        search.allowed_ciphertexts.update(_FERNET_TOKEN.findall(raw))
    search.scan(place, value)


def _search_postgres(search: Search, dsn: str) -> dict[str, int]:
    """Every table of every schema but the catalogs (Airflow's and the Celery result backend's)."""
    import psycopg2

    rows_per_table: dict[str, int] = {}
    con = psycopg2.connect(dsn, connect_timeout=30)
    try:
        con.set_session(readonly=True, autocommit=True)
        with con.cursor() as cur:
            cur.execute(
                "SELECT table_schema, table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE'"
                " AND table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2"
            )
            tables = cur.fetchall()
            for schema, table in tables:
                cur.execute(f'SELECT * FROM "{schema}"."{table}"')
                columns = [c.name for c in cur.description or ()]
                name = table if schema == "public" else f"{schema}.{table}"
                rows_per_table[name] = _search_rows(search, name, columns, cur.fetchall())
    finally:
        con.close()
    return rows_per_table


def _search_sqlite(search: Search, db: Path) -> dict[str, int]:
    rows_per_table: dict[str, int] = {}
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=60)
    try:
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        for table in tables:
            columns = [r[1] for r in con.execute(f'PRAGMA table_info("{table}")')]
            rows_per_table[table] = _search_rows(search, table, columns, con.execute(f'SELECT * FROM "{table}"'))
    finally:
        con.close()
    return rows_per_table


def search_redis(search: Search, stack: AirflowStack) -> dict[str, str]:
    """
    Every key of every database of the stack's Redis (the Celery broker): its name, its value read by type (a
    string, each field and value of a hash, each member of a list, set or sorted set, each field of a stream) and
    its ``DUMP`` (the serialized form, which may compress long strings: both are searched). The type of each key
    (``<db>:<key>``).
    """
    if stack.redis is None:
        raise StackError("this stack has no Redis")
    import redis

    types: dict[str, str] = {}
    with redis.Redis(host="127.0.0.1", port=stack.redis.port, socket_timeout=30) as admin:
        databases = int(admin.config_get("databases")["databases"])
    for db in range(databases):
        with redis.Redis(host="127.0.0.1", port=stack.redis.port, db=db, socket_timeout=30) as client:
            for key in client.scan_iter(count=1000):
                kind = client.type(key).decode()
                name = f"{db}:{key.decode(errors='replace')}"
                place = f"redis:{name}"
                types[name] = kind
                search.scan(f"{place} (key)", key)
                for part in _redis_values(client, key, kind):
                    search.scan(place, part)
                dumped = client.dump(key)
                if dumped is not None:  # None: the key went away in between
                    search.scan(f"{place} (DUMP)", dumped)
    search.counts["Redis keys"] += len(types)
    return types


def _redis_values(client: Any, key: bytes, kind: str) -> list[bytes]:
    if kind == "string":
        return [client.get(key) or b""]
    if kind == "hash":
        return [part for pair in client.hgetall(key).items() for part in pair]
    if kind == "list":
        return list(client.lrange(key, 0, -1))
    if kind == "set":
        return list(client.smembers(key))
    if kind == "zset":
        return list(client.zrange(key, 0, -1))
    if kind == "stream":
        return [part for _id, fields in client.xrange(key) for pair in fields.items() for part in pair]
    return []


def search_triggers_through_airflow(search: Search, stack: AirflowStack) -> list[dict[str, Any]]:
    """The trigger kwargs as the triggerer gets them: decrypted and deserialized by Airflow's Trigger model."""
    result = stack.run_python(TRIGGER_DUMP)
    lines = [line for line in result.stdout.splitlines() if line.startswith("TRIGGERS ")]
    if result.returncode != 0 or not lines:
        raise StackError(f"reading triggers failed ({result.returncode}):\n{result.stderr[-3000:]}")
    triggers: list[dict[str, Any]] = json.loads(lines[-1].removeprefix("TRIGGERS "))
    for trigger in triggers:
        search.counts["triggers decrypted by Airflow"] += 1
        search.scan(f"trigger-model:{trigger['id']}.kwargs", trigger["kwargs"])
    return triggers


def fernet_of(stack: AirflowStack) -> Fernet:
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read(stack.home / "airflow.cfg")
    return Fernet(cfg["core"]["fernet_key"].encode())
