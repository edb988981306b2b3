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


def read_wandb_history(path: Path) -> tuple[str | None, list[dict[str, str]]]:
    """(run name, history rows {key: JSON value}) of a W&B offline run file (run-*.wandb): a LevelDB-style log
    (a 7-byte header, 32 KiB blocks of chunks with a 7-byte header: crc, length, type) of Record protos. The name
    is None while the run record is not written yet; a chunk cut off at the end of the file is left out."""
    from wandb.proto import wandb_internal_pb2

    data, position, block, pending, records = Path(path).read_bytes(), 7, 32768, b"", []
    while position + 7 <= len(data):
        room = block - position % block
        if room < 7:  # a block's tail too short for a chunk header is padding
            position += room
            continue
        _, length, kind = struct.unpack_from("<IHB", data, position)
        if position + 7 + length > len(data):
            break
        pending += data[position + 7 : position + 7 + length]
        position += 7 + length
        if kind in (1, 4):  # a full record, or the last chunk of one
            records.append(wandb_internal_pb2.Record.FromString(pending))
            pending = b""
    name = next((r.run.display_name for r in records if r.WhichOneof("record_type") == "run"), None)
    rows = [
        {item.key or "/".join(item.nested_key): item.value_json for item in r.history.item}
        for r in records
        if r.WhichOneof("record_type") == "history"
    ]
    return name, rows
