"""Validate the OpenAPI document at $AGENTRY_URL/openapi.json as OpenAPI 3.1."""
import json
import os
import urllib.request

from openapi_spec_validator import validate
from openapi_spec_validator.validation import OpenAPIV31SpecValidator

with urllib.request.urlopen(os.environ["AGENTRY_URL"] + "/openapi.json") as answer:
    document = json.load(answer)
assert document["openapi"].startswith("3.1"), document["openapi"]
validate(document, cls=OpenAPIV31SpecValidator)
print("sdk ok", len(document["paths"]), "paths")
