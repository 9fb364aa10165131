"""Serving: the OpenAI-compatible HTTP API (api.py), dynamic batching (batching.py),
request image handling (inputs.py) and the web page (web.py, static/index.html)."""
