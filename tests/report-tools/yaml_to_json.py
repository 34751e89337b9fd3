"""Prints a YAML document (stdin) as JSON, so that a test can look into it."""

import json
import sys

import yaml

print(json.dumps(yaml.safe_load(sys.stdin)))
