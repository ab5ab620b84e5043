"""Which messages were taken, and the snapshots runs read them from.

Reading takes a *snapshot*: the new messages are fetched (without marking them read) into a
folder of the state directory, `mail/snapshots/<run id>/`, with a manifest naming the
server, mailbox, UIDVALIDITY and UID of each. That folder is the run's input, so a resumed
run reads exactly the messages it started with. Each message is claimed in the ledger
(`mail/ledger.sqlite`) by its (server, mailbox, UIDVALIDITY, UID) when its snapshot is taken,
so a second run never takes it again. When the server's UIDVALIDITY changed (it renumbered
the mailbox), the claimed messages are recognised again by Message-ID.
"""

from __future__ import annotations

import email.policy
import json
import os
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from ..errors import RunError
from ..ids import new_id
from ..settings import Settings
from .imap_connection import open_mailbox
from .mailbox_source import MailboxRef, MailboxSource

MANIFEST = "mailbox.json"
"""The file of a snapshot folder naming the mailbox and each message's UID."""


class Ledger:
    """`mail/ledger.sqlite` in the state directory: each message claimed by one snapshot."""

    def __init__(self, home: Path) -> None:
        path = home / "mail" / "ledger.sqlite"
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, isolation_level=None, timeout=30)
        self.db.executescript(
            """
            create table if not exists messages (
                account text not null, mailbox text not null, uidvalidity integer not null,
                uid integer not null, message_id text, snapshot text not null,
                state text not null, at real not null,
                primary key (account, mailbox, uidvalidity, uid));
            create index if not exists messages_by_id on messages (account, mailbox, message_id);
            create table if not exists snapshots (
                id text primary key, account text not null, mailbox text not null,
                path text not null, created_at real not null, finished_at real,
                status text);
            """
        )

    def close(self) -> None:
        self.db.close()

    def claimed(self, account: str, mailbox: str, uidvalidity: int) -> set[int]:
        rows = self.db.execute(
            "select uid from messages where account=? and mailbox=? and uidvalidity=?",
            (account, mailbox, uidvalidity),
        )
        return {int(r[0]) for r in rows}

    def other_validities(self, account: str, mailbox: str, uidvalidity: int) -> list[int]:
        rows = self.db.execute(
            "select distinct uidvalidity from messages where account=? and mailbox=? "
            "and uidvalidity<>?",
            (account, mailbox, uidvalidity),
        )
        return sorted(int(r[0]) for r in rows)

    def known_ids(self, account: str, mailbox: str) -> set[str]:
        rows = self.db.execute(
            "select message_id from messages where account=? and mailbox=? "
            "and message_id is not null",
            (account, mailbox),
        )
        return {str(r[0]) for r in rows}

    def claim(
        self,
        snapshot: str,
        account: str,
        mailbox: str,
        uidvalidity: int,
        messages: Sequence[tuple[int, str | None]],
        *,
        state: str = "claimed",
        path: Path | None = None,
    ) -> set[int]:
        """Claim messages for `snapshot` (recorded with its folder, when given); returns the
        UIDs it got (another process may have claimed some first)."""
        got = set()
        self.db.execute("begin immediate")
        try:
            for uid, message_id in messages:
                cursor = self.db.execute(
                    "insert or ignore into messages values (?, ?, ?, ?, ?, ?, ?, ?)",
                    (account, mailbox, uidvalidity, uid, message_id, snapshot, state, time.time()),
                )
                if cursor.rowcount:
                    got.add(uid)
            if path is not None and got:
                self.db.execute(
                    "insert or ignore into snapshots (id, account, mailbox, path, created_at) "
                    "values (?, ?, ?, ?, ?)",
                    (snapshot, account, mailbox, str(path), time.time()),
                )
            self.db.execute("commit")
        except BaseException:
            self.db.execute("rollback")
            raise
        return got

    def unfinished(self, account: str, mailbox: str) -> list[tuple[str, Path]]:
        """(id, folder) of the snapshots taken but not yet processed to the end, oldest first."""
        rows = self.db.execute(
            "select id, path from snapshots where account=? and mailbox=? and finished_at is "
            "null order by created_at",
            (account, mailbox),
        )
        return [(str(r[0]), Path(r[1])) for r in rows]

    def taken_since(self, account: str, mailbox: str, since: float) -> list[str]:
        """Ids of the snapshots of this mailbox taken since `since` (seconds since the epoch)."""
        rows = self.db.execute(
            "select id from snapshots where account=? and mailbox=? and created_at>=?",
            (account, mailbox, since),
        )
        return [str(r[0]) for r in rows]

    def finish(self, snapshot: str, status: str) -> None:
        self.db.execute(
            "update snapshots set finished_at=?, status=? where id=?",
            (time.time(), status, snapshot),
        )
        self.db.execute(
            "update messages set state='processed' where snapshot=? and state='claimed'",
            (snapshot,),
        )


