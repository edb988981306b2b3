"""Reading TensorBoard event files back in tests: TFRecord frames of tensorboardX's Event protos."""

from __future__ import annotations

import struct
from collections import defaultdict
from pathlib import Path

from tensorboardX.proto.event_pb2 import Event


def read_scalars(path: Path) -> dict[str, list[tuple[int, float]]]:
    """{tag: [(step, value), ...]} of every scalar in one event file, in file order."""
    data, offset = Path(path).read_bytes(), 0
    scalars: dict[str, list[tuple[int, float]]] = defaultdict(list)
    while offset < len(data):
        (length,) = struct.unpack_from("<Q", data, offset)
        record = data[offset + 12 : offset + 12 + length]  # after the length and its crc; a crc follows
        offset += 12 + length + 4
        event = Event.FromString(record)
        for value in event.summary.value:
            scalars[value.tag].append((event.step, value.simple_value))
    return dict(scalars)
