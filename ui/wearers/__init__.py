"""The wearer view: one wearer, with a tab per capability."""
