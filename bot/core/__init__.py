"""The core: grammar, policy, approvals, jobs, queueing, audit and the service; no Slack, no HTTP, no Docker."""
