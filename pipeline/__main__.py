"""One CLI: `python -m pipeline <stage> [--config PRESET] [--set section.key=value ...] [--force]`.

Only parses and dispatches. User errors print as one line saying what to do (exit 2); a stage
that cannot run here (no FID weights offline) says it is skipped (exit 3); bugs keep tracebacks.
"""
from __future__ import annotations

import argparse
import errno
import importlib
import importlib.util
import sys

from .config import available_presets, load_config
from .engine.chain import COMMANDS, STAGES
from .engine.errors import StageSkipped, UserError
from .engine.stage import is_main_process

EXIT_USER_ERROR = 2
EXIT_SKIPPED = 3


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline",
        description="Monet submission pipeline: download -> augment -> train -> generate -> score -> zip -> "
                    "submit.",
        epilog="Each stage is cached: it re-runs only when its inputs, settings or code changed.")
    sub = parser.add_subparsers(dest="command", metavar="<stage>", title="stages and commands")
    for cmd in COMMANDS.values():
        p = sub.add_parser(cmd.name, help=cmd.help, description=cmd.help)
        p.add_argument("--config", default="default", metavar="PRESET",
                       help=f"settings preset: {', '.join(available_presets())} or a TOML file (default: "
                            "default)")
        p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override one setting, e.g. --set train.epochs=2 (repeatable)")
        p.add_argument("--force", action="store_true", help="re-run even when the output is up to date")
        cmd.add_arguments(p)
    return parser


def dispatch(args: argparse.Namespace) -> int:
    cmd = COMMANDS[args.command]
    cfg = load_config(args.config, args.set)
    target = cmd.handler or STAGES[cmd.name].build
    module, _, func = target.partition(":")
    if importlib.util.find_spec(module) is None:
        raise UserError(f"'{cmd.name}' is not built yet in this version of the pipeline "
                        f"({module} is missing)")
    if cmd.handler:
        code = getattr(importlib.import_module(module), func)(cfg, args) or 0
    else:
        STAGES[cmd.name].run(cfg, force=args.force)
        code = 0
    if cmd.after and code == 0 and is_main_process():  # under torchrun, rank 0 alone
        module, _, func = cmd.after.partition(":")
        getattr(importlib.import_module(module), func)(cfg)
    return code


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return EXIT_USER_ERROR
    try:
        return dispatch(args)
    except UserError as exc:
        print(f"{args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except StageSkipped as exc:
        print(f"{args.command}: skipped: {exc}", file=sys.stderr)
        return EXIT_SKIPPED
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        print(f"{args.command}: error: disk full while writing {exc.filename or 'an output'}; free some "
              "space and "
              "re-run the same command (outputs already complete and the last checkpoint are intact)",
              file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print(f"{args.command}: interrupted; nothing half-written was kept. Re-run the same command to "
              "continue.",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
