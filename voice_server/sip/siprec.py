"""SIPREC (RFC 7866, metadata RFC 7865): an INVITE that forks a call to a recording server.

The body is ``multipart/mixed`` (RFC 2046) with an SDP part — one audio
stream per participant, each tagged ``a=label:`` — and an
``application/rs-metadata+xml`` part that says which participant sends on
which stream: ``participant`` (with its ``nameID aor``) →
``participantstreamassoc``/``send`` → ``stream``/``label``.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from xml.parsers import expat

MAX_METADATA_BYTES = 32_768
SDP_TYPE = "application/sdp"
METADATA_TYPE = "application/rs-metadata+xml"
_BOUNDARY_RE = re.compile(r'boundary\s*=\s*(?:"([^"]+)"|([^;\s]+))', re.IGNORECASE)


class SiprecError(ValueError):
    """The multipart body or the recording metadata cannot be read (→ 400)."""


@dataclass(frozen=True, slots=True)
class Participant:
    participant_id: str
    aor: str | None
    name: str | None


@dataclass(slots=True)
class RecordingMetadata:
    participants: dict[str, Participant] = field(default_factory=dict)
    # stream label (as in the SDP a=label) → id of the participant who sends on it
    sender_by_label: dict[str, str] = field(default_factory=dict)

    def sender_of(self, label: str | None) -> Participant | None:
        if label is None or label not in self.sender_by_label:
            return None
        return self.participants.get(self.sender_by_label[label])


def split_multipart(content_type_header: str, body: bytes) -> dict[str, bytes]:
    """The parts of a multipart/mixed body by their (lower-cased) Content-Type."""
    match = _BOUNDARY_RE.search(content_type_header)
    if not match:
        raise SiprecError("multipart body without a boundary")
    boundary = (match.group(1) or match.group(2)).encode()
    delimiter = b"--" + boundary
    chunks = body.split(delimiter)
    if len(chunks) < 3:
        raise SiprecError("multipart body has no parts")
    parts: dict[str, bytes] = {}
    for chunk in chunks[1:]:
        if chunk.startswith(b"--"):
            break  # the close delimiter
        chunk = chunk[2:] if chunk.startswith(b"\r\n") else chunk.removeprefix(b"\n")
        head, sep, content = chunk.partition(b"\r\n\r\n")
        if not sep:
            head, sep, content = chunk.partition(b"\n\n")
        if not sep:
            raise SiprecError("multipart part without headers")
        part_type = ""
        for line in head.decode("utf-8", "replace").splitlines():
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-type":
                part_type = value.split(";")[0].strip().lower()
        # The CRLF before the next delimiter belongs to the delimiter (RFC 2046 §5.1.1).
        content = content[:-2] if content.endswith(b"\r\n") else content.removesuffix(b"\n")
        parts.setdefault(part_type, content)
    return parts


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _children(element: ET.Element, name: str) -> list[ET.Element]:
    return [child for child in element if _local(child.tag) == name]


def _refuse_dtd(*_args: object) -> None:
    raise SiprecError("recording metadata must not declare a DTD or entities")


def _parse_xml(xml: bytes) -> ET.Element:
    """Parse UTF-8 XML with no DTD: a DOCTYPE, an entity declaration or an external
    reference is refused however the document spells or encodes it (no entity expansion,
    no XXE), and the declared encoding cannot pick a codec (the document is read as UTF-8)."""
    builder = ET.TreeBuilder()
    parser = expat.ParserCreate(encoding="UTF-8", namespace_separator="}")
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartDoctypeDeclHandler = _refuse_dtd
    parser.EntityDeclHandler = _refuse_dtd
    parser.UnparsedEntityDeclHandler = _refuse_dtd
    parser.ExternalEntityRefHandler = _refuse_dtd
    parser.StartElementHandler = builder.start
    parser.EndElementHandler = builder.end
    parser.CharacterDataHandler = builder.data
    parser.buffer_text = True
    try:
        parser.Parse(xml, True)
        return builder.close()
    except (expat.ExpatError, ValueError) as exc:
        if isinstance(exc, SiprecError):
            raise
        raise SiprecError(f"recording metadata is not XML: {exc}") from None


def parse_metadata(xml: bytes) -> RecordingMetadata:
    if len(xml) > MAX_METADATA_BYTES:
        raise SiprecError("recording metadata too large")
    root = _parse_xml(xml)
    if _local(root.tag) != "recording":
        raise SiprecError("recording metadata root is not <recording>")
    metadata = RecordingMetadata()
    for p in _children(root, "participant"):
        pid = p.get("participant_id") or p.get("id")
        if not pid:
            continue
        aor = name = None
        for name_id in _children(p, "nameID"):
            aor = name_id.get("aor") or aor
            names = _children(name_id, "name")
            name = (names[0].text or "").strip() if names else name
        metadata.participants[pid] = Participant(pid, aor, name)
    label_by_stream = {}
    for s in _children(root, "stream"):
        labels = _children(s, "label")
        sid = s.get("stream_id") or s.get("id")
        if sid and labels and labels[0].text:
            label_by_stream[sid] = labels[0].text.strip()
    for assoc in _children(root, "participantstreamassoc"):
        pid = assoc.get("participant_id")
        for send in _children(assoc, "send"):
            sid = (send.text or "").strip()
            if pid and sid in label_by_stream:
                metadata.sender_by_label[label_by_stream[sid]] = pid
    if not metadata.sender_by_label:
        raise SiprecError("recording metadata links no participant to a stream")
    return metadata


def read_siprec_body(content_type_header: str, body: bytes) -> tuple[bytes, RecordingMetadata]:
    parts = split_multipart(content_type_header, body)
    if SDP_TYPE not in parts:
        raise SiprecError("multipart body has no application/sdp part")
    if METADATA_TYPE not in parts:
        raise SiprecError("multipart body has no application/rs-metadata+xml part")
    return parts[SDP_TYPE], parse_metadata(parts[METADATA_TYPE])
