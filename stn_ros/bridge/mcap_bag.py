"""ROS 2 messages in MCAP files (rosbag2's default storage): topics, reading, writing. No rclpy.

Reading decodes CDR with ``mcap_ros2`` into duck-typed messages: attributes named as the ``.msg`` fields,
``uint8[]`` as ``bytes``, other arrays as lists. The codecs (:mod:`stn_ros.bridge.image_codec`,
:mod:`stn_ros.bridge.pointcloud_codec`) and ``PinholeCamera.from_camera_info`` read them exactly as they
read rclpy's messages.

Writing takes rclpy messages (converted field by field), ``mcap_ros2`` messages or dicts, and needs each
type's message definition as rosbag2 stores it: the type's ``.msg`` text, then each type it uses, each
after a line of 80 ``=`` and ``MSG: pkg/Name``. :func:`message_definition` builds it from the installed
``.msg`` files: a ROS install's ``<prefix>/share/<package>/msg/`` (``AMENT_PREFIX_PATH``) or, in the plain
venv, the PyPI wheels' ``<venv>/share/<package>/msg/``.
"""

from __future__ import annotations

import array
import importlib.util
import os
import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

PRIMITIVE_TYPES = frozenset(
    'bool byte char float32 float64 int8 uint8 int16 uint16 int32 uint32 int64 uint64 string wstring'.split()
)
DELIMITER = '=' * 80


class BagError(ValueError):
    """An MCAP file that cannot be used (missing, not MCAP, no such topic): the message says which and why."""


def full_type_name(type_name: str) -> str:
    """``pkg/msg/Name`` of ``pkg/Name`` or ``pkg/msg/Name`` (how rosbag2 names schemas)."""
    parts = type_name.split('/')
    if len(parts) == 2:
        return f'{parts[0]}/msg/{parts[1]}'
    if len(parts) == 3 and parts[1] == 'msg':
        return type_name
    raise ValueError(f'not a ROS 2 message type name: {type_name!r} (expected pkg/msg/Name)')


def share_prefixes() -> list[Path]:
    """Install prefixes that may hold ``share/<package>/msg``: ``AMENT_PREFIX_PATH``, this interpreter's
    prefix (the venv), and the prefix of the installed ``sensor_msgs`` Python package (found without
    importing it)."""
    prefixes = [Path(p) for p in os.environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep) if p]
    prefixes.append(Path(sys.prefix))
    spec = importlib.util.find_spec('sensor_msgs')
    if spec is not None and spec.origin:
        path = Path(spec.origin).resolve()
        if 'lib' in path.parts:  # <prefix>/lib/pythonX.Y/site-packages/sensor_msgs/__init__.py
            prefixes.append(Path(*path.parts[: len(path.parts) - 1 - path.parts[::-1].index('lib')]))
    unique = []
    for prefix in prefixes:
        if prefix not in unique:
            unique.append(prefix)
    return unique


def msg_file(type_name: str, prefixes: Sequence[Path] | None = None) -> Path:
    """The installed ``.msg`` file of ``type_name`` (``pkg/msg/Name``); FileNotFoundError names where it looked."""
    package, _, name = full_type_name(type_name).split('/')
    prefixes = share_prefixes() if prefixes is None else list(prefixes)
    for prefix in prefixes:
        path = prefix / 'share' / package / 'msg' / f'{name}.msg'
        if path.is_file():
            return path
    raise FileNotFoundError(
        f'no message definition {package}/msg/{name}.msg under share/{package}/msg of '
        f'{", ".join(str(p) for p in prefixes) or "no prefix"}: install the {package} package (a ROS install; '
        'source its setup file, or use the venv with the ROS 2 wheels)'
    )


