"""The Slack adapter: Bolt app and listeners, Socket Mode, Web API client, user groups, relays, mrkdwn and blocks."""