@contextmanager
def ledger(settings: Settings | None = None) -> Iterator[Ledger]:
    book = Ledger((settings or Settings()).home)
    try:
        yield book
    finally:
        book.close()


@dataclass(kw_only=True)
class Snapshot:
    """The new messages of a mailbox, fetched into a folder that a run reads."""

    id: str
    """Also the id of the run that processes it."""
    path: Path
    count: int
    notes: list[str] = field(default_factory=list)
    """What the user should know: a UIDVALIDITY change, messages skipped for their size."""
    uidnext: int = 0
    """The mailbox's UIDNEXT when it was taken (new mail makes it grow)."""


def take_snapshot(source: MailboxSource, settings: Settings | None = None) -> Snapshot:
    """Fetch the mailbox's messages that match the search and that no earlier snapshot took
    (at most `source.limit`, oldest first) into `mail/snapshots/<id>/`, and claim them."""
    settings = settings or Settings()
    snapshot_id = new_id()
    folder = settings.home / "mail" / "snapshots" / snapshot_id
    notes: list[str] = []
    account, name = source.account, source.mailbox
    with open_mailbox(source, settings) as box, ledger(settings) as book:
        validity = box.select(name, readonly=True)
        uids = [
            u for u in box.search(source.search()) if u not in book.claimed(account, name, validity)
        ]
        older = book.other_validities(account, name, validity)
        if older and uids:
            known = book.known_ids(account, name)
            ids = box.message_ids(uids)
            seen = [(u, ids[u]) for u in uids if ids.get(u) in known]
            book.claim("uidvalidity-change", account, name, validity, seen, state="seen before")
            uids = [u for u in uids if u not in {s for s, _ in seen}]
            notes.append(
                f"the UIDVALIDITY of {name} changed ({older[-1]} -> {validity}): the server "
                f"renumbered its messages; {len(seen)} processed before were recognised by "
                f"Message-ID and skipped, {len(uids)} are new"
            )
        uids = uids[: source.limit]
        sizes = box.sizes(uids) if uids else {}
        big = [u for u in uids if sizes.get(u, 0) > source.max_bytes]
        if big:
            book.claim(snapshot_id, account, name, validity, [(u, None) for u in big],
                       state="too large")  # fmt: skip
            notes.append(
                f"{len(big)} message(s) over {source.max_bytes:,} bytes skipped (UIDs "
                f"{', '.join(map(str, big))}): raise max_bytes= in the URL to read them"
            )
        bodies = box.fetch([u for u in uids if u not in big])
        uidnext = box.uidnext
    messages = []
    for uid, data in sorted(bodies.items()):
        file = f"{validity}-{uid}.eml"
        mid = email.message_from_bytes(data[:65536], policy=email.policy.default)["Message-ID"]
        messages.append({"uid": uid, "file": file, "message_id": str(mid).strip() if mid else None})
    if not messages:
        return Snapshot(id=snapshot_id, path=folder, count=0, notes=notes, uidnext=uidnext)
    folder.mkdir(parents=True, exist_ok=True)
    for m in messages:
        (folder / str(m["file"])).write_bytes(bodies[int(str(m["uid"]))])
    manifest = {"url": source.location, "user": source.user, "account": account, "mailbox": name,
                "uidvalidity": validity, "taken_at": time.time(), "messages": messages}  # fmt: skip
    write_manifest(folder, manifest)
    with ledger(settings) as book:
        got = book.claim(
            snapshot_id, account, name, validity,
            [(int(str(m["uid"])), m["message_id"]) for m in messages],  # type: ignore[misc]
            path=folder,
        )  # fmt: skip
    if len(got) < len(messages):  # another process took some at the same moment
        manifest["messages"] = [m for m in messages if m["uid"] in got]
        write_manifest(folder, manifest)
    return Snapshot(id=snapshot_id, path=folder, count=len(got), notes=notes, uidnext=uidnext)


