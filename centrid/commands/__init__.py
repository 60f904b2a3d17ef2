"""Commands of the `centrid` Piccolo app (`piccolo centrid ...`)."""
