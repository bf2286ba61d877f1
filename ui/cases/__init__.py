"""Breach casework: the wearer view's Case tab, its timeline and its entries."""
