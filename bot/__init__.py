"""regops bot: the Slack (and console) front end, policy and job relay."""
