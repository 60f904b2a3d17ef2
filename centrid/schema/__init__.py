"""What the database holds and allows: the tables, the security declared beside
each one, the renderer that turns declarations into migration SQL, and the drift
check that compares a live database with them."""
