"""A mailbox's default size limits. Kept apart from ``accord.channels.email.mailboxes``
(SQLAlchemy, sealed secrets) so that ``accord mailbox add --help`` shows them without
loading the database toolkit."""

from __future__ import annotations

DEFAULT_MAX_ATTACHMENT = 25 * 1024 * 1024  # larger attachments stay in the raw mail
DEFAULT_MAX_MESSAGE = 64 * 1024 * 1024  # larger mail is refused (SMTP 552, exit 69)
