"""Messaging platforms: WhatsApp Business Cloud, Messenger and Instagram, Telegram, Twilio
(SMS and WhatsApp), X direct messages — each one module with the same interface
(``base.Platform``): check a webhook exactly as the platform documents, turn it into the
inbound pipeline's messages and delivery receipts, and send through the platform's HTTP
API. ``service.Connectors`` ties them to accounts, the pipeline, the outbox and replies."""
