"""The alert queue: open alerts, most urgent first, and acknowledging them."""
