"""Booking API server."""
