"""Tools of the support-chat agents, over a real SQLite database of customers and orders.

The database is built from `seed.sql` (beside this file) on first use, in the state
directory: `$LLMFLOW_HOME/support-chat/shop.db`, or the file named by `SUPPORT_CHAT_DB`.
It persists across runs, so a refund made in one run is still there in the next.

Every tool checks its arguments and raises `ValueError` with a message the model can act on
(the agent step records the error and tells the model). `request_refund` changes the world:
the workflow declares it as a side effect, and it refuses a second refund of the same order.
It records the call's idempotency key with the refund, so that the same call made again (a
durable run resumed after a crash cut the call off) answers as the first did and does not
refund twice, nor tell the customer that their refund was refused.

The tools act for the conversation's customer only: the run's principal (`principal:` in
workflow.yaml, from the message's `customer`, never from its text). The agent files declare
`check: tools:owns_order` / `tools:is_the_customer`, so the engine refuses a call about
someone else before the tool runs (recorded as refused); the tools check again themselves.
`refund_needs_approval` decides which refunds wait for a person: every one by default, or
those above `SUPPORT_CHAT_APPROVE_ABOVE_EUR` when it is set.
"""

# No `from __future__ import annotations`: pydantic resolves the models' annotations at
# class creation, and this file may be loaded by path, outside sys.modules.
import contextlib
import os
import re
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, Field

from llmflow import Settings
from llmflow.steps.idempotency import current_idempotency_key
from llmflow.steps.principal import Principal, current_principal

SEED = Path(__file__).parent / "seed.sql"
REFUNDABLE = "delivered"
"""Only delivered orders can be refunded: others are cancelled or not yet received."""


def database_path() -> Path:
    """Where the shop's database lives: `SUPPORT_CHAT_DB`, else the state directory."""
    configured = os.environ.get("SUPPORT_CHAT_DB")
    return Path(configured) if configured else Settings().home / "support-chat" / "shop.db"


def build_database(path: Path) -> None:
    """Create the database at `path` from seed.sql, unless it exists.

    Built in a temporary file, then linked into place only if no database is there yet: a
    crash never leaves a half-seeded database, and two first uses at once never replace one
    that has already taken a refund.
    """
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.{uuid.uuid4().hex}.partial")
    try:
        with closing(sqlite3.connect(partial)) as db:
            db.executescript(SEED.read_text(encoding="utf-8"))
            db.commit()
        with contextlib.suppress(FileExistsError):  # another first use won: keep its file
            os.link(partial, path)
    finally:
        partial.unlink(missing_ok=True)


@contextmanager
def shop() -> Iterator[sqlite3.Connection]:
    """A connection to the shop's database (built on first use); commits on success."""
    path = database_path()
    build_database(path)
    with closing(sqlite3.connect(path, timeout=10)) as db:
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA foreign_keys = ON")
        with db:  # one transaction: committed on success, rolled back on an error
            yield db


OrderId = Annotated[
    str,
    Field(pattern=r"^(order )?#?([Nn][Ww]-?)?[0-9]{4}$", description="The order id, like NW-1042."),
]
"""An order id as the tools' schema states it: every model is told the format (and the
embedded model's output is constrained to it). It admits what `order_key` accepts: a call
that does not match is refused by the SDK before the tool runs, with a vaguer message."""

ORDER_NUMBER = re.compile(r"(?i)^\s*(?:order\s*)?#?\s*(?:nw\s*-?\s*)?(\d{4})\s*$")
CUSTOMER_ID = re.compile(r"(?i)^\s*c\s*-?\s*(\d{3})\s*$")


def order_key(order_id: str) -> str:
    """The canonical order id (NW-1042) for what a model or customer wrote: NW-1042,
    nw1042, #1042, order 1042."""
    match = ORDER_NUMBER.match(order_id or "")
    if not match:
        raise ValueError(f"{order_id!r} is not an order id: order ids look like NW-1042")
    return f"NW-{match.group(1)}"


def _order(db: sqlite3.Connection, order_id: str) -> sqlite3.Row:
    key = order_key(order_id)
    row: sqlite3.Row | None = db.execute(
        "SELECT o.*, c.name AS customer_name, c.email AS customer_email,"
        " r.amount_eur AS refunded_eur, r.created_at AS refunded_at"
        " FROM orders o JOIN customers c ON c.id = o.customer_id"
        " LEFT JOIN refunds r ON r.order_id = o.id WHERE o.id = ?",
        (key,),
    ).fetchone()
    if row is None:
        raise ValueError(f"there is no order {key}: check the number with the customer")
    return row


