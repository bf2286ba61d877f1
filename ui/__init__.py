"""PySide6 windows, widgets and item models of the console."""
