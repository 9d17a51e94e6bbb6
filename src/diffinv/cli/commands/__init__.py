"""The commands of ``diffinv``, in the order ``--help`` lists them. Adding a command: one new file here exposing
``COMMAND`` (a :class:`~diffinv.cli.options.Command`) and one line below."""

from __future__ import annotations

from diffinv.cli.options import Command
from diffinv.registry import Registry

COMMANDS: Registry[Command] = Registry(
    "command",
    [
        ("invert", "diffinv.cli.commands.invert:COMMAND"),
        ("reconstruct", "diffinv.cli.commands.reconstruct:COMMAND"),
        ("generate", "diffinv.cli.commands.generate:COMMAND"),
        ("bench", "diffinv.cli.commands.bench:COMMAND"),
        ("edit", "diffinv.cli.commands.edit:COMMAND"),
        ("sdedit", "diffinv.cli.commands.sdedit:COMMAND"),
        ("edit-bench", "diffinv.cli.commands.edit_bench:COMMAND"),
        ("sdedit-sweep", "diffinv.cli.commands.sdedit_sweep:COMMAND"),
        ("concept-bench", "diffinv.cli.commands.concept_bench:COMMAND"),
        ("ui", "diffinv.cli.commands.ui:COMMAND"),
        ("doctor", "diffinv.cli.commands.doctor:COMMAND"),
        ("probe", "diffinv.cli.commands.probe:COMMAND"),
        ("learn-concept", "diffinv.cli.commands.learn_concept:COMMAND"),
        ("token-influence", "diffinv.cli.commands.token_influence:COMMAND"),
    ],
)
