"""Waiting for new mail, for `llmflow watch`: IMAP IDLE where the server offers it, else a
plain wait after which the caller looks again (polling)."""

from __future__ import annotations

import re
import select
import ssl
import time

from .imap_connection import Mailbox, open_mailbox
from .mailbox_source import MailboxSource


def wait_for_new_mail(box: Mailbox, timeout_s: float, since_uidnext: int) -> bool:
    """Wait for new mail in the selected mailbox: IMAP IDLE where the server offers it,
    else a plain wait (the caller polls). True when new mail arrived."""
    if box.uidnext and box.uidnext != since_uidnext:
        return True
    if "IDLE" not in box.conn.capabilities:
        time.sleep(timeout_s)
        return False
    box.conn.send(b"LFIDLE IDLE\r\n")
    if not box.conn.readline().startswith(b"+"):
        return False
    sock = box.conn.socket()
    deadline = time.monotonic() + timeout_s
    while (left := deadline - time.monotonic()) > 0:
        pending = isinstance(sock, ssl.SSLSocket) and sock.pending() > 0
        if not pending and not select.select([sock], [], [], left)[0]:
            break
        line = box.conn.readline()
        if not line:
            break
        if re.match(rb"\* \d+ (EXISTS|RECENT)", line):
            return True
    return False


def wait_for_mail(source: MailboxSource, timeout_s: float, since_uidnext: int) -> bool:
    """Wait up to `timeout_s` for new mail (IDLE, else a plain wait); True when some came."""
    with open_mailbox(source) as box:
        box.select(source.mailbox, readonly=True)
        return wait_for_new_mail(box, timeout_s, since_uidnext)
