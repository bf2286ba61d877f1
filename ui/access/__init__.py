"""Who is at the console: signing in."""
