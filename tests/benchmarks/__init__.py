"""regops benchmarks (not pytest tests): run `bash tests/benchmarks/run.sh`; see ack.py and push.py."""
