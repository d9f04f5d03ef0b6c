"""Property-based fuzzing of the two file formats that come from outside or from disk.

- CSV lead import: arbitrary bytes, encodings, BOMs, huge fields, odd quoting. Property: the
  parser answers rows and row errors or refuses with an ``ApiError`` (a 4xx); over HTTP, never
  a 5xx, and an accepted job never stops on a database error.
- The recording file format: a valid recording truncated, bit-flipped, overwritten or spliced.
  Property: the reader, ``seal`` and ``silence`` refuse with a recording/key error and never
  crash; whatever the reader does return is exactly the audio that was written (it never
  decrypts garbage); ``seal`` keeps only an authentic prefix.

Budgets: a few seconds by default (derandomized, fixed examples); ``--slow`` runs thousands.
"""

from __future__ import annotations

import asyncio
import json
import random
import tempfile
import uuid
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from crm_core.api.imports import _COLUMNS, parse_csv
from crm_core.api_errors import ApiError
from storage.keys import KeyUnwrapError, UnknownKeyError, new_master_key, parse_key_spec
from storage.recording_format import HEADER_LEN, AudioFormat, RecordingError
from storage.recording_store import LocalRecordingStore
from tests.security.unlimited_world import world  # noqa: F401  (the running API, as a fixture here)

CLEAN_REFUSALS = (RecordingError, UnknownKeyError, KeyUnwrapError)


def _budget(slow_mode: bool, default: int, slow: int):
    return settings(
        max_examples=slow if slow_mode else default,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )


# --- CSV import -------------------------------------------------------------------------------

_CELLS = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        [
            "=1+1",
            "+cmd|' /C calc'!A0",
            "-2+3",
            "@SUM(A1)",
            "\t=x",
            "\x00",
            "\ufeff",
            "\ud7ff",
            "1e400",
            "NaN",
            "-0",
            "99999999999999999999999",
            "10000001",
            "ada@example.test",
            "+15005550006",
            '"',
            '""',
            "a\r\nb",
            "\r",
            "x" * 200_000,
        ]
    ),
)
_HEADERS = st.lists(
    st.one_of(st.sampled_from(_COLUMNS), st.text(max_size=12)), min_size=0, max_size=6
)


@st.composite
def csv_bodies(draw) -> bytes:
    header = draw(_HEADERS)
    rows = draw(st.lists(st.lists(_CELLS, max_size=len(header) + 2), max_size=6))
    quote = draw(st.booleans())

    def line(cells):
        if quote:
            return ",".join('"' + c.replace('"', '""') + '"' for c in cells)
        return ",".join(cells)

    text = "\r\n".join(line(r) for r in [header, *rows])
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "latin-1", "cp1252"]))
    raw = text.encode(encoding, "surrogatepass" if encoding.startswith("utf") else "replace")
    cut = draw(st.one_of(st.none(), st.integers(0, max(0, len(raw)))))
    return raw if cut is None else raw[:cut]


def test_csv_parser_answers_rows_or_a_4xx_for_any_input(slow_mode):
    @_budget(slow_mode, 150, 5000)
    @given(st.one_of(csv_bodies(), st.binary(max_size=2000)))
    @example(b'owner_id,first_name\n"\x00",A\n')  # a UUID error message quotes the NUL
    def run(raw: bytes) -> None:
        try:
            good, errors = parse_csv(raw, max_rows=50)
        except ApiError as exc:
            assert 400 <= exc.status < 500
            return
        for row in good:
            assert set(row) - {"row"} <= set(_COLUMNS) | {"enrichment"}
            for value in row.values():
                if isinstance(value, str):  # storable in PostgreSQL text
                    assert "\x00" not in value
                    value.encode("utf-8")
        for error in errors:  # the job stores them in jsonb, which holds no NUL
            assert isinstance(error["row"], int)
            assert "\x00" not in json.dumps(error, ensure_ascii=False), error

    run()


on_session_loop = pytest.mark.asyncio(loop_scope="session")


async def _finished(api, org, job_id: str) -> dict:
    deadline = asyncio.get_running_loop().time() + 30
    while True:
        _, job = await api.request("GET", f"/api/v1/imports/{job_id}", as_=org.admin)
        if job["status"] != "running" or asyncio.get_running_loop().time() > deadline:
            return job
        await asyncio.sleep(0.02)


