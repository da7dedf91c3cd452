"""The one CLI: `python -m pipeline <stage|command> [--config PRESET] [--set section.key=value ...]
[--force]`.

Every command is listed here: a stage's command runs the stage (stages.py), unless one of the command's own
options is given, which its handler takes (`score --images`, `zip --check`); the other commands are their
handlers. Handlers are named as "module:function" and imported only when called. The CLI only parses and
dispatches: user errors print as one line saying what to do (exit 2), a stage that cannot run here (no FID
weights offline) says it is skipped (exit 3), bugs keep their tracebacks.
"""
from __future__ import annotations

import argparse
import errno
import importlib
import sys
from dataclasses import dataclass
from pathlib import Path

from . import plugins
from .config import available_presets, load_config, load_for_kaggle
from .engine.errors import StageSkipped, UserError
from .engine.stage import is_main_process
from .stages import KERNEL, STAGES

EXIT_USER_ERROR = 2
EXIT_SKIPPED = 3


@dataclass(frozen=True)
class Command:
    """A CLI command: a stage's (runs the stage) or a handler's, `f(cfg, args) -> exit code`."""

    name: str
    help: str
    handler: str = ""  # "module:function"; for a stage's command, only when one of `arguments` is given
    arguments: tuple[tuple[str, dict], ...] = ()
    after: str = ""  # "module:function" called as f(cfg) once the command succeeded (the leaderboard page)
    read_only: tuple[str, ...] = ()  # options with which the command only reads: no `after` then
    notebook: bool = False  # builds or pushes a Kaggle notebook: a Kaggle preset as --config is what it runs
    # "module:function" called as f(cfg, args) -> cfg before the handler: settings an option of the command
    # decides (submit --run NAME: attach the dataset `upload` recorded for that run)
    prepare: str = ""
    aliases: tuple[str, ...] = ()  # older names that still run it

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        for flag, options in self.arguments:
            parser.add_argument(flag, **options)

    def handles(self, args: argparse.Namespace) -> bool:
        """Whether the handler runs: always for a command that is no stage, else when an option of its own
        is given."""
        if self.name not in RUNNABLE:
            return True
        return any(getattr(args, flag.lstrip("-").replace("-", "_"), None) for flag, _ in self.arguments)


RUNNABLE = {**STAGES, KERNEL.name: KERNEL}  # every stage a command of the same name runs


def _call(target: str, *args: object) -> object:
    module, _, func = target.partition(":")
    return getattr(importlib.import_module(module), func)(*args)


