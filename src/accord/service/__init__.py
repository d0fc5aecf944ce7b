"""Application services: each command checks its input, then makes one change in one
transaction through the store. HTTP, CLI and channels call these; they call the core."""