def _describe_order(row: sqlite3.Row) -> str:
    refund = (
        f"; refunded {row['refunded_eur']:.2f} EUR on {row['refunded_at'][:10]}"
        if row["refunded_eur"] is not None
        else ""
    )
    return (
        f"{row['id']}: {row['item']}, {row['total_eur']:.2f} EUR, {row['status']},"
        f" ordered {row['ordered_on']} by {row['customer_name']} ({row['customer_id']}){refund}"
    )


APPROVE_ABOVE = "SUPPORT_CHAT_APPROVE_ABOVE_EUR"
"""Refunds above this many EUR wait for a person's approval; unset: every refund does."""
NOT_YOURS = "there is no order {key} among your orders: check the number"


def _customer_id(db: sqlite3.Connection, principal: Principal) -> str | None:
    """The customer id of the principal (an email address or a customer id), if any."""
    text = principal.id.strip()
    id_match = CUSTOMER_ID.match(text)
    if id_match:
        row = db.execute("SELECT id FROM customers WHERE id = ?", (f"C-{id_match.group(1)}",))
    else:
        row = db.execute("SELECT id FROM customers WHERE lower(email) = lower(?)", (text,))
    found = row.fetchone()
    return None if found is None else str(found[0])


def _scoped(db: sqlite3.Connection, row: sqlite3.Row) -> sqlite3.Row:
    """`row` (an order), if the run's principal owns it; the tools' own check, after the
    engine's (`owns_order`): code called outside a run, with no principal, is trusted."""
    principal = current_principal()
    if principal is not None and row["customer_id"] != _customer_id(db, principal):
        raise ValueError(NOT_YOURS.format(key=row["id"]))
    return row


def owns_order(principal: Principal, arguments: dict[str, object]) -> bool | str:
    """The permission check of the order tools: the order is the principal's own. Another
    customer's order and no order at all get the same answer, so nothing leaks."""
    try:
        key = order_key(str(arguments.get("order_id") or ""))
    except ValueError as e:
        return str(e)
    with shop() as db:
        found = db.execute("SELECT customer_id FROM orders WHERE id = ?", (key,)).fetchone()
        if found is None or found[0] != _customer_id(db, principal):
            return NOT_YOURS.format(key=key)
    return True


def is_the_customer(principal: Principal, arguments: dict[str, object]) -> bool | str:
    """The permission check of `look_up_customer`: only the principal's own account."""
    text = str(arguments.get("email_or_id") or "").strip()
    with shop() as db:
        own = _customer_id(db, principal)
        id_match = CUSTOMER_ID.match(text)
        asked = f"C-{id_match.group(1)}" if id_match else None
        if asked is None and "@" in text:
            row = db.execute(
                "SELECT id FROM customers WHERE lower(email) = lower(?)", (text,)
            ).fetchone()
            asked = None if row is None else str(row[0])
    if own is not None and asked == own:
        return True
    return "you can look up only the account of the customer you are talking to"


def refund_needs_approval(principal: Principal | None, arguments: dict[str, object]) -> bool:
    """Whether a refund waits for a person: always, unless SUPPORT_CHAT_APPROVE_ABOVE_EUR
    is set; then when the order's total is above it (or the order cannot be read)."""
    configured = os.environ.get(APPROVE_ABOVE, "").strip()
    if not configured:
        return True
    try:
        with shop() as db:
            total = float(_order(db, str(arguments.get("order_id") or ""))["total_eur"])
        return total > float(configured)
    except ValueError:
        return True


def look_up_customer(email_or_id: str) -> str:
    """Look up the customer you are talking to, by their email address or customer id
    (like C-101): name, customer since, and their orders."""
    text = (email_or_id or "").strip()
    if not text:
        raise ValueError("give the customer's email address or customer id (like C-101)")
    with shop() as db:
        id_match = CUSTOMER_ID.match(text)
        if id_match:
            customer = db.execute(
                "SELECT * FROM customers WHERE id = ?", (f"C-{id_match.group(1)}",)
            ).fetchone()
        elif "@" in text:
            customer = db.execute(
                "SELECT * FROM customers WHERE lower(email) = lower(?)", (text,)
            ).fetchone()
        else:
            raise ValueError(f"{text!r} is neither an email address nor a customer id (like C-101)")
        if customer is None:
            raise ValueError(f"no customer {text}: ask the customer for the email on their order")
        principal = current_principal()
        if principal is not None and customer["id"] != _customer_id(db, principal):
            raise ValueError("you can look up only the account of the customer you are talking to")
        orders = db.execute(
            "SELECT id, item, status FROM orders WHERE customer_id = ? ORDER BY ordered_on",
            (customer["id"],),
        ).fetchall()
    listed = "; ".join(f"{o['id']} {o['item']} ({o['status']})" for o in orders) or "none"
    return (
        f"{customer['id']}: {customer['name']} <{customer['email']}>,"
        f" customer since {customer['since']}. Orders: {listed}"
    )


