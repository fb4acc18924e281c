"""The shared kernel: what the bot and the workers both import (stdlib and PyYAML only)."""
