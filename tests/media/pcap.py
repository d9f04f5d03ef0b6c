"""A tiny reader for classic libpcap files holding RTP over UDP/IPv4/Ethernet.

Only what the media tests need: the sip-tester captures are little-endian
pcap (magic a1b2c3d4), link type 1 (Ethernet), untagged IPv4, UDP.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

SIP_TESTER_PCAPS = Path("/usr/share/sip-tester")

_GLOBAL_HEADER = struct.Struct("<IHHiIII")
_RECORD_HEADER = struct.Struct("<IIII")
_LINKTYPE_ETHERNET = 1
_ETHERTYPE_IPV4 = 0x0800
_IPPROTO_UDP = 17


@dataclass(frozen=True)
class UdpDatagram:
    time_s: float
    src_port: int
    dst_port: int
    payload: bytes


def read_udp_datagrams(path: Path) -> list[UdpDatagram]:
    data = path.read_bytes()
    magic, _major, _minor, _zone, _sigfigs, _snaplen, linktype = _GLOBAL_HEADER.unpack_from(data)
    assert magic == 0xA1B2C3D4, f"{path}: not a little-endian microsecond pcap"
    assert linktype == _LINKTYPE_ETHERNET, f"{path}: link type {linktype} is not Ethernet"
    datagrams = []
    offset = _GLOBAL_HEADER.size
    while offset < len(data):
        seconds, micros, captured, _original = _RECORD_HEADER.unpack_from(data, offset)
        offset += _RECORD_HEADER.size
        frame = data[offset : offset + captured]
        offset += captured
        (ethertype,) = struct.unpack_from("!H", frame, 12)
        if ethertype != _ETHERTYPE_IPV4:
            continue
        ip = frame[14:]
        header_len = (ip[0] & 0x0F) * 4
        (total_len,) = struct.unpack_from("!H", ip, 2)
        if ip[9] != _IPPROTO_UDP:
            continue
        udp = ip[header_len:total_len]
        src_port, dst_port, udp_len = struct.unpack_from("!HHH", udp)
        datagrams.append(UdpDatagram(seconds + micros / 1e6, src_port, dst_port, udp[8:udp_len]))
    return datagrams
