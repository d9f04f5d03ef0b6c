"""A call from baresip (Debian baresip-core), a real softphone, into a Coachline node."""

from __future__ import annotations

import asyncio
import shutil
import wave

import numpy as np
import pytest

from media.frames import Party
from media.g711 import ulaw_decode, ulaw_encode
from tests.voice_server.sip_node import REP_DIALLED, sip_node

BARESIP = shutil.which("baresip")
pytestmark = pytest.mark.skipif(BARESIP is None, reason="baresip (baresip-core) not installed")


def _config(tmp_path, wav):
    conf = tmp_path / "baresip"
    conf.mkdir()
    (conf / "config").write_text(
        "sip_listen\t127.0.0.1:0\n"
        f"audio_source\taufile,{wav}\n"
        "audio_player\taufile,/dev/null\n"
        "audio_alert\taufile,/dev/null\n"
        "module_path\t/usr/lib/baresip/modules\n"
        "module\tg711.so\nmodule\taufile.so\n"
        "module_app\taccount.so\nmodule_app\tmenu.so\n"
        "rtp_timeout\t0\n"
    )
    (conf / "accounts").write_text("<sip:caller@127.0.0.1>;regint=0;audio_codecs=PCMU\n")
    (conf / "contacts").write_text("")
    return conf


async def test_baresip_call_delivers_its_audio_as_the_customer(
        migrated_database, redis_url, tmp_path):
    t = np.arange(8000 * 3)
    tone = (7000 * np.cos(2 * np.pi * 440 * t / 8000)).astype(np.int16)  # starts non-zero
    wav = tmp_path / "tone.wav"
    with wave.open(str(wav), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(tone.tobytes())
    conf = _config(tmp_path, wav)
    async with sip_node(migrated_database, redis_url) as node:
        proc = await asyncio.create_subprocess_exec(
            BARESIP, "-f", str(conf), "-t", "5",
            "-e", f"/dial sip:{REP_DIALLED}@127.0.0.1:{node.port}",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        out, _ = await asyncio.wait_for(proc.communicate(), 30)
        assert node.logs, out.decode(errors="replace")[-3000:]
        [log] = node.logs
        await asyncio.wait_for(log.closed.wait(), 40)
        frames = sorted((f for f in log.frames), key=lambda f: f.timestamp_ms)
        assert frames and {f.party for f in frames} == {Party.CUSTOMER}
        audio = np.concatenate([f.pcm for f in frames])
        expected = ulaw_decode(ulaw_encode(tone))
        # baresip starts reading the file when the call is answered: its first
        # frame is the file's first, and every sample of the file arrives, in place.
        start = int(np.argmax(np.abs(audio) > 0))
        sent = audio[start:start + len(expected)]
        assert len(sent) == len(expected), out.decode(errors="replace")[-2000:]
        # baresip's own µ-law encoder rounds a few inputs (1 %, at segment edges) one
        # level off the reference coder; the rest is exact and nothing is lost or shifted.
        diff = np.abs(sent.astype(np.int32) - expected)
        assert np.count_nonzero(diff) <= len(expected) // 50
        assert diff.max() <= 16
        assert log.abnormal is False  # baresip hung up with BYE when it quit
