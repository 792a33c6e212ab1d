"""Helpers shared by the generator's tests: services, processes, rendering."""
