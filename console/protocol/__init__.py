"""The monitoring backend protocol (docs/protocol.md): wire schema, SSE framing, HTTP client."""
