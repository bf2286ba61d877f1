"""The status board: one row per wearer, no coordinates."""
