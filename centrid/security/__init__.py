"""Declarations of what each table allows, and their rendering to SQL."""
