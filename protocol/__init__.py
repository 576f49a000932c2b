"""Wire format and client of the Neural Style daemon (pure Python: pyzmq and msgpack only).

The GIMP plug-in imports this package inside GIMP's own Python, so nothing here may
import torch, numpy, PIL or ``neural_style.daemon``; imports inside are relative so the
folder can be copied next to the plug-in. The contract is docs/PROTOCOL.md.
"""

from .autostart import DaemonHandle, DaemonStartFailed, NoDaemon, connect_or_start, start_daemon
from .client import Client, CurveKeys, DaemonClient, StylizeEvent, StylizeStream, new_request_id
from .connection import (
    AUTOSTART_TIMEOUT,
    CLIENT_CONFIG_NAME,
    DEFAULT_ENDPOINT,
    ENDPOINT_ENV,
    FIRST_PING_TIMEOUT,
    ClientConfig,
    default_endpoint,
    read_client_config,
    resolve_endpoint,
    service_start_command,
    write_client_config,
)
from .errors import (
    ERROR_CODES,
    CodedError,
    DaemonError,
    DaemonUnavailable,
    ErrorCode,
    NeuralStyleError,
    ProtocolError,
)
from .heartbeat import CLIENT_LIVENESS_TIMEOUT, HEARTBEAT_INTERVAL, configure_client_socket, configure_zmtp_heartbeat
from .image_data import Encoding, ImageData, ImageRef
from .messages import (
    Accepted,
    Cancel,
    CancelAck,
    Error,
    Heartbeat,
    JobInfo,
    Loss,
    Message,
    Ping,
    Pong,
    Previous,
    Progress,
    Reply,
    Request,
    Result,
    Status,
    StatusReply,
    Stylize,
    UnknownReply,
    decode_reply,
    decode_request,
    error_frames,
)
from .reports import LossReport, ProgressReport, duration
from .wire import MAX_HEADER_BYTES, PROTOCOL_VERSION, Envelope, decode, encode

__all__ = [
    "Client", "CurveKeys", "DaemonClient", "StylizeEvent", "StylizeStream", "new_request_id",
    "DaemonHandle", "DaemonStartFailed", "NoDaemon", "connect_or_start", "start_daemon",
    "AUTOSTART_TIMEOUT", "CLIENT_CONFIG_NAME", "DEFAULT_ENDPOINT", "ENDPOINT_ENV", "FIRST_PING_TIMEOUT",
    "ClientConfig", "default_endpoint", "read_client_config", "resolve_endpoint", "service_start_command",
    "write_client_config",
    "ERROR_CODES", "CodedError", "DaemonError", "DaemonUnavailable", "ErrorCode", "NeuralStyleError", "ProtocolError",
    "CLIENT_LIVENESS_TIMEOUT", "HEARTBEAT_INTERVAL", "configure_client_socket", "configure_zmtp_heartbeat",
    "Encoding", "ImageData", "ImageRef",
    "Accepted", "Cancel", "CancelAck", "Error", "Heartbeat", "JobInfo", "Loss", "Message", "Ping", "Pong",
    "Previous", "Progress", "Reply", "Request", "Result", "Status", "StatusReply", "Stylize", "UnknownReply",
    "decode_reply", "decode_request", "error_frames",
    "LossReport", "ProgressReport", "duration",
    "MAX_HEADER_BYTES", "PROTOCOL_VERSION", "Envelope", "decode", "encode",
]
