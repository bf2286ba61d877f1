"""The reference monitoring backend: a simulated fleet served over the real protocol.

Used for training, demos, as the console's embedded default, and by the tests.
"""
