"""Accord beside other systems: outbound webhooks (``webhooks``) and their SSRF guard
(``ssrf``)."""