# every train, score, submit and submissions brings the page up to date
REFRESH_PAGE = "pipeline.leaderboard.page:refresh"
COMMANDS: dict[str, Command] = {c.name: c for c in [
    Command("download", STAGES["download"].help),
    Command("augment", STAGES["augment"].help),
    Command("train", STAGES["train"].help, after=REFRESH_PAGE),
    Command("generate", STAGES["generate"].help),
    Command("score", STAGES["score"].help + "; or score any --images against any --real",
            handler="pipeline.scoring.score:command", after=REFRESH_PAGE, arguments=(
                ("--images", {"metavar": "PATH", "help": "folder or zip of generated images"}),
                ("--real", {"metavar": "PATH",
                            "help": "folder or zip of real images (default: score.real, else the training "
                                    "Monets); training paintings in it are left out"}),
                ("--out", {"metavar": "FILE", "help": "where to write the JSON result"}))),
    Command("zip", STAGES["zip"].help + "; --check PATH validates an existing zip",
            handler="pipeline.submission.archive:command",
            arguments=(("--check", {"metavar": "PATH",
                                    "help": "validate this zip against the competition's rules"}),)),
    Command("kernel", KERNEL.help, notebook=True),
    Command("push", "build the kernel and push it to Kaggle; prints its URL and version",
            handler="pipeline.jobs.submit:push_command", notebook=True),
    Command("submit",
            "push, wait for the kernel, fetch and check images.zip, score it, submit it to the competition, "
            "wait for its public score", handler="pipeline.jobs.submit:submit_command",
            after=REFRESH_PAGE, notebook=True, prepare="pipeline.datasets.upload:attach_uploaded",
            arguments=(("--run", {"metavar": "NAME",
                                  "help": "generate from run NAME as `upload` put it on Kaggle (its dataset "
                                          "attached) instead of training"}),)),
    Command("train-kaggle", "train one run over train.sessions Kaggle sessions (a kernel each, each resuming "
            "the last); --submit then submits from its last checkpoint",
            handler="pipeline.jobs.train:train_command", after=REFRESH_PAGE, notebook=True,
            aliases=("kaggle-train",), arguments=(("--submit", {"action": "store_true",
                                     "help": "then submit from the last session's run"}),)),
    Command("sweep", "run a sweep's variants side by side (sweep.backend=kaggle|local), rank them by local "
            "MiFID, submit the best with sweep.submit=best", handler="pipeline.search.sweep:command",
            after=REFRESH_PAGE, arguments=(
                ("sweep", {"metavar": "NAME|PATH", "help": "families, recipe, demo or a sweep file"}),
                ("--status", {"action": "store_true", "help": "print the sweep's table, run nothing"}),
                ("--json", {"action": "store_true", "help": "the table as JSON (a list, best first)"})),
            read_only=("status", "json"), notebook=True),
    Command("search", "spend GPU-hours where they pay: Optuna samples trials, each a chain of sessions, "
            "pruned between sessions on local MiFID (successive halving), on Kaggle or this machine; "
            "--submit then submits the best", handler="pipeline.search.command:command", after=REFRESH_PAGE,
            arguments=(
                ("search", {"metavar": "NAME|PATH", "help": "demo, recipe or a search file"}),
                ("--status", {"action": "store_true", "help": "print the trials, run nothing"}),
                ("--json", {"action": "store_true", "help": "the trials as JSON (a list, best first)"}),
                ("--journal", {"action": "store_true", "help": "print the path of the study's journal file"}),
                ("--submit", {"action": "store_true",
                              "help": "then submit the best trial (backend kaggle)"})),
            read_only=("status", "json", "journal"), notebook=True),
    Command("upload", "put a run trained here (--run NAME, else the run the settings name) on Kaggle as a "
            "private dataset that `submit --run NAME` generates from; --weights: the FID weights, which "
            "kernels then attach", handler="pipeline.datasets.upload:command",
            arguments=(("--run", {"metavar": "NAME", "help": "the run folder data/runs/NAME"}),
                       ("--weights", {"action": "store_true",
                                      "help": "upload the FID weights file instead (score.weights, else "
                                              "pytorch-fid's cache)"}))),
    Command("doctor", "ask Kaggle, reading only, what a submission will meet: credentials, rules, "
            "submissions left, GPU quota, the competition's files, the weights dataset; exit 1 when one is "
            "not fine",
            handler="pipeline.account.doctor:command"),
    Command("submissions", "refresh the public scores of your Kaggle submissions; print them beside the "
            "local ones", handler="pipeline.jobs.scores:submissions_command", after=REFRESH_PAGE),
    Command("leaderboard", "write submissions/leaderboard.html, one row per run; --check renders it in "
            "headless Chromium", handler="pipeline.leaderboard.page:command",
            arguments=(("--check", {"action": "store_true",
                                    "help": "then check in headless Chromium that every image loads"}),)),
    Command("families", "list the model families (train.model); --settings NAME shows one family's settings",
            handler="pipeline.training.catalog:command",
            arguments=(("--settings", {"metavar": "NAME",
                                       "help": "print this family's settings with defaults"}),)),
    Command("bench", "measure training, generation and scoring throughput and `make demo` stage by stage; "
            "writes submissions/bench/bench.md and bench.json (about 20 minutes on 2 CPU cores)",
            handler="pipeline.bench.command:command", arguments=(
                ("--only", {"metavar": "PARTS",
                            "help": "comma-separated parts to run, e.g. train,score (default: all; an "
                                    "unknown one is refused with the list)"}),
                ("--data", {"metavar": "DIR", "type": Path,
                            "help": "score on the photos and paintings of this folder (monet_jpg/, "
                                    "photo_jpg/); default: data/raw if complete, else the demo generator's"}),
                ("--full", {"action": "store_true",
                            "help": "score: run pytorch-fid's command at 7,000 vs 300 too (about 20 more "
                                    "minutes on 2 CPU cores) instead of deriving its time"}))),
]}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline",
        description="Monet submission pipeline: download -> augment -> train -> generate -> score -> zip "
                    "-> submit.",
        epilog="Each stage is cached: it re-runs only when its inputs, settings or code changed.")
    sub = parser.add_subparsers(dest="command", metavar="<stage>", title="stages and commands")
    for cmd in COMMANDS.values():
        p = sub.add_parser(cmd.name, aliases=cmd.aliases, help=cmd.help, description=cmd.help)
        p.set_defaults(command=cmd.name)  # an alias runs, and reports as, the command itself
        p.add_argument("--config", default="default", metavar="PRESET",
                       help=f"settings preset: {', '.join(available_presets())} or a TOML file "
                            "(default: default)")
        p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override one setting, e.g. --set train.epochs=2 (repeatable)")
        p.add_argument("--force", action="store_true", help="re-run even when the output is up to date")
        p.add_argument("--yes", action="store_true",
                       help="answer yes where a command asks before spending Kaggle GPU time (YES=1)")
        cmd.add_arguments(p)
    return parser


def dispatch(args: argparse.Namespace) -> int:
    cmd = COMMANDS[args.command]
    cfg = (load_for_kaggle if cmd.notebook else load_config)(args.config, args.set)
    if cmd.prepare:
        cfg = _call(cmd.prepare, cfg, args)
    if cmd.handles(args):
        code = int(_call(cmd.handler, cfg, args) or 0)
    else:
        RUNNABLE[cmd.name].run(cfg, force=args.force)
        code = 0
    read_only = any(getattr(args, flag, False) for flag in cmd.read_only)
    if cmd.after and code == 0 and not read_only and is_main_process():  # under torchrun, rank 0 alone
        _call(cmd.after, cfg)
    return code


def main(argv: list[str] | None = None) -> int:
    plugins.load()
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
              "space and re-run the same command (outputs already complete and the last checkpoint are "
              "intact)", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print(f"{args.command}: interrupted; nothing half-written was kept. Re-run the same command to "
              "continue.", file=sys.stderr)
        return 130
