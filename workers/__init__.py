"""regops workers: run registry jobs on a Docker host; never talk to Slack."""
