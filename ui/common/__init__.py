"""What the console's screens share: self-sorting tables, the status lines."""
