"""`janus config show`: the effective configuration (defaults merged with the file)."""

from __future__ import annotations

from detector.cli.common import config_of, print_json


def register(parser) -> None:
    cmds = parser.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    show = cmds.add_parser("show", help="print the effective configuration as JSON")
    show.set_defaults(handler=_show)


def _show(args) -> int:
    print_json(config_of(args).to_dict())
    return 0
