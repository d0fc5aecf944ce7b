"""Federation: node identity, invitations, signed requests and case sync between nodes."""
