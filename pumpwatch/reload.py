"""Reload: an estate's site file added, changed or removed takes effect without a restart.

`DeploymentWatcher` reads the deployment's files again (`pumpwatch.portfolio.scan`) every
`COLLECTOR__RELOAD_INTERVAL` seconds (5 by default; 0: never by itself) and whenever `request()` is called
(the roles' processes call it on SIGHUP). Polling rather than inotify: it needs nothing of the platform,
sees a file replaced by an editor's rename or a configuration-management tool the same way, and reading a
few hundred small files every few seconds costs milliseconds (only a file whose bytes changed is parsed
again: `scan` remembers each file's digest and what it parsed to).

What it does with what it finds, file by file:

- a file whose content is the same: nothing;
- a new or changed file that is valid and conflicts with no other estate: its estate is handed to every
  listener as `EstateChange("updated", ...)` (an estate whose id changed in its file is removed under the
  old id first);
- a file that is broken (YAML, shape, references), or that would conflict with another estate (its id,
  a Modbus endpoint, a topic, an edge): refused, its problems logged once per content with file and line,
  and its estate keeps running on the version it had;
- a file no longer there (or no longer named by the deployment file): its estate is removed
  (`EstateChange("removed", ...)`), unless the deployment itself cannot be read (a broken deployment file,
  a folder left empty): then nothing is removed.

Listeners are called one after the other on the event loop, in the order they were added.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pumpwatch.portfolio import Portfolio, Scan, conflicts, scan
from pumpwatch.runtime import settle_heap
from pumpwatch.site import Site
from pumpwatch.sitefile import LocatedSite, SiteIssue

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EstateChange:
    """One estate added or changed (`site` is its new version), or removed."""

    kind: Literal["updated", "removed"]
    estate: str
    site: Site | None
    portfolio: Portfolio  # the deployment as it is with this change


Listener = Callable[[EstateChange], Awaitable[None]]


class DeploymentWatcher:
    """Watches a deployment's files and hands each estate's change to the listeners (see the module)."""

    def __init__(self, portfolio: Portfolio, *, interval: float = 5.0) -> None:
        if portfolio.source is None:
            raise ValueError("the portfolio was not loaded from files: nothing to watch")
        self.source = portfolio.source
        self.portfolio = portfolio
        self.interval = interval
        self.listeners: list[Listener] = []
        self.accepted: dict[str, Site] = {portfolio.files[estate]: site
                                          for estate, site in portfolio.estates.items()}
        self._refused: dict[str, str] = {}  # file -> digest of the content whose problems were logged
        self._wake = asyncio.Event()

    def request(self) -> None:
        """Look at the files now (SIGHUP)."""
        self._wake.set()

    async def run(self) -> None:
        """Look at the files every `interval` seconds and on request, until cancelled."""
        while True:
            try:
                if self.interval > 0:
                    await asyncio.wait_for(self._wake.wait(), self.interval)
                else:
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                if await self.check():
                    settle_heap()  # the replaced estates' objects go, the new ones are frozen
            except Exception:  # a listener's failure must not end reloading
                log.exception("reloading the deployment %s failed", self.source)

    async def check(self) -> list[EstateChange]:
        """Read the files once and apply what changed; the changes handed to the listeners."""
        found = await asyncio.to_thread(scan, self.source)
        changes: list[EstateChange] = []
        if found.issues:
            self._refuse(self.source, found.issues, "the deployment")
        else:
            for file in [f for f in self.accepted if f not in found.files]:
                site = self.accepted.pop(file)
                changes.append(await self._apply("removed", site.site.id, None))
        for file in found.files:
            if file in found.broken:
                self._refuse(file, found.broken[file], self._estate_of(file))
                continue
            changes += await self._take(file, found.loaded[file], found)
        return changes

    async def _take(self, file: str, located: LocatedSite, found: Scan) -> list[EstateChange]:
        old = self.accepted.get(file)
        if old is not None and old == located.site:
            self._refused.pop(file, None)
            return []
        others = [_located(f, site, found) for f, site in self.accepted.items() if f != file]
        problems = [issue for issue in conflicts([*others, located]) if issue.file == file]
        if problems:
            self._refuse(file, problems, self._estate_of(file))
            return []
        self._refused.pop(file, None)
        changes = []
        if old is not None and old.site.id != located.site.site.id:
            self.accepted.pop(file)
            changes.append(await self._apply("removed", old.site.id, None))
        self.accepted[file] = located.site
        changes.append(await self._apply("updated", located.site.site.id, located.site, file))
        return changes

    async def _apply(self, kind: Literal["updated", "removed"], estate: str, site: Site | None,
                     file: str | None = None) -> EstateChange:
        if site is not None:
            self.portfolio = self.portfolio.with_estate(site, file)
        else:
            self.portfolio = self.portfolio.without(estate)
        change = EstateChange(kind, estate, site, self.portfolio)
        log.info("deployment %s: estate %s %s", self.source, estate, kind)
        for listener in list(self.listeners):
            await listener(change)
        return change

    def _estate_of(self, file: str) -> str:
        site = self.accepted.get(file)
        return f"estate {site.site.id}" if site is not None else f"new file {file}"

    def _refuse(self, file: str, issues: list[SiteIssue], what: str) -> None:
        """Log a refused file's problems once per content (a file polled every few seconds stays quiet)."""
        digest = _digest(file)
        if self._refused.get(file) == digest:
            return
        self._refused[file] = digest
        log.error("deployment %s: %s refused, it keeps running as it was:\n  %s", self.source, what,
                  "\n  ".join(str(issue) for issue in issues))


def _located(file: str, site: Site, found: Scan) -> LocatedSite:
    """An accepted site with the lines of its file as the scan read it (for conflict messages)."""
    loaded = found.loaded.get(file)
    if loaded is not None and loaded.site == site:
        return loaded
    return LocatedSite(site, file, {})


def _digest(file: str) -> str:
    try:
        return hashlib.blake2b(Path(file).read_bytes(), digest_size=16).hexdigest()
    except OSError:
        return "unreadable"
