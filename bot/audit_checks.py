"""`audit verify`'s checks beyond the links: the votes and job states the store acts on must
be the chain's, and the newest anchor written outside the database must still be in it.

Everything is read in one read transaction, so a running kubegate's writes cannot make a whole
log look torn.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bot.anchors import Anchor, AnchorFile
from bot.chain import BrokenLink, ChainWalk, walk

if TYPE_CHECKING:
    from bot.store import Store


@dataclass(frozen=True)
class AuditReport:
    chain: ChainWalk
    anchor: Anchor | None
    broken: BrokenLink | None

    def summary(self) -> list[str]:
        """What an auditor reads when nothing is broken: what was checked, and what could not be."""
        chain = self.chain
        lines = [f"audit chain OK: {chain.count} event(s) verified"]
        if chain.keyed_from is None and chain.count:
            lines.append(
                "note: no event is keyed (plain sha256 links): anyone with the database file "
                "could have rewritten this chain"
            )
        elif chain.keyed_from is not None and chain.keyed_from > 1:
            lines.append(
                f"note: events 1–{chain.keyed_from - 1} come from an earlier kubegate with plain "
                f"sha256 links; the keyed chain pins them as they were at event "
                f"{chain.keyed_from}, but a change made before then cannot be detected"
            )
        if chain.fallback:
            lines.append(
                f"note: {chain.fallback} event(s) are keyed with the fallback key file, written "
                "while Vault could not be reached at start-up: anyone with this host's files "
                "could have rewritten those (see the audit.key-fallback events)"
            )
        if self.anchor is not None:
            lines.append(f"newest anchor (event {self.anchor.seq}, {self.anchor.time}) matches")
        if not chain.key_checked and chain.keyed_from is not None:
            lines.append(
                "WARNING: keyed hashes were NOT recomputed: the audit key was not at hand "
                "(give the config with KUBEGATE_CONFIG when the key is in Vault)"
            )
        return lines


def check_store(
    store: Store, *, anchors: AnchorFile | None, given: Sequence[Anchor] = ()
) -> AuditReport:
    """`given`: anchors from elsewhere (a SIEM's copy), checked as the file's newest is."""
    try:
        anchor = anchors.newest() if anchors is not None else None
    except ValueError as error:
        return AuditReport(walk([], {}), None, BrokenLink(None, str(error)))
    with store.snapshot():
        seen = _ChainFacts()
        chain = walk(
            seen.collect(store.db.query("SELECT * FROM audit ORDER BY id")), store.chain_keys
        )
        broken = chain.broken
        if broken is None and anchors is not None:  # cut or rewritten: say that before the rest
            broken = _anchor_problem(store, chain, anchor, anchors)
        for other in given:
            broken = broken or _anchor_broken(store, chain, other)
        broken = broken or seen.vote_problem(store) or seen.job_state_problem(store)
    return AuditReport(chain, anchor, broken)


class _ChainFacts:
    """The votes and latest job states the chain holds, gathered during the walk."""

    def __init__(self) -> None:
        self.votes: set[tuple[int, str, bool, str]] = set()
        self.job_states: dict[int, str] = {}

    def collect(self, rows: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for row in rows:
            if row["action"] in ("vote", "job.state") and row["job_id"] is not None:
                self._note(row)
            yield row

    def _note(self, row: dict[str, Any]) -> None:
        try:
            details = json.loads(row["details"])
        except ValueError:
            return  # the walk names this event
        if row["action"] == "vote":
            vote = (row["job_id"], row["actor"], details.get("approve"), details.get("plan_digest"))
            self.votes.add(vote)
        else:
            self.job_states[row["job_id"]] = str(details.get("to"))

    def vote_problem(self, store: Store) -> BrokenLink | None:
        rows = store.db.query("SELECT job_id, voter, approve, plan_digest FROM votes ORDER BY at")
        for row in rows:
            vote = (row["job_id"], row["voter"], bool(row["approve"]), row["plan_digest"])
            if vote not in self.votes:
                return BrokenLink(
                    None,
                    f"the vote of {row['voter']} on job #{row['job_id']} is in the votes table "
                    "but not in the audit chain: a forged row (it was not counted toward approval)",
                )
        return None

    def job_state_problem(self, store: Store) -> BrokenLink | None:
        for row in store.db.query("SELECT id, state FROM jobs ORDER BY id"):
            in_chain = self.job_states.get(row["id"])
            if in_chain is not None and in_chain != row["state"]:
                return BrokenLink(
                    None,
                    f"job #{row['id']} is {row['state']} in the jobs table but the audit chain "
                    f"last moved it to {in_chain}: its state was edited outside kubegate",
                )
        return None


def _anchor_problem(
    store: Store, chain: ChainWalk, anchor: Anchor | None, anchors: AnchorFile
) -> BrokenLink | None:
    if anchor is None:
        if not chain.count:
            return None
        return BrokenLink(
            None,
            f"no anchor in {anchors.path}: kubegate writes one at start-up, at every job end and "
            "every few minutes; without it the deletion of the newest events cannot be ruled out",
        )
    broken = _anchor_broken(store, chain, anchor)
    if broken is None and anchor.keyed_from != chain.keyed_from:
        return BrokenLink(
            None,
            f"the anchor of {anchor.time} has the keyed chain begin at event {anchor.keyed_from}, "
            f"the database at event {chain.keyed_from}: the chain was rewritten",
        )
    return broken


def _deleted(first: int, last: int) -> str:
    return f"event {first} was deleted" if first == last else f"events {first}–{last} were deleted"


def _anchor_broken(store: Store, chain: ChainWalk, anchor: Anchor) -> BrokenLink | None:
    """The chain no longer holds what `anchor` vouched for: events cut off, or rewritten."""
    head = chain.head[0] if chain.head else 0
    if anchor.seq > head:
        return BrokenLink(
            None,
            f"the chain ends at event {head} but the anchor of {anchor.time} vouches for event "
            f"{anchor.seq}: " + _deleted(head + 1, anchor.seq),
        )
    rows = list(store.db.query("SELECT hash FROM audit WHERE id = ?", [anchor.seq]))
    if rows[0]["hash"] != anchor.hash:
        return BrokenLink(
            anchor.seq,
            f"its hash differs from the anchor of {anchor.time}: the chain was rewritten "
            "after it was anchored",
        )
    return None
