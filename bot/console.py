"""Try kubegate without Slack: the same flow in a terminal, buttons numbered, any user at will.

Type `/kube cordon worker-2` as one user, `:as U0BOB`, then the number of [Approve].
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

from bot.chat import Button, Card
from bot.service import Kubegate

HELP = """Console commands:
  /kube <verb> …     run a kubegate command as the current user (e.g. /kube cordon worker-2)
  :as <USER_ID>      act as another Slack user (e.g. :as U0BOB)
  <number>           click the button with that number, as the current user
  :help              this text        :quit  leave (Ctrl-D works too)"""


@dataclass
class _Clickable:
    channel: str
    ts: str
    button: Button


class ConsoleChat:
    """The Chat interface printed to a terminal; every button gets a number to type."""

    def __init__(self, *, out: TextIO, names: dict[str, str]) -> None:
        self._out = out
        self._names = names
        self._next_ts = 0
        self.buttons: dict[int, _Clickable] = {}

    def _new_ts(self) -> str:
        self._next_ts += 1
        return f"{self._next_ts}.000000"

    def _print_card(self, channel: str, ts: str, card: Card, *, prefix: str) -> None:
        lines = [prefix + self._names_in(card.headline)]
        indent = " " * len(prefix)
        for section in card.sections:
            lines += [
                indent + self._names_in(line) for line in section.replace("```", "").splitlines()
            ]
        if card.buttons:
            labels = []
            for button in card.buttons:
                number = len(self.buttons) + 1
                self.buttons[number] = _Clickable(channel, ts, button)
                labels.append(f"[{number}] {button.label}")
            lines.append(indent + "   ".join(labels))
        print("\n".join(lines), file=self._out, flush=True)

    def _names_in(self, text: str) -> str:
        for user, name in self._names.items():
            text = text.replace(f"<@{user}>", f"@{name}")
        # Escaped untrusted text (bot/markup.py) reads, in a terminal, as it was written.
        for entity, character in (("&lt;", "<"), ("&gt;", ">"), ("&amp;", "&")):
            text = text.replace(entity, character)
        return text.replace("*", "")

    async def post(self, channel: str, card: Card, *, thread_ts: str | None = None) -> str:
        ts = self._new_ts()
        self._print_card(channel, ts, card, prefix="   ↳ " if thread_ts else f"#{channel} ")
        return ts

    async def update(self, channel: str, ts: str, card: Card) -> None:
        self._print_card(channel, ts, card, prefix="   ✎ ")

    async def ephemeral(self, channel: str, user: str, text: str) -> None:
        name = self._names.get(user, user)
        body = self._names_in(text).replace("```", "")
        print(f"   (only {name} sees this) {body}", file=self._out, flush=True)

    async def ephemeral_card(self, channel: str, user: str, card: Card) -> None:
        name = self._names.get(user, user)
        self._print_card(channel, self._new_ts(), card, prefix=f"   (only {name} sees this) ")

    async def group_members(self, group_id: str) -> set[str]:
        return set()

    async def upload(self, channel: str, thread_ts: str, *, title: str, content: str) -> None:
        lines = content.count("\n") + 1
        print(f"   ↳ 📎 {title} ({lines} lines, shared as a file)", file=self._out, flush=True)


async def run_console(
    kubegate: Kubegate,
    chat: ConsoleChat,
    *,
    names: dict[str, str],
    user: str,
    channel: str,
    read_line: Callable[[], str | None],
    out: TextIO,
    echo: bool,
) -> None:
    print(HELP, file=out)
    while True:
        print(f"\n{names.get(user, user)} ({user})> ", end="", file=out, flush=True)
        line = await asyncio.to_thread(read_line)
        if line is None:
            print(file=out)
            return
        line = line.strip()
        if echo:
            print(line, file=out, flush=True)
        if not line:
            continue
        if line in (":quit", ":q", "exit"):
            return
        if line == ":help":
            print(HELP, file=out)
        elif line.startswith(":as "):
            user = line.split(maxsplit=1)[1].strip()
            print(f"   now acting as {names.get(user, user)} ({user})", file=out)
        elif line.isdigit():
            clickable = chat.buttons.get(int(line))
            if clickable is None:
                print(f"   there is no button {line}", file=out)
                continue
            print(f"   {names.get(user, user)} clicked [{clickable.button.label}]", file=out)
            await kubegate.click(
                user=user,
                channel=clickable.channel,
                action_id=clickable.button.action_id,
                message_ts=clickable.ts,
                value=clickable.button.value,
            )
        elif line.startswith(("/kube", "kube ")):
            text = line.split(maxsplit=1)[1] if " " in line else ""
            answer = kubegate.receive_command(user=user, channel=channel, text=text)
            print(f"   (only {names.get(user, user)} sees this) {answer.text}", file=out)
            if answer.work is not None:
                kubegate.answer_later(answer.work)
        else:
            print("   type /kube <verb> …, :as <USER_ID>, a button number, or :help", file=out)
        await kubegate.idle()


def stdin_reader() -> Callable[[], str | None]:
    def read_line() -> str | None:
        line = sys.stdin.readline()
        return line if line else None

    return read_line