def field_types(msg_text: str, package: str) -> list[str]:
    """The message types (``pkg/Name``) that the fields of a ``.msg`` text use, in order, without repeats."""
    found: list[str] = []
    for line in msg_text.splitlines():
        tokens = line.split()
        if not tokens or tokens[0].startswith('#'):
            continue
        base = re.sub(r'\[.*$', '', tokens[0])  # arrays: T[], T[N], T[<=N]
        base = re.sub(r'<=\d+$', '', base)  # bounded strings
        if base in PRIMITIVE_TYPES:
            continue
        if base == 'Header':  # the ROS 1 shorthand, still accepted by the parsers
            base = 'std_msgs/Header'
        name = base if '/' in base else f'{package}/{base}'
        parts = name.split('/')
        name = f'{parts[0]}/{parts[-1]}'
        if name not in found:
            found.append(name)
    return found


def message_definition(type_name: str, prefixes: Sequence[Path] | None = None) -> str:
    """The message definition of ``type_name`` as rosbag2 stores it in an MCAP schema: its ``.msg`` text, then
    every type it uses (depth first, each once) after a delimiter line and ``MSG: pkg/Name``."""
    full = full_type_name(type_name)
    package, _, name = full.split('/')
    text = msg_file(full, prefixes).read_text()
    pending = field_types(text, package)
    parts, done = [text.rstrip('\n')], {f'{package}/{name}'}
    while pending:
        dependency = pending.pop(0)
        if dependency in done:
            continue
        done.add(dependency)
        dep_package, dep_name = dependency.split('/')
        dep_text = msg_file(f'{dep_package}/msg/{dep_name}', prefixes).read_text()
        parts.append(f'{DELIMITER}\nMSG: {dependency}\n{dep_text.rstrip(chr(10))}')
        pending = field_types(dep_text, dep_package) + pending
    return '\n'.join(parts) + '\n'


@dataclass(frozen=True)
class TopicInfo:
    """A topic of a bag: its message type (the schema name, ``pkg/msg/Name``) and message count."""

    type_name: str
    count: int | None  # None when the file has no summary with statistics


@dataclass
class BagMessage:
    """One decoded message of a bag with its times (nanoseconds since the epoch)."""

    topic: str
    type_name: str
    log_time: int
    publish_time: int
    sequence: int
    msg: Any  # duck-typed, decoded by mcap_ros2


def _check_file(path: Path) -> None:
    if not path.exists():
        raise BagError(f'{path}: no such file')
    if path.is_dir():
        raise BagError(f'{path} is a directory: give the .mcap file inside it')
    with open(path, 'rb') as stream:
        magic = stream.read(8)
    if magic != b'\x89MCAP0\r\n':
        raise BagError(f'{path} is not an MCAP file (a rosbag2 bag in the mcap storage format)')


def _open(path: Path):
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    stream = open(path, 'rb')
    return stream, make_reader(stream, decoder_factories=[DecoderFactory()])


def bag_topics(path: str | Path) -> dict[str, TopicInfo]:
    """Every topic of the MCAP file ``path`` with its type and message count (BagError for a bad file)."""
    from mcap.exceptions import McapError

    path = Path(path)
    _check_file(path)
    stream, reader = _open(path)
    try:
        try:
            summary = reader.get_summary()
        except McapError as exc:
            raise BagError(f'{path}: cannot read the MCAP summary ({exc})') from None
        if summary is not None:
            counts = summary.statistics.channel_message_counts if summary.statistics else {}
            topics: dict[str, TopicInfo] = {}
            for channel_id, channel in summary.channels.items():
                schema = summary.schemas.get(channel.schema_id)
                count = counts.get(channel_id) if summary.statistics else None
                previous = topics.get(channel.topic)
                if previous is not None and count is not None and previous.count is not None:
                    count += previous.count
                topics[channel.topic] = TopicInfo(schema.name if schema else '', count)
            return topics
        return _scan_topics(path)  # no summary (an interrupted recording): read the file through
    finally:
        stream.close()


