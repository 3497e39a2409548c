"""TekTree's runtime kernel: virtual actors on trio, supervised, addressed by id.

Domain-free: nothing here imports ``actors`` or ``gateway``.
"""

from tektree._actor import Actor, Handler, batch_handler, handler
from tektree._codec import (
    decode_envelope,
    decode_message,
    decode_value,
    encode_envelope,
    encode_message,
    encode_value,
    roundtrip,
)
from tektree._context import ActorContext
from tektree._envelope import Envelope
from tektree._errors import (
    ActorFailed,
    ActorStopped,
    AskTimeout,
    CodecError,
    ConfigError,
    MailboxFull,
    NodeStopping,
    SupervisorFailed,
    TekTreeError,
    UnhandledMessage,
    UnknownActorKind,
)
from tektree._ids import ActorId
from tektree._messages import (
    MessageSpec,
    is_message,
    message,
    message_spec,
    message_type,
    registered_tags,
    tag_of,
)
from tektree._node import BUILTIN_SERVICES, Node, NodeFailed, Service
from tektree._pool import ActorPool, PoolStatistics
from tektree._refs import ActorRef
from tektree._supervisor import Child, Supervisor, TaskChild
from tektree._system import ActorSystem
from tektree._telemetry import capture_logs, configure_logging, correlation_id
from tektree._timers import TimerHandle, TimerQueue
from tektree._wallclock import SystemWallClock, WallClock
from tektree.config import Config, load_config, parse_config

__version__ = "0.1.0"

__all__ = [
    "BUILTIN_SERVICES",
    "Actor",
    "ActorContext",
    "ActorFailed",
    "ActorId",
    "ActorPool",
    "ActorRef",
    "ActorStopped",
    "ActorSystem",
    "AskTimeout",
    "Child",
    "CodecError",
    "Config",
    "ConfigError",
    "Envelope",
    "Handler",
    "MailboxFull",
    "MessageSpec",
    "Node",
    "NodeFailed",
    "NodeStopping",
    "PoolStatistics",
    "Service",
    "Supervisor",
    "SupervisorFailed",
    "SystemWallClock",
    "TaskChild",
    "TekTreeError",
    "TimerHandle",
    "TimerQueue",
    "UnhandledMessage",
    "UnknownActorKind",
    "WallClock",
    "batch_handler",
    "capture_logs",
    "configure_logging",
    "correlation_id",
    "decode_envelope",
    "decode_message",
    "decode_value",
    "encode_envelope",
    "encode_message",
    "encode_value",
    "handler",
    "is_message",
    "load_config",
    "message",
    "message_spec",
    "message_type",
    "parse_config",
    "registered_tags",
    "roundtrip",
    "tag_of",
]
