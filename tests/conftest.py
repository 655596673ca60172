"""Shared test fixtures.

* ``kafka_bootstrap`` (session): ``$JANUS_TEST_BOOTSTRAP`` if set (an existing cluster, e.g.
  ``JANUS_TEST_BOOTSTRAP=localhost:9092``), otherwise one embedded Tansu broker for the whole
  session, killed at the end. Tests that use it are marked ``@pytest.mark.kafka``.
* ``unique_topic`` / ``unique_name``: names that no other test (or earlier run against the same
  external cluster) uses; ``unique_topic`` also creates the topic.
* ``--run-soak``: tests under ``tests/soak/`` are skipped without it (``make soak``).
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

SOAK_DIR = Path(__file__).parent / "soak"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--run-soak",
        action="store_true",
        default=False,
        help="run the long soak tests under tests/soak (skipped otherwise)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-soak"):
        return
    skip = pytest.mark.skip(reason="soak test: pass --run-soak (or `make soak`) to run it")
    for item in items:
        try:
            Path(str(item.path)).resolve().relative_to(SOAK_DIR.resolve())
        except ValueError:
            continue
        item.add_marker(skip)


@pytest.fixture(scope="session")
def kafka_bootstrap():
    """Bootstrap servers of a Kafka-protocol broker for this test session."""
    external = os.environ.get("JANUS_TEST_BOOTSTRAP", "").strip()
    if external:
        yield external
        return
    from detector.stream.broker import EmbeddedBroker

    with EmbeddedBroker() as broker:
        yield broker.bootstrap_servers


@pytest.fixture
def unique_name(request: pytest.FixtureRequest):
    """``unique_name(prefix)`` -> ``"<prefix>-<test name>-<random>"``, valid as a topic or group id."""

    def make(prefix: str = "janus-test") -> str:
        base = "".join(c if c.isalnum() or c in "._-" else "-" for c in request.node.name)[:60]
        return f"{prefix}-{base}-{uuid.uuid4().hex[:10]}"

    return make


@pytest.fixture
def unique_topic(kafka_bootstrap: str, unique_name):
    """``unique_topic(prefix="t", partitions=1)`` creates a fresh topic and returns its name."""

    def make(prefix: str = "t", partitions: int = 1) -> str:
        from detector.stream.broker import create_topics

        name = unique_name(prefix)
        create_topics(kafka_bootstrap, [name], partitions)
        return name

    return make
