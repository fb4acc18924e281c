"""The HTTP edge: the WSGI app (/slack/events, /healthz, /metrics) and the server that runs it."""
