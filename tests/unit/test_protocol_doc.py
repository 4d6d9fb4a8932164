"""docs/protocol.md shows the rpyc-rs hello twice (as a tuple and as the bytes of its frame);
both must be what the code sends, so that the doc cannot drift from the features."""

import re
import struct
from pathlib import Path

from rpyc.core import brine, consts, extensions

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"


def _section(text, heading):
    start = text.index(heading)
    end = text.find("\n## ", start + len(heading))
    return text[start:] if end < 0 else text[start:end]


def test_the_hello_tuple_in_the_doc_is_what_we_send():
    negotiation = _section(DOC.read_text("utf-8"), "### Negotiation")
    shown = re.search(r'^\("rpyc-rs/hello", .*\)$', negotiation, re.M).group(0)
    assert shown == repr(extensions.hello_payload()).replace("'", '"')


def test_the_hello_frame_in_the_doc_is_what_we_send():
    section = _section(DOC.read_text("utf-8"), "### The rpyc-rs hello")
    dump = section[section.index("```") + 3:]
    dump = dump[:dump.index("```")]
    # each line: hex bytes, then two or more spaces and a comment
    shown = bytes.fromhex(" ".join(re.split(r"\s{2,}", line.strip())[0] for line in dump.splitlines() if line.strip()))
    payload = bytes([consts.MSG_REQUEST]) + brine.dump((0, (consts.HANDLE_PING, (1, (extensions.hello_payload(),)))))
    assert shown == struct.pack(">IB", len(payload), 0) + payload
