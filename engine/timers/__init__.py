"""Durable deadlines: production calendar, deadline arithmetic, timer runner and worker."""