def write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    tmp = folder / f".{MANIFEST}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    os.replace(tmp, folder / MANIFEST)


def unfinished_snapshots(source: MailboxSource, settings: Settings | None = None) -> list[Snapshot]:
    """Snapshots of this mailbox taken but not processed to the end (a run killed, or
    interrupted), oldest first; a snapshot whose folder is gone is closed as lost."""
    found = []
    with ledger(settings) as book:
        for snapshot_id, path in book.unfinished(source.account, source.mailbox):
            if not (path / MANIFEST).is_file():
                book.finish(snapshot_id, "lost")
                continue
            count = len(json.loads((path / MANIFEST).read_text(encoding="utf-8"))["messages"])
            found.append(Snapshot(id=snapshot_id, path=path, count=count))
    return found


def _manifest(snapshot_id: str | None, settings: Settings | None) -> dict[str, Any] | None:
    """The manifest of snapshot `snapshot_id`; None when there is none (not a mailbox run)."""
    if not snapshot_id or "/" in snapshot_id:
        return None
    folder = (settings or Settings()).home / "mail" / "snapshots" / snapshot_id
    try:
        manifest: dict[str, Any] = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise RunError(f"{folder}: a damaged mailbox snapshot ({e})") from e
    manifest["folder"] = str(folder)
    return manifest


def snapshot_message(
    snapshot_id: str | None, file: str, settings: Settings | None = None
) -> tuple[MailboxRef, bytes] | None:
    """Where message `file` of snapshot `snapshot_id` (the id of the run reading it) lives on
    its server, and its bytes; None when the run did not read a mailbox."""
    manifest = _manifest(snapshot_id, settings)
    if manifest is None or "/" in file:
        return None
    for m in manifest.get("messages", []):
        if m.get("file") == file:
            ref = MailboxRef(
                url=manifest["url"],
                user=manifest["user"],
                mailbox=manifest["mailbox"],
                uidvalidity=manifest["uidvalidity"],
                uid=m["uid"],
            )
            return ref, (Path(manifest["folder"]) / file).read_bytes()
    return None


class RunOptions(BaseModel):
    """What the run of a snapshot does beyond reading: set by `llmflow run`, kept in the
    snapshot's manifest, so that a resumed run does the same."""

    send: str | None = None
    """Where approved replies are sent: an `smtp://` or `smtps://` URL (no password)."""
    dry_run: bool = False
    """Change nothing on the servers: only say what would be flagged, drafted, filed, sent."""


def set_run_options(snapshot: Snapshot, options: RunOptions) -> None:
    """Record what the run of `snapshot` may do (before it starts)."""
    path = snapshot.path / MANIFEST
    manifest = json.loads(path.read_text(encoding="utf-8"))
    manifest["options"] = options.model_dump()
    write_manifest(snapshot.path, manifest)


def run_options(snapshot_id: str | None, settings: Settings | None = None) -> RunOptions:
    """What the run of snapshot `snapshot_id` may do (nothing more when it read no mailbox)."""
    manifest = _manifest(snapshot_id, settings)
    return RunOptions.model_validate((manifest or {}).get("options") or {})


def release_snapshot(snapshot_id: str, settings: Settings | None = None) -> None:
    """After a dry run: its messages are free again for the next run to take."""
    with ledger(settings) as book:
        book.finish(snapshot_id, "dry-run")
        book.db.execute("delete from messages where snapshot=?", (snapshot_id,))


def finish_snapshot(snapshot_id: str, status: str, settings: Settings | None = None) -> None:
    """Record that the run of a snapshot ended (`status`: the run's)."""
    with ledger(settings) as book:
        book.finish(snapshot_id, status)
