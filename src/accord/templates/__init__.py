"""Templates: versioned case types that a new case starts from (``docs/templates.md``)."""
