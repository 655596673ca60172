"""The imperative shell around the pipeline: Kafka clients, the embedded broker, checkpoints,
the dead-letter topic and (``service``) the stream service itself.

Submodules import kafka-python lazily where they can, so ``import detector.stream`` stays cheap.
"""

from detector.stream.broker import BrokerBinaryMissing, BrokerStartError, EmbeddedBroker, create_topics
from detector.stream.checkpoint import CheckpointCorrupt, CheckpointStore
from detector.stream.dlq import DeadLetterPublisher
from detector.stream.kafka_config import kafka_kwargs

__all__ = [
    "BrokerBinaryMissing",
    "BrokerStartError",
    "CheckpointCorrupt",
    "CheckpointStore",
    "DeadLetterPublisher",
    "EmbeddedBroker",
    "create_topics",
    "kafka_kwargs",
]
