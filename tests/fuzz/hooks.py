"""Checks the fuzzer adds to schemathesis' own (loaded through SCHEMATHESIS_HOOKS)."""

import schemathesis


@schemathesis.check
def errors_say_what_and_why(ctx, response, case):
    """Every 4xx/5xx body is {"error": {"code", "message", "field"?}}, whatever the route."""
    if response.status_code < 400 or case.method.upper() == "HEAD":
        return None
    # The batch results of /v1/events: 422 when no event was valid (documented).
    if case.path == "/v1/events" and response.status_code == 422:
        return None
    try:
        body = response.json()
    except Exception as e:  # noqa: BLE001 - any non-JSON body is the failure
        raise AssertionError(f"{response.status_code} answered without a JSON body: {e}")
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict) or not error.get("code") or not error.get("message"):
        raise AssertionError(f"{response.status_code} error without code and message: {body!r}")
    return None


@schemathesis.check
def no_database_text_in_errors(ctx, response, case):
    """500 bodies never echo Postgres' own words (they are logged under a request id)."""
    if response.status_code >= 500 and case.method.upper() != "HEAD":
        text = response.text
        for marker in ("SQLSTATE", "query failed", "ERROR 2", "ERROR 4", "syntax error at", "violates"):
            if marker in text:
                raise AssertionError(f"{response.status_code} body leaks database text ({marker!r}): {text[:300]}")
    return None
