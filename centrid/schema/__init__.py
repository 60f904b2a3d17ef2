"""What the database holds and allows, each fact stated once: the registry of
tables (`tables.SECURITY`, each class with its security beside it), the roles,
the declaration vocabulary, the one renderer that turns declarations into SQL,
the planning of security migrations, and the drift check that replays the
renderer's statements to compare a live database with them."""
