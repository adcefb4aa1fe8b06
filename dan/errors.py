"""The one user-facing error type and the one-line message helper every layer uses."""

from __future__ import annotations

__all__ = ["DanError", "MissingLabelsError", "one_line"]


class DanError(Exception):
    """A user-facing error: its message is one line that says what is wrong and where.

    The command line prints it without a traceback and exits with status 1.
    """


class MissingLabelsError(DanError):
    """A model whose class names are unknown and cannot be inferred (a 7-class reference file).

    The message names Python's keyword (``labels=``); :meth:`for_option` names a command's option.
    """

    KEYWORD = "pass labels="

    def for_option(self, option: str = "--labels") -> MissingLabelsError:
        """The same error, its message naming ``option`` instead of the Python keyword."""
        return MissingLabelsError(str(self).replace(self.KEYWORD, f"pass {option}"))


def one_line(text: object, limit: int = 200) -> str:
    """A message (or an exception) as one line of at most about ``limit`` characters, cut between sentences.

    Whitespace runs become single spaces. A longer text keeps its first sentences (or, when the first
    is too long, its first words) and ends with " [...]", so a message never stops mid-word.
    """
    text = " ".join(str(text).split()) or (type(text).__name__ if isinstance(text, BaseException) else "")
    if len(text) <= limit:
        return text
    cut = max(text.rfind(". ", 0, limit), text.rfind("; ", 0, limit))
    if cut > limit // 3:
        return text[: cut + 1] + " [...]"
    cut = text.rfind(" ", 0, limit)
    return text[: cut if cut > 0 else limit] + " [...]"
