"""Email: parse inbound mail (``parse``), and the mailbox, outbox and service around it."""
