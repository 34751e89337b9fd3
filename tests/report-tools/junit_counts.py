"""Reads a JUnit XML file with junitparser, as CI systems read one, and prints what it holds
as JSON: the suites' counts and every case with its result."""

import json
import sys

from junitparser import Failure, JUnitXml

xml = JUnitXml.fromfile(sys.argv[1])
cases = []
for suite in xml:
    for case in suite:
        failures = [r for r in case.result if isinstance(r, Failure)]
        cases.append(
            {
                "suite": suite.name,
                "classname": case.classname,
                "name": case.name,
                "failures": [{"type": f.type, "message": f.message, "text": f.text} for f in failures],
                "system_out": case.system_out,
            }
        )
print(
    json.dumps(
        {
            "tests": xml.tests,
            "failures": xml.failures,
            "errors": xml.errors,
            "cases": cases,
        }
    )
)
