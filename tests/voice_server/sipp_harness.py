"""Running the real ``sipp`` (Debian sip-tester) against a Coachline node on loopback.

Used by the SIP tests and ``scripts/bench/sip_calls.py``: scenario templates
live in ``tests/voice_server/sipp/``; ``{NAME}`` placeholders are filled in
before sipp reads them. ``write_rtp_pcap`` writes a capture of our own RTP
(Ethernet/IPv4/UDP, as sipp's ``play_pcap_audio`` wants) so a test knows
every sample it sent.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path

from media.frames import AudioFrame

SCENARIOS = Path(__file__).parent / "sipp"
PCAPS = Path("/usr/share/sip-tester")
SIPP = shutil.which("sipp")


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_even_udp_port() -> int:
    # sipp's media port must be even and port+2 free for its own use.
    for _ in range(50):
        port = free_udp_port()
        if port % 2 == 0:
            return port
    raise RuntimeError("no even UDP port")


def scenario(tmp_dir: Path, name: str, **values: object) -> Path:
    text = (SCENARIOS / name).read_text()
    for key, value in values.items():
        text = text.replace("{" + key + "}", str(value))
    out = tmp_dir / f"{name.removesuffix('.xml')}-{time.monotonic_ns()}.xml"
    out.write_text(text)
    return out


@dataclass
class SippResult:
    returncode: int
    stdout: str
    stderr: str
    errors: str


async def run_sipp(server_port: int, scenario_file: Path, *, service: str = "15551230001",
                   calls: int = 1, rate: int | None = None, limit: int | None = None,
                   extra: list[str] | None = None, timeout_s: float = 60) -> SippResult:
    """Run sipp as a UAC until its calls are done; returns its exit code and logs."""
    assert SIPP is not None, "sipp (Debian package sip-tester) is not installed"
    workdir = scenario_file.parent
    error_file = workdir / f"{scenario_file.stem}.errors.log"
    args = [
        SIPP, f"127.0.0.1:{server_port}", "-sf", str(scenario_file), "-m", str(calls),
        "-i", "127.0.0.1", "-p", str(free_udp_port()), "-mp", str(free_even_udp_port()),
        "-s", service, "-nostdin", "-trace_err", "-error_file", str(error_file),
        "-timeout", f"{int(timeout_s)}s", "-timeout_error", "-max_retrans", "5",
        "-r", str(rate or calls), "-l", str(limit or calls),
        *(extra or []),
    ]
    proc = await asyncio.create_subprocess_exec(
        *args, cwd=workdir, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout_s + 15)
    except TimeoutError:
        proc.kill()
        out, err = await proc.communicate()
    errors = error_file.read_text(errors="replace") if error_file.exists() else ""
    return SippResult(proc.returncode or 0, out.decode(errors="replace")[-4000:],
                      err.decode(errors="replace")[-4000:], errors[-4000:])


@dataclass
class FrameLog:
    """An audio consumer that keeps everything a call's session hands it."""

    frames: list[AudioFrame] = field(default_factory=list)
    digits: list[tuple[str, int, int]] = field(default_factory=list)
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    abnormal: bool | None = None

    def on_audio(self, frame: AudioFrame) -> None:
        self.frames.append(frame)

    def on_dtmf(self, digit: str, at_ms: int, duration_ms: int) -> None:
        self.digits.append((digit, at_ms, duration_ms))

    async def close(self, abnormal: bool) -> None:
        self.abnormal = abnormal
        self.closed.set()


def write_rtp_pcap(path: Path, packets: list[bytes], *, interval_s: float = 0.02,
                   src_port: int = 40000, dst_port: int = 50000) -> Path:
    """A little-endian microsecond libpcap file of RTP datagrams over Ethernet/IPv4/UDP."""
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    for i, payload in enumerate(packets):
        udp = struct.pack("!HHHH", src_port, dst_port, 8 + len(payload), 0) + payload
        ip_header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), i & 0xFFFF, 0, 64, 17,
                                0, bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]))
        checksum = _ip_checksum(ip_header)
        ip_header = ip_header[:10] + struct.pack("!H", checksum) + ip_header[12:]
        frame = b"\x00\x11\x22\x33\x44\x55" + b"\x66\x77\x88\x99\xaa\xbb" + b"\x08\x00"
        frame += ip_header + udp
        t = 1_700_000_000 + i * interval_s
        out.append(struct.pack("<IIII", int(t), round((t % 1) * 1e6) % 1_000_000,
                               len(frame), len(frame)))
        out.append(frame)
    path.write_bytes(b"".join(out))
    return path


def _ip_checksum(header: bytes) -> int:
    total = sum(struct.unpack(f"!{len(header) // 2}H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def read_rtp_payloads(path: Path) -> list[bytes]:
    """The UDP payloads (RTP packets) of a libpcap file of Ethernet/IPv4/UDP."""
    data = path.read_bytes()
    offset = 24
    payloads = []
    while offset < len(data):
        _s, _us, captured, _orig = struct.unpack_from("<IIII", data, offset)
        offset += 16
        frame = data[offset: offset + captured]
        offset += captured
        if struct.unpack_from("!H", frame, 12)[0] != 0x0800:
            continue
        ip = frame[14:]
        if ip[9] != 17:
            continue
        header_len = (ip[0] & 0x0F) * 4
        total_len = struct.unpack_from("!H", ip, 2)[0]
        udp = ip[header_len:total_len]
        payloads.append(udp[8: struct.unpack_from("!H", udp, 4)[0]])
    return payloads
