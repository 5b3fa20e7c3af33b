#!/usr/bin/env python3
"""Validates wire bodies against docs/openapi.json with an independent JSON Schema
implementation (the `jsonschema` package, Draft 2020-12), for tests/openapi.rs.

Usage: validate-wire.py OPENAPI.json BODIES.jsonl
Each line of BODIES is a body of POST /v1/messages. Prints one line per failure and
exits 1 when any body does not validate."""
import json
import sys

from jsonschema import Draft202012Validator
from referencing import Registry, Resource

with open(sys.argv[1], encoding="utf-8") as handle:
    document = json.load(handle)
# The schemas refer to one another as "#/components/schemas/NAME" within the document.
registry = Registry().with_resource(
    "urn:telepay:openapi",
    Resource.from_contents({"$schema": "https://json-schema.org/draft/2020-12/schema", **document}),
)
wire = {"$ref": "urn:telepay:openapi#/components/schemas/Wire"}
validator = Draft202012Validator(wire, registry=registry)
failures = 0
count = 0
with open(sys.argv[2], encoding="utf-8") as handle:
    for number, line in enumerate(handle, 1):
        count += 1
        body = json.loads(line)
        for error in validator.iter_errors(body):
            failures += 1
            print(f"body {number}: {error.json_path}: {error.message[:300]}")
print(f"{count} bodies, {failures} failures")
sys.exit(1 if failures else 0)