@on_session_loop
async def test_csv_imports_over_http_never_answer_5xx_nor_stop_on_the_database(world, slow_mode):  # noqa: F811
    """Seeded hostile files, end to end: a 4xx or a job that completes or fails on validation."""
    rng = random.Random(1411)
    org = await world.make_org()
    nasty = [
        '=HYPERLINK("http://x")',
        "\x00",
        "x" * 300,
        "é" * 70,
        "1e400",
        "-1",
        "2147483648",
        "+1 (555) 0100",
        "ada@",
        "\u202e",
        "🙂" * 100,
        '"',
        "a\nb",
        "\ufeff",
    ]
    bodies: list[bytes] = [
        b"",
        b"\xef\xbb\xbf",
        b"\xff\xfe\x00\x00",
        b"first_name\n" + b"x" * 200_000 + b"\n",
        b"first_name,first_name\nA,B\n",
        b"\x00\x00\x00",
        b'first_name\n"unterminated\n',
        "first_name,company\nÅsa,Ö\n".encode("latin-1"),
        "first_name\n\ud800\n".encode("utf-8", "surrogatepass"),
    ]
    for _ in range(60 if slow_mode else 12):
        columns = rng.sample(_COLUMNS, rng.randint(1, min(5, len(_COLUMNS))))
        if "first_name" not in columns:
            columns.append("first_name")
        lines = [",".join(columns)]
        for _ in range(rng.randint(1, 4)):
            lines.append(
                ",".join('"' + rng.choice(nasty).replace('"', '""') + '"' for _ in columns)
            )
        bodies.append("\n".join(lines).encode("utf-8"))
    for raw in bodies:
        for mode in ("partial", "all_or_nothing"):
            resp, job = await world.request(
                "POST",
                "/api/v1/leads/import",
                as_=org.admin,
                data=raw,
                headers={"Content-Type": "text/csv"},
                params={"mode": mode},
            )
            assert resp.status < 500, (raw[:200], job)
            if resp.status == 202:
                job = await _finished(world, org, job["id"])
                assert job["status"] in ("completed", "failed"), job
                stops = [
                    e
                    for e in job["errors"]
                    if str(e.get("message", "")).startswith("import stopped")
                ]
                assert not stops, (raw[:120], stops)


# --- the recording file format ---------------------------------------------------------------

AUDIO = AudioFormat(8000, 2)
CHUNK = 256


@pytest.fixture(scope="module")
def recorded():
    """One small recording (5 chunks), its plaintext, and the keyring that opens it."""
    keyring = parse_key_spec(f"k1:{new_master_key()}")
    root = Path(tempfile.mkdtemp(prefix="fuzz-rec-"))
    store = LocalRecordingStore(root, keyring)
    rid = uuid.uuid4()
    plain = bytes(random.Random(7).randrange(256) for _ in range(CHUNK * 4 + 100))
    writer = store.create(rid, AUDIO, chunk_size=CHUNK)
    writer.append(plain)
    writer.close()
    return keyring, rid, store.path_of(rid).read_bytes(), plain


@st.composite
def damaged(draw, original: bytes) -> bytes:
    data = bytearray(original)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(
            st.sampled_from(["flip", "overwrite", "truncate", "extend", "splice", "header"])
        )
        if kind == "flip" and data:
            i = draw(st.integers(0, len(data) - 1))
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif kind == "overwrite" and data:
            i = draw(st.integers(0, len(data) - 1))
            data[i : i + 4] = draw(st.binary(min_size=1, max_size=4))
        elif kind == "truncate":
            del data[draw(st.integers(0, len(data))) :]
        elif kind == "extend":
            data += draw(st.binary(max_size=600))
        elif kind == "splice" and len(data) > HEADER_LEN + 2 * CHUNK:
            a, b = sorted(
                draw(st.lists(st.integers(HEADER_LEN, len(data) - 1), min_size=2, max_size=2))
            )
            data[a:b] = bytes(data[a:b])[::-1]
        elif kind == "header" and len(data) >= HEADER_LEN:
            i = draw(st.integers(0, 120))  # the fields and the key slot
            data[i] = draw(st.integers(0, 255))
    return bytes(data)


def test_damaged_recordings_are_refused_and_never_decrypt_garbage(recorded, slow_mode):
    keyring, rid, original, plain = recorded

    @_budget(slow_mode, 200, 10_000)
    @given(st.data())
    def run(data) -> None:
        raw = data.draw(damaged(original))
        with tempfile.TemporaryDirectory(prefix="fuzz-rec-") as tmp:
            store = LocalRecordingStore(Path(tmp), keyring)
            path = store.path_of(rid)
            path.parent.mkdir(parents=True)
            path.write_bytes(raw)
            try:
                with store.open(rid) as reader:
                    got = reader.read_all()
                    tail = b"".join(reader.read_range(max(0, reader.length - 10), reader.length))
            except CLEAN_REFUSALS:
                pass
            else:
                assert got == plain, "a damaged file decrypted to audio that was never written"
                assert tail == plain[-10:]
            try:
                store.silence(rid, 0, 64)
            except CLEAN_REFUSALS:
                pass
            try:
                store.seal(rid)
            except CLEAN_REFUSALS:
                return
            try:
                with store.open(rid) as reader:
                    sealed = reader.read_all()
            except CLEAN_REFUSALS:
                return
            # what survives sealing is authentic audio: the written plaintext, silenced at most
            assert len(sealed) <= len(plain)
            assert sealed[64:] == plain[64 : len(sealed)]

    run()
