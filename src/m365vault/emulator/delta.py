"""Delta rounds over one collection (graph-protocol.md §3.1, §3.9).

A collection is its generated base (indices 0..n-1) overlaid by the store's change journal.
Initial round: base items nobody touched, then touched items alive at the snapshot, paged; the last
page's deltaLink carries since = snapshot. Later rounds: every journal row of the collection with
since < seq <= the round's upper bound, once, latest state, tombstones included. Anything changed
during a round lands in the next one. Tokens are signed; each deltaLink has a generation, and only
the newest `generations_kept` are honoured (older ones answer 410, as Exchange's sync states do).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from m365vault.emulator.errors import GraphError
from m365vault.emulator.store import Store
from m365vault.emulator.tokens import InvalidToken, TokenSigner


@dataclass
class View:
    """One collection as the delta engine sees it."""

    key: str
    base_count: int
    base_id: Callable[[int], str]
    base_state: Callable[[int], dict[str, Any]]


@dataclass
class Page:
    items: list[tuple[str, dict[str, Any] | None]] = field(default_factory=list)
    next_token: str | None = None
    delta_token: str | None = None


class Expired(Exception):
    """The token's generation is gone: the client must start a full round."""

    def __init__(self, generation: int, latest: int) -> None:
        super().__init__(f"generation={generation}")
        self.generation = generation
        self.latest = latest

    def sync_state_not_found(self) -> GraphError:
        """Outlook's answer (mail, contacts, events, archives) to a token of a lost generation."""
        return GraphError(
            410,
            "SyncStateNotFound",
            f"The sync state generation is not found; generation={self.generation};[highest={self.latest}].",
        )


class DeltaEngine:
    def __init__(
        self,
        store: Store,
        signer: TokenSigner,
        generations_kept: Callable[[], int],
        duplicates: Callable[[], bool] = lambda: False,
        lag: Callable[[], float] = lambda: 0.0,
        now: Callable[[], float] = lambda: 0.0,
    ) -> None:
        self.store = store
        self.signer = signer
        self.generations_kept = generations_kept
        self.duplicates = duplicates
        self.lag = lag
        self.now = now

    def _visible_seq(self) -> int:
        """The newest change a round may report: with a replication lag, recent writes wait a round."""
        lag = self.lag()
        return self.store.current_seq() if lag <= 0 else self.store.seq_at(self.now() - lag)

    def resume_outlook(
        self, view: View, token: str | None, options: dict[str, Any]
    ) -> tuple[dict[str, Any] | None, dict[str, Any]]:
        """What an Outlook delta request resumes from: its token's payload and the query options
        baked into it (None and `options` without a token); a lost generation is Outlook's 410."""
        if not token:
            return None, options
        try:
            payload = self.read_token(view, token)
        except Expired as exc:
            raise exc.sync_state_not_found() from exc
        return payload, payload.get("q") or options

    def read_token(self, view: View, token: str) -> dict[str, Any]:
        try:
            payload = self.signer.read("delta", token)
        except InvalidToken as exc:
            raise GraphError(
                400,
                "BadRequest",
                "The delta token is malformed or was altered.",
                inner_code="invalidDeltaToken",
            ) from exc
        if payload.get("c") != view.key:
            raise GraphError(400, "BadRequest", "The delta token does not belong to this collection.")
        latest = self.store.latest_generation(view.key)
        gen = int(payload.get("g", 0))
        if latest - gen >= self.generations_kept() or int(payload.get("a", 0)) < self.store.expired_before(
            view.key
        ):
            raise Expired(gen, latest)
        return payload

    def latest(self, view: View, options: dict[str, Any]) -> Page:
        """`token=latest`: nothing now, a deltaLink at the current position."""
        return Page(delta_token=self._delta_link(view, self.store.current_seq(), options))

    def since_seq(self, view: View, seq: int, limit: int, options: dict[str, Any]) -> Page:
        """The first page of the changes after `seq` (timestamp tokens), as if a deltaLink were followed."""
        payload = {
            "c": view.key,
            "m": "d",
            "s": seq,
            "q": options,
            "g": self.store.latest_generation(view.key),
        }
        return self.page(view, payload, limit, options)

    def page(self, view: View, payload: dict[str, Any] | None, limit: int, options: dict[str, Any]) -> Page:
        with self.store.lock:
            if payload is None:
                payload = {
                    "c": view.key,
                    "m": "i",
                    "s": self._visible_seq(),
                    "p": "b",
                    "o": 0,
                    "q": options,
                    "g": self.store.latest_generation(view.key),
                }
            page = (
                self._initial(view, payload, limit)
                if payload["m"] == "i"
                else self._since(view, payload, limit)
            )
        if self.duplicates() and page.items:
            # Graph may repeat an item within a round; clients must apply last-write-wins by id.
            page.items.append(page.items[0])
        return page

    def _mint(self, payload: dict[str, Any]) -> str:
        return self.signer.mint("delta", {**payload, "a": self.store.current_seq()})

    def _delta_link(self, view: View, since: int, options: dict[str, Any]) -> str:
        gen = self.store.generation_for(view.key, since)
        return self._mint({"c": view.key, "m": "d", "s": since, "q": options, "g": gen})

    def _initial(self, view: View, p: dict[str, Any], limit: int) -> Page:
        page = Page()
        snapshot = int(p["s"])
        if p["p"] == "b":
            touched = self.store.touched_in(view.key)
            index = int(p["o"])
            while index < view.base_count and len(page.items) < limit:
                item_id = view.base_id(index)
                if item_id not in touched:
                    page.items.append((item_id, view.base_state(index)))
                index += 1
            if index < view.base_count:
                page.next_token = self._mint({**p, "o": index})
                return page
            p = {**p, "p": "c", "o": 0}
        rows = self.store.live_added(view.key, snapshot, int(p["o"]), limit - len(page.items) + 1)
        more = len(rows) > limit - len(page.items)
        rows = rows[: limit - len(page.items)]
        page.items.extend((item_id, state) for _, item_id, state in rows)
        if more:
            page.next_token = self._mint({**p, "o": rows[-1][0] if rows else p["o"]})
        else:
            page.delta_token = self._delta_link(view, snapshot, p["q"])
        return page

    def _since(self, view: View, p: dict[str, Any], limit: int) -> Page:
        if p["m"] == "d":  # a deltaLink being followed: the round's upper bound is fixed now
            p = {**p, "m": "s", "o": int(p["s"]), "u": max(int(p["s"]), self._visible_seq())}
        upto = int(p["u"])
        rows = self.store.changed(view.key, int(p["o"]), upto, limit + 1)
        page = Page(items=[(item_id, state) for _, item_id, state in rows[:limit]])
        if len(rows) > limit:
            page.next_token = self._mint({**p, "o": rows[limit - 1][0]})
        else:
            page.delta_token = self._delta_link(view, upto, p["q"])
        return page
