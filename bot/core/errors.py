"""Errors of the core that carry a structured message for the person (see :mod:`bot.core.text`)."""

from __future__ import annotations

from collections.abc import Iterable

from bot.core.text import Icon, Text, code, codes, command, icon, markup, t
from workers.kernel.errors import RegopsError, UsageError


class CommandError(UsageError):
    """Bad command input: ``text`` says what was wrong and what would be right."""

    def __init__(self, text: Text) -> None:
        super().__init__(text.plain())
        self.text = text


class CredentialsInChat(CommandError):
    """A command carried a password or user option (``login_arguments``: words after ``login``).

    The message warns the person to rotate the password.  It never contains the command text
    or the secret, and callers must not store, log or echo the text.
    """

    def __init__(self, *, login_arguments: bool = False) -> None:
        self.login_arguments = login_arguments
        super().__init__(self.warning())

    def warning(self, sent_through: str | None = None) -> Text:
        """The warning; ``sent_through`` names the service the text crossed (e.g. Slack), if any."""
        exposed = (
            t("but it was sent to {}: rotate that password now", sent_through)
            if sent_through
            else t("but if it was a real password, treat it as exposed and rotate it")
        )
        if self.login_arguments:
            return t(
                "{}`login` takes no arguments: regops logs in with the registry account configured on the "
                "workers (choose one with `--registry NAME`). Your message was not stored, logged or echoed, "
                "{}.",
                icon(Icon.WARNING),
                exposed,
            )
        return t(
            "{}Credentials are never taken in chat. Your message was not stored, logged or echoed, {}. "
            "regops logs in with the registry account configured on the workers.",
            icon(Icon.WARNING),
            exposed,
        )


class TextTooLong(CommandError):
    """A command's text is longer than Slack sends (``length`` characters): refused before it is parsed."""

    def __init__(self, length: int, limit: int) -> None:
        self.length = length
        super().__init__(t(
            "{}This message is {} characters long; regops reads commands of at most {} (Slack sends no more, and "
            "no command needs more than a few hundred). It was not read, and nothing was run. See {}.",
            icon(Icon.WARNING), f"{length:,}", f"{limit:,}", command("help")))


def message_of(error: RegopsError) -> Text:
    """What to tell the person about an expected error: its structured text, or its plain message."""
    return error.text if isinstance(error, CommandError) else markup(error.user_message)


def unknown_name(noun: str, name: str, names: Iterable[str], option: str, default: str) -> CommandError:
    """A ``--registry``/``--host`` value the config does not define, with the ones it does."""
    plural = "registries" if noun == "registry" else "hosts"
    return CommandError(t("unknown {} {}. Configured {}: {}. Use {} with one of them, or leave it out for the "
                          "default ({}).", noun, code(name), plural, codes(names), code(option), code(default)))
