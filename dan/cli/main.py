"""Entry point of the ``dan`` command: one subcommand per job, each in its own module.

Every subcommand module exposes ``main(argv: list[str]) -> int``; modules are imported only when
their subcommand runs, so ``dan synth`` never pays for Lightning and ``dan predict`` never for
albumentations. A :class:`dan.errors.DanError` (a user's mistake) prints one line and exits 1 (a
command-line usage error exits 2, as argparse does).
"""

from __future__ import annotations

import errno
import importlib
import os
import sys

from dan.errors import DanError, MissingLabelsError

__all__ = ["COMMANDS", "main"]

# name -> (module, one-line help). fit/validate/test are LightningCLI's own subcommands.
COMMANDS: dict[str, tuple[str, str]] = {
    "fit": ("dan.cli.train", "train a model from a YAML config (LightningCLI)"),
    "validate": ("dan.cli.train", "run the validation loop of a config (LightningCLI)"),
    "test": ("dan.cli.train", "run the test loop of a config (LightningCLI)"),
    "evaluate": ("dan.cli.evaluate", "score a checkpoint on a data set and write a report"),
    "calibrate": ("dan.cli.calibrate", "fit a temperature on a validation split: probabilities you can trust"),
    "predict": ("dan.cli.predict", "label the faces in images, folders and globs"),
    "demo": ("dan.cli.demo", "live webcam / video / photo demo with every face labelled"),
    "serve": ("dan.cli.serve", "serve a live webcam page and an HTTP API (needs the serve extra)"),
    "export": ("dan.cli.export", "export a checkpoint to ONNX (float32 or int8) or torch.export (.pt2)"),
    "synth": ("dan.cli.synth", "generate a synthetic face-expression data set (RAF-DB layout)"),
    "data": ("dan.cli.data", "data set tools: 'dan data check --format F --root DIR'"),
    "info": ("dan.cli.info", "build or load a model, run it on an image and print the result"),
    "models": ("dan.cli.models", "list the released models and download them: 'dan models download rafdb'"),
}
_PASS_NAME = {"fit", "validate", "test"}  # these modules get the subcommand name as argv[0]


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: dan COMMAND [ARGS...]   ('dan COMMAND --help' for a command's options)", "", "commands:"]
    lines += [f"  {name.ljust(width)}  {help_}" for name, (_, help_) in COMMANDS.items()]
    return "\n".join(lines)


def main(args: list[str] | None = None) -> int:
    """Run ``dan`` with ``args`` (default: ``sys.argv[1:]``) and return the exit status."""
    argv = list(sys.argv[1:] if args is None else args)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0 if argv else 2
    if argv[0] in ("-V", "--version"):
        from dan import __version__

        print(f"dan {__version__}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"dan: error: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    try:
        module = importlib.import_module(COMMANDS[name][0])
        status = module.main([name, *rest] if name in _PASS_NAME else rest)
    except DanError as err:
        if isinstance(err, MissingLabelsError):  # the message names Python's labels=; here it is an option
            err = err.for_option("--labels")
        text = str(err).strip()
        if "Original Traceback" in text:  # raised in a DataLoader worker: torch appended its traceback
            text = text.splitlines()[-1].partition(": ")[2] or text
        print(f"dan {name}: error: {text}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"dan {name}: interrupted", file=sys.stderr)
        return 130
    except OSError as err:  # a full disk or a read-only folder met while writing: one line, not a traceback
        if err.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES):
            raise
        where = f"{err.filename}: " if err.filename else ""
        print(f"dan {name}: error: {where}{os.strerror(err.errno)}", file=sys.stderr)
        return 1
    return int(status or 0)


if __name__ == "__main__":
    sys.exit(main())
