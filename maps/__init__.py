"""The map layer: local web pages in QtWebEngine, and the bridge that updates them live."""
