"""Request scope: one connection, one transaction, the caller's role and claims."""
