"""`janus schema`: the decision record (schema v1) as a JSON Schema, with the configured limits."""

from __future__ import annotations

from detector.cli.common import config_of, print_json


def register(parser) -> None:
    parser.set_defaults(handler=_run)


def _run(args) -> int:
    from detector.schema import decision_schema

    print_json(decision_schema(config_of(args).limits))
    return 0
