"""What each messaging platform's account needs: the settings and secrets by platform,
and the optional settings any account may have. Kept apart from
``accord.channels.connectors.accounts`` (HTTP clients, SQLAlchemy) so that the command
line can name the platforms in its help without loading them."""

from __future__ import annotations

FIELDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # platform: (settings it needs, secrets it needs)
    "whatsapp": (("phone_number_id",), ("app_secret", "verify_token", "access_token")),
    "messenger": (("page_id",), ("app_secret", "verify_token", "access_token")),
    "instagram": (("page_id",), ("app_secret", "verify_token", "access_token")),
    "telegram": ((), ("bot_token", "secret_token")),
    "sms": (("account_sid", "from_number"), ("auth_token",)),
    "whatsapp-twilio": (("account_sid", "from_number"), ("auth_token",)),
    "x": (("user_id",), ("consumer_secret", "user_token")),
}
OPTIONAL = ("api_base", "webhook_url", "status_callback", "language")
