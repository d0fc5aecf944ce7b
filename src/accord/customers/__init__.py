"""Who the customers are: node-private records, identities and the single customer view."""
