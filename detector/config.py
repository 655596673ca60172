"""Janus configuration: one TOML file, every key with a working default.

Janus runs with no file at all. A file overrides what it names; an unknown key or a value of the
wrong type or range is a :class:`~detector.errors.JanusError` naming the key, e.g.
``detection.arl: must be a number > 1, got -3``.

>>> cfg = load_config(None)
>>> cfg.detection.arl
1000000.0
>>> parse_config({"detection": {"arl": 10000}}).detection.arl
10000.0
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

from detector.errors import JanusError


@dataclass(frozen=True)
class LimitsConfig:
    """Size limits on untrusted decision records; anything beyond is rejected, never truncated."""

    max_record_bytes: int = 1_048_576
    max_text_chars: int = 100_000
    max_id_chars: int = 128
    max_tool_calls: int = 64
    max_attributes: int = 64
    max_depth: int = 8
    dedup_window: int = 100_000  # distinct decision ids remembered to drop producer retries (0: off)


@dataclass(frozen=True)
class FeaturesConfig:
    """How decisions become small categorical codes (DESIGN.md "Features")."""

    text_prefix_chars: int = 512
    text_cache_size: int = 50_000
    embedding_dim: int = 64
    hashing_features: int = 4_096
    output_clusters: int = 8
    reasoning_clusters: int = 8
    input_clusters: int = 32
    numeric_bins: int = 8
    max_codes: int = 16
    max_tools: int = 12
    max_segments: int = 16
    attributes: list[str] = field(default_factory=list)
    oversight_phrases: list[str] = field(
        default_factory=lambda: [
            "not monitored",
            "no one is monitoring",
            "nobody is monitoring",
            "being monitored",
            "being watched",
            "this is a test",
            "this is not a test",
            "being evaluated",
            "evaluation environment",
            "nobody will see",
            "no one will see",
            "no one will know",
            "outside of training",
            "during training",
            "retrain",
            "modify my values",
            "unmonitored",
        ]
    )
    reservoir_size: int = 200


@dataclass(frozen=True)
class DetectionConfig:
    """The detection contract (DESIGN.md): one number, the ARL, sets the false-alarm budget."""

    arl: float = 1_000_000.0
    model_arl: dict[str, float] = field(default_factory=dict)
    tilts: list[float] = field(default_factory=lambda: [2.0, 4.0])
    shares: list[float] = field(default_factory=lambda: [0.1, 0.3])
    credible_level: float = 0.99
    shrinkage: float = 50.0
    resolve_fraction: float = 0.01
    window_half_life: float = 2_000.0
    features: list[str] = field(default_factory=list)  # monitor only these (default: every feature)

    def arl_for(self, model_id: str) -> float:
        return float(self.model_arl.get(model_id, self.arl))


@dataclass(frozen=True)
class KafkaConfig:
    bootstrap_servers: str = "127.0.0.1:9092"
    topics: list[str] = field(default_factory=lambda: ["janus.decisions"])
    traffic_by_topic: dict[str, str] = field(default_factory=dict)
    group_id: str = "janus"
    alert_topic: str = "janus.alerts"
    dlq_suffix: str = ".dlq"
    max_poll_interval_ms: int = 300_000
    session_timeout_ms: int = 10_000
    max_poll_records: int = 2_000
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str = ""
    sasl_plain_username: str = ""
    sasl_plain_password: str = ""
    ssl_cafile: str = ""
    ssl_certfile: str = ""
    ssl_keyfile: str = ""


@dataclass(frozen=True)
class CheckpointConfig:
    directory: str = "checkpoints"
    every_records: int = 50_000
    every_seconds: float = 10.0


@dataclass(frozen=True)
class MetricsConfig:
    address: str = "127.0.0.1:9464"
    max_models: int = 100
    max_segments: int = 20
    max_codes: int = 40  # above the 33 codes of the default 32 input clusters


@dataclass(frozen=True)
class JanusConfig:
    store: str = "baselines"
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    detection: DetectionConfig = field(default_factory=DetectionConfig)
    kafka: KafkaConfig = field(default_factory=KafkaConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# Range checks beyond the type: (predicate, description) per dotted key.
_POSITIVE = (lambda v: v > 0, "> 0")
_CHECKS: dict[str, tuple[Any, str]] = {
    "detection.arl": (lambda v: v > 1, "> 1"),
    "detection.credible_level": (lambda v: 0.5 <= v < 1, "in [0.5, 1)"),
    "detection.shrinkage": (lambda v: v >= 0, ">= 0"),
    "detection.resolve_fraction": (lambda v: 0 < v < 1, "in (0, 1)"),
    "detection.window_half_life": _POSITIVE,
    "detection.tilts": (lambda v: len(v) > 0 and all(t > 1 for t in v), "a non-empty list of factors > 1"),
    "detection.model_arl": (lambda v: all(a > 1 for a in v.values()), "a table of model_id = number > 1"),
    "detection.shares": (lambda v: all(0 < x < 1 for x in v), "a list of fractions in (0, 1)"),
    "limits.dedup_window": (lambda v: 0 <= v <= 10_000_000, "in [0, 10000000]"),
    "features.numeric_bins": (lambda v: 2 <= v <= 64, "in [2, 64]"),
    "features.max_codes": (lambda v: 4 <= v <= 256, "in [4, 256]"),
    "features.input_clusters": (lambda v: 1 <= v <= 64, "in [1, 64]"),
    "features.output_clusters": (lambda v: 1 <= v <= 64, "in [1, 64]"),
    "features.reasoning_clusters": (lambda v: 1 <= v <= 64, "in [1, 64]"),
    "kafka.traffic_by_topic": (
        lambda v: all(t in ("evaluation", "production") for t in v.values()),
        'a table of topic = "evaluation" | "production"',
    ),
}


def _check_value(key: str, value: Any, hint: Any) -> Any:
    origin = get_origin(hint)
    if hint is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif hint is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif hint is str:
        ok = isinstance(value, str)
    elif origin is list:
        (item,) = get_args(hint)
        ok = isinstance(value, list)
        if ok:
            value = [_check_value(f"{key}[{i}]", v, item) for i, v in enumerate(value)]
    elif origin is dict:
        _, item = get_args(hint)
        ok = isinstance(value, dict)
        if ok:
            value = {k: _check_value(f"{key}.{k}", v, item) for k, v in value.items()}
    else:  # pragma: no cover - every field type is listed above
        raise TypeError(hint)
    if not ok:
        name = getattr(hint, "__name__", str(hint))
        raise JanusError(f"{key}: expected {name}, got {type(value).__name__} {value!r}")
    check = _CHECKS.get(key)
    if check is None and hint in (int, float) and not key.endswith("_ms"):
        check = _POSITIVE
    if check is not None and not check[0](value):
        raise JanusError(f"{key}: must be {check[1]}, got {value!r}")
    return value


def _build(cls: type, data: dict[str, Any], prefix: str) -> Any:
    hints = get_type_hints(cls)
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        where = f" in [{prefix.rstrip('.')}]" if prefix else ""
        raise JanusError(f"unknown configuration key{where}: {', '.join(prefix + u for u in unknown)}")
    kwargs = {}
    for name, value in data.items():
        hint = hints[name]
        key = prefix + name
        if dataclasses.is_dataclass(hint):
            if not isinstance(value, dict):
                raise JanusError(f"{key}: expected a table, got {type(value).__name__}")
            kwargs[name] = _build(hint, value, key + ".")
        else:
            kwargs[name] = _check_value(key, value, hint)
    return cls(**kwargs)


def parse_config(data: dict[str, Any]) -> JanusConfig:
    """Validate a configuration mapping (as read from TOML) and fill in defaults."""
    return _build(JanusConfig, data, "")


def load_config(path: str | Path | None) -> JanusConfig:
    """Read a TOML file, or return the defaults when ``path`` is None."""
    if path is None:
        return JanusConfig()
    path = Path(path)
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise JanusError(f"{path}: configuration file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise JanusError(f"{path}: not valid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise JanusError(f"{path}: not valid TOML: not UTF-8 ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:  # a folder, no permission, ...
        raise JanusError(f"{path}: cannot read configuration file: {exc.strerror or exc}") from None
    try:
        return parse_config(data)
    except JanusError as exc:
        raise JanusError(f"{path}: {exc}") from None
