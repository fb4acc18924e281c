"""The console front end: the same service as Slack, rendered as terminal text."""
