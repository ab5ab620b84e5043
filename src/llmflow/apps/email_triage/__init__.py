"""The email-triage workflow (the main job) and its sample inbox."""

from ...inputs.email import Email, RawEmail, load_inbox, parse_email
from .workflow import SAMPLE_INBOX, Classification, Extraction, Triage, build

__all__ = [
    "SAMPLE_INBOX",
    "Classification",
    "Email",
    "Extraction",
    "RawEmail",
    "Triage",
    "build",
    "load_inbox",
    "parse_email",
]
