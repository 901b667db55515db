"""A job's root message: built from the store, posted once, updated in place as things change."""

from __future__ import annotations

from bot.access import Access
from bot.chat import Card, Chat
from bot.render import root_card
from bot.store import Store


class RootMessages:
    def __init__(self, *, store: Store, chat: Chat, access: Access) -> None:
        self._store = store
        self._chat = chat
        self._access = access

    def card(self, job_id: int) -> Card:
        job = self._store.job(job_id)
        return root_card(
            job,
            review=self._store.review(job_id),
            votes=self._store.votes(job_id),
            steps=self._store.steps(job_id),
            approver_roles=self._access.approver_roles(job.verb, job.cluster),
        )

    async def refresh(self, job_id: int) -> None:
        job = self._store.job(job_id)
        if job.root_ts:
            await self._chat.update(job.channel, job.root_ts, self.card(job_id))
