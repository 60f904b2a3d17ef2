"""Centrid data layer: tables -> security -> request scope -> API."""
