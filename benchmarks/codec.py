"""EventCodec against bare fastavro on the same SampleEvents, in one process.

The codec adds framing (header + fingerprint lookup), schema resolution and error checks; the
ratio shows what that costs per record.
"""

from __future__ import annotations

import io
import sys
import time
from pathlib import Path

import fastavro

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._report import report
from modyn_stream.events import EventCodec

N = 100_000


def rate(fn, items) -> float:
    start = time.perf_counter()
    for item in items:
        fn(item)
    return len(items) / (time.perf_counter() - start)


def main() -> None:
    codec = EventCodec()
    schema = codec.schemas.get("SampleEvent").parsed
    records = [
        {"dataset": "digits", "key": f"k{i:09d}", "event_time": 1_700_000_000_000 + i, "label": i % 10,
         "payload": bytes(64), "payload_uri": None, "content_type": None, "attributes": {}}
        for i in range(N)
    ]  # fmt: skip

    def bare_write(record):
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, schema, record)
        return buf.getvalue()

    framed = [codec.encode("SampleEvent", r) for r in records]
    bodies = [bare_write(r) for r in records]

    encode_codec = rate(lambda r: codec.encode("SampleEvent", r), records)
    encode_bare = rate(bare_write, records)
    decode_codec = rate(codec.decode, framed)
    decode_bare = rate(lambda b: fastavro.schemaless_reader(io.BytesIO(b), schema, None), bodies)
    report(
        "codec",
        [
            {
                "path": "encode",
                "codec records/s": encode_codec,
                "bare fastavro records/s": encode_bare,
                "ratio": encode_codec / encode_bare,
            },
            {
                "path": "decode",
                "codec records/s": decode_codec,
                "bare fastavro records/s": decode_bare,
                "ratio": decode_codec / decode_bare,
            },
        ],
        [
            {
                "measure": f"codec {what}, SampleEvent",
                "value": ours,
                "unit": "records/s",
                "baseline": bare,
                "ratio": ours / bare,
                "target": None,
                "met": None,
            }
            for what, ours, bare in (("encode", encode_codec, encode_bare), ("decode", decode_codec, decode_bare))
        ],
    )


if __name__ == "__main__":
    main()
