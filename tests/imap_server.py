"""A real IMAP server for tests: Dovecot (from the OS packages: `apt-get install
dovecot-imapd`) started with a throwaway configuration in a temporary folder, IMAPS on a free
localhost port with a self-signed certificate, one user; stopped and removed afterwards, even
when the test fails. Tests that need it skip, naming the install line, when it is missing."""

from __future__ import annotations

import contextlib
import getpass
import imaplib
import os
import pwd
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
USER = "alice@example.test"
PASSWORD = "s3cret-app-password"
INSTALL = "apt-get install dovecot-imapd openssl"


def missing() -> str | None:
    """Why the server cannot run here, or None."""
    if not Path(DOVECOT).is_file():
        return f"Dovecot is not installed ({INSTALL})"
    if not shutil.which("openssl"):
        return f"openssl is not installed ({INSTALL})"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ImapServer:
    folder: Path
    port: int
    cert: Path
    proc: subprocess.Popen[bytes]

    def url(self, mailbox: str = "INBOX", query: str = "insecure=1") -> str:
        user = USER.replace("@", "%40")
        return f"imaps://{user}@127.0.0.1:{self.port}/{mailbox}" + (f"?{query}" if query else "")

    @contextlib.contextmanager
    def client(self) -> Iterator[imaplib.IMAP4_SSL]:
        """A second IMAP client, trusting the server's certificate, logged in."""
        context = ssl.create_default_context(cafile=str(self.cert))
        conn = imaplib.IMAP4_SSL("127.0.0.1", self.port, ssl_context=context, timeout=30)
        conn.login(USER, PASSWORD)
        try:
            yield conn
        finally:
            with contextlib.suppress(imaplib.IMAP4.error, OSError):
                conn.logout()

    def deliver(self, messages: list[bytes], mailbox: str = "INBOX") -> None:
        with self.client() as c:
            if mailbox != "INBOX":
                c.create(f'"{mailbox}"')
            for data in messages:
                typ, _ = c.append(f'"{mailbox}"', None, None, data)
                assert typ == "OK"

    def log(self) -> str:
        path = self.folder / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""


def _config(folder: Path, port: int) -> str:
    if os.geteuid() == 0:  # root: mail as the package's dovecot user, logins as dovenull
        mail = pwd.getpwnam("dovecot")
        users = ""
    else:  # anyone else: every process as this user
        mail = pwd.getpwuid(os.getuid())
        me = getpass.getuser()
        users = f"default_internal_user = {me}\ndefault_login_user = {me}\n"
    return f"""
base_dir = {folder}/run
state_dir = {folder}/state
log_path = {folder}/dovecot.log
{users}protocols = imap
listen = 127.0.0.1
ssl = required
ssl_cert = <{folder}/cert.pem
ssl_key = <{folder}/key.pem
auth_mechanisms = plain login
first_valid_uid = 1
first_valid_gid = 1
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {folder}/users
}}
userdb {{
  driver = static
  args = uid={mail.pw_uid} gid={mail.pw_gid} home={folder}/mail/%u
}}
mail_location = maildir:~/Maildir
namespace inbox {{
  inbox = yes
  mailbox Drafts {{
    special_use = \\Drafts
    auto = create
  }}
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    port = 0
  }}
  inet_listener imaps {{
    port = {port}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
}}
"""


@contextlib.contextmanager
def imap_server() -> Iterator[ImapServer]:
    """Start Dovecot in a temporary folder (skips the test when it is not installed); stop
    it and remove the folder after."""
    reason = missing()
    if reason:
        pytest.skip(reason)
    # Not under pytest's tmp_path: its folders are private to this user, and Dovecot's own
    # processes (its dovecot user, when the tests run as root) must read the configuration.
    folder = Path(tempfile.mkdtemp(prefix="llmflow-dovecot-"))
    folder.chmod(0o755)
    for sub in ("run", "state", "mail"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-keyout", str(folder / "key.pem"), "-out", str(folder / "cert.pem"),
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    (folder / "users").write_text(f"{USER}:{{PLAIN}}{PASSWORD}\n")
    if os.geteuid() == 0:
        mail = pwd.getpwnam("dovecot")
        os.chown(folder / "mail", mail.pw_uid, mail.pw_gid)
    port = free_port()
    (folder / "dovecot.conf").write_text(_config(folder, port))
    proc = subprocess.Popen(
        [DOVECOT, "-F", "-c", str(folder / "dovecot.conf")],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    server = ImapServer(folder=folder, port=port, cert=folder / "cert.pem", proc=proc)
    try:
        deadline = time.monotonic() + 20
        while True:
            if proc.poll() is not None:
                error = proc.stderr.read().decode() if proc.stderr else ""
                pytest.fail(f"Dovecot did not start: {error}\n{server.log()}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            if time.monotonic() > deadline:
                pytest.fail(f"Dovecot did not listen on port {port}:\n{server.log()}")
            time.sleep(0.1)
        yield server
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)  # its own session: the master and its children
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        if proc.stderr:
            proc.stderr.close()
        shutil.rmtree(folder, ignore_errors=True)
