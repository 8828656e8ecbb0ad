"""schemathesis hooks for scripts/conformance.sh (SCHEMATHESIS_HOOKS).

Three refusals are by design and cannot be stated in OpenAPI, so they are
not counted as "a schema-valid request rejected" (ST202); every other
failure is kept:

- a pagination cursor is an opaque token the server signs
  (meta.next_cursor), valid only for the query it was made for, and it
  excludes `page`: a fuzzer can only make cursors up, and the server
  refuses them (400 naming `cursor`);
- a limit on a combination of parameters (`page` times `limit` within
  limits.max_offset, rows with their embeds within limits.max_answer_rows):
  400 `limit-exceeded` (or 414 for a URL beyond limits.max_url_bytes),
  naming the limit (conformance.sh raises the limits
  it can, so that such requests still reach the database);
- an integer field given as a float beyond 2^53 (4.6e18): JSON Schema calls
  it an integer, but a double that large does not say which integer was
  meant (I-JSON, RFC 7493 §2.2), so brisk refuses it (422).

brisk's own tests cover each of these against real queries.
"""

import json

import schemathesis


@schemathesis.hook
def filter_failure(ctx, failure, case, response):
    if failure.code != "ST202" or response.status_code not in (400, 414, 422):
        return True
    try:
        problem = json.loads(response.content)
    except ValueError:
        return True
    details = [error.get("detail", "") for error in problem.get("errors", [])]
    named = {error.get("parameter") for error in problem.get("errors", [])}
    made_up_cursor = bool(named) and named <= {"cursor", "page"} and "cursor" in (case.query or {})
    over_a_limit = problem.get("type", "").endswith(("/limit-exceeded", "/uri-too-long"))
    huge_float = bool(details) and all("takes a whole number that fits 64 bits" in d for d in details)
    return not (made_up_cursor or over_a_limit or huge_float)
