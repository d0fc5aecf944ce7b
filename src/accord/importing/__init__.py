"""Import customers and cases from other help desks: CSV, Request Tracker, Zendesk.

Each source module turns an export into the neutral records of ``records``; ``writer``
stores them — customers as node-private records, each ticket as a case whose shared log
holds the public correspondence and whose internal notes hold the private comments —
remembering what every record became, so that importing the same export again changes
nothing and a later export adds only what is new. ``--dry-run`` does the whole import in
a transaction it rolls back and reports what would happen.
"""