def _scan_topics(path: Path) -> dict[str, TopicInfo]:
    from mcap.exceptions import McapError
    from mcap.records import Channel, Message, Schema
    from mcap.stream_reader import StreamReader

    schemas: dict[int, str] = {}
    channels: dict[int, tuple[str, int]] = {}
    counts: dict[int, int] = {}
    with open(path, 'rb') as stream:
        try:
            for record in StreamReader(stream, skip_magic=False).records:
                if isinstance(record, Schema):
                    schemas[record.id] = record.name
                elif isinstance(record, Channel):
                    channels[record.id] = (record.topic, record.schema_id)
                elif isinstance(record, Message):
                    counts[record.channel_id] = counts.get(record.channel_id, 0) + 1
        except (McapError, EOFError) as exc:  # a truncated file: what was read so far
            if not channels:
                raise BagError(f'{path}: cannot read the MCAP records ({exc})') from None
    return {topic: TopicInfo(schemas.get(schema, ''), counts.get(cid, 0)) for cid, (topic, schema) in channels.items()}


def read_messages(path: str | Path, topics: Iterable[str]) -> Iterator[BagMessage]:
    """The messages of ``topics`` in the MCAP file ``path``, decoded, in log-time order."""
    from mcap.exceptions import McapError

    path = Path(path)
    _check_file(path)
    stream, reader = _open(path)
    try:
        try:
            for schema, channel, message, decoded in reader.iter_decoded_messages(
                topics=list(topics), log_time_order=True
            ):
                yield BagMessage(
                    channel.topic,
                    schema.name if schema else '',
                    message.log_time,
                    message.publish_time,
                    message.sequence,
                    decoded,
                )
        except McapError as exc:
            raise BagError(f'{path}: cannot read its messages ({exc})') from None
    finally:
        stream.close()


def plain_message(value: Any) -> Any:
    """What ``mcap_ros2``'s encoder takes of ``value``: rclpy messages become dicts of their fields, numpy arrays
    (rclpy's fixed-size arrays) and ``array.array`` other than bytes become lists; the rest is kept."""
    if hasattr(value, 'get_fields_and_field_types'):
        return {name: plain_message(getattr(value, name)) for name in value.get_fields_and_field_types()}
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, array.array):
        return value if value.typecode == 'B' else value.tolist()
    if isinstance(value, (list, tuple)):
        return [plain_message(item) for item in value]
    return value


class BagWriter:
    """Writes ROS 2 messages to a new MCAP file (``ros2`` profile, CDR, zstd chunks), as rosbag2 records them.

    ``write(topic, type_name, msg, log_time)`` registers each type's schema (:func:`message_definition`) and
    each topic's channel on first use. Use it as a context manager, or call :meth:`close`: an MCAP file is
    complete only once its summary is written.
    """

    def __init__(self, path: str | Path, prefixes: Sequence[Path] | None = None):
        from mcap_ros2.writer import Writer

        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._prefixes = prefixes
        self._stream = open(self.path, 'wb')
        self._writer = Writer(self._stream)
        self._schemas: dict[str, Any] = {}
        self._types: dict[str, str] = {}
        self.messages = 0

    def write(
        self,
        topic: str,
        type_name: str,
        msg: Any,
        log_time: int,
        publish_time: int | None = None,
        sequence: int = 0,
    ) -> None:
        """Append ``msg`` of ``type_name`` on ``topic`` (times in nanoseconds since the epoch)."""
        full = full_type_name(type_name)
        if self._types.setdefault(topic, full) != full:
            raise ValueError(f'topic {topic} already carries {self._types[topic]}, not {full}')
        schema = self._schemas.get(full)
        if schema is None:
            schema = self._schemas[full] = self._writer.register_msgdef(full, message_definition(full, self._prefixes))
        self._writer.write_message(
            topic,
            schema,
            plain_message(msg),
            log_time=int(log_time),
            publish_time=int(log_time if publish_time is None else publish_time),
            sequence=sequence,
        )
        self.messages += 1

    def close(self) -> None:
        """Write the summary and close the file (idempotent)."""
        if not self._stream.closed:
            try:
                self._writer.finish()
            finally:
                self._stream.close()

    def __enter__(self) -> BagWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
