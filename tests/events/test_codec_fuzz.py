"""Property: no input bytes make the decoder fail with anything but EventDecodeError."""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modyn_stream.events import EventCodec, EventDecodeError
from modyn_stream.events.codec import SINGLE_OBJECT_MAGIC
from tests.events.test_codec import SAMPLES

CODEC = EventCodec()
FINGERPRINTS = [CODEC.schemas.get(name).fingerprint for name in CODEC.schemas.names()]
VALID = [CODEC.encode(name, record) for name, record in SAMPLES.items()]


def _decode_or_clean_error(data: bytes) -> None:
    try:
        event = CODEC.decode(data)
    except EventDecodeError:
        return
    # Whatever decodes is a valid record of its schema (Avro allows non-canonical varints and
    # booleans, so the bytes need not re-encode identically), and it used every byte.
    reencoded = CODEC.encode(event.name, event.record)
    assert CODEC.decode(reencoded) == event


@settings(max_examples=2000, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_random_bytes(data):
    _decode_or_clean_error(data)


@settings(max_examples=2000)
@given(st.sampled_from(FINGERPRINTS), st.binary(max_size=300))
def test_random_bodies_behind_a_valid_header(fingerprint, body):
    _decode_or_clean_error(SINGLE_OBJECT_MAGIC + fingerprint + body)


@settings(max_examples=2000)
@given(st.sampled_from(VALID), st.data())
def test_truncated_and_corrupted_valid_events(valid, data):
    cut = data.draw(st.integers(0, len(valid)))
    position = data.draw(st.integers(0, len(valid) - 1))
    flip = data.draw(st.integers(1, 255))
    corrupted = bytearray(valid)
    corrupted[position] ^= flip
    _decode_or_clean_error(valid[:cut])
    _decode_or_clean_error(bytes(corrupted))