def look_up_order(order_id: OrderId) -> str:
    """Look up an order by its id (like NW-1042): item, total, status, customer, refund."""
    with shop() as db:
        return _describe_order(_scoped(db, _order(db, order_id)))


def look_up_invoice(order_id: OrderId) -> str:
    """Look up the invoice of an order (like NW-1042): invoice number, net amount, VAT at
    20 %, total and payment method."""
    with shop() as db:
        row = _scoped(db, _order(db, order_id))
    total = row["total_eur"]
    net = round(total / 1.2, 2)
    return (
        f"{row['invoice_id']} for {row['id']}: net {net:.2f} EUR + VAT {total - net:.2f} EUR"
        f" = {total:.2f} EUR, paid by {row['payment_method']}"
    )


def request_refund(order_id: OrderId, reason: str) -> str:
    """Refund a delivered order in full. Only when the customer asks for a refund; an order
    is refunded at most once."""
    reason = (reason or "").strip()
    if not reason:
        raise ValueError("give the reason for the refund, in the customer's words")
    key = current_idempotency_key()  # set in a run; the same when the call runs again
    with shop() as db:
        row = _scoped(db, _order(db, order_id))
        if row["refunded_eur"] is not None:
            if key is not None and _refunded_by(db, key) == row["id"]:  # this call did it
                return _refund_made(row["refunded_eur"], row["id"], reason)
            raise ValueError(
                f"order {row['id']} was already refunded ({row['refunded_eur']:.2f} EUR on"
                f" {row['refunded_at'][:10]}): do not refund it again"
            )
        if row["status"] != REFUNDABLE:
            raise ValueError(
                f"order {row['id']} is {row['status']}, not delivered: it cannot be refunded"
            )
        try:
            db.execute(
                "INSERT INTO refunds (order_id, amount_eur, reason, created_at)"
                " VALUES (?, ?, ?, ?)",
                (row["id"], row["total_eur"], reason[:500], datetime.now(UTC).isoformat()),
            )
        except sqlite3.IntegrityError as e:  # a concurrent refund of the same order won
            raise ValueError(
                f"order {row['id']} was already refunded: do not refund it again"
            ) from e
        if key is not None:  # in the same transaction as the refund: both or neither
            _refund_keys(db)
            db.execute("INSERT INTO refund_keys VALUES (?, ?)", (key, row["id"]))
    return _refund_made(row["total_eur"], row["id"], reason)


def _refund_made(amount: float, order: str, reason: str) -> str:
    return f"Refund of {amount:.2f} EUR for {order} recorded ({reason[:80]})."


def _refund_keys(db: sqlite3.Connection) -> None:
    """The table of refund calls' idempotency keys (made on first use, so that databases
    built before it existed get it too)."""
    db.execute(
        "CREATE TABLE IF NOT EXISTS refund_keys (idempotency_key TEXT PRIMARY KEY,"
        " order_id TEXT NOT NULL REFERENCES orders(id))"
    )


def _refunded_by(db: sqlite3.Connection, key: str) -> str | None:
    """The order that the refund call with this idempotency key refunded, if any."""
    _refund_keys(db)
    found = db.execute(
        "SELECT order_id FROM refund_keys WHERE idempotency_key = ?", (key,)
    ).fetchone()
    return None if found is None else str(found[0])


def refunds_of_customer(email: str) -> list[dict[str, object]]:
    """The refunds on record for the customer with this email address, oldest first."""
    with shop() as db:
        rows = db.execute(
            "SELECT r.order_id, r.amount_eur, r.reason, r.created_at FROM refunds r"
            " JOIN orders o ON o.id = r.order_id JOIN customers c ON c.id = o.customer_id"
            " WHERE lower(c.email) = lower(?) ORDER BY r.id",
            ((email or "").strip(),),
        ).fetchall()
    return [dict(row) for row in rows]


class Reply(BaseModel):
    """The agents' answer to the customer (a typed answer also keeps small models from
    answering in tool-call JSON)."""

    message: str = Field(max_length=400)
    """Bounded so that even a rambling small model's answer fits the agent's max_tokens."""
