"""The shared kernel: what the bot and the workers both import (stdlib, PyYAML and croniter only)."""
