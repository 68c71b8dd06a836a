"""The API's own check for schemathesis (loaded through SCHEMATHESIS_HOOKS by run.sh).

positive_data_acceptance (schemathesis.toml) lets a valid request be refused with 422 for rules
no JSON Schema can state — an unknown sku, a page token this listing did not issue. This check
keeps that from hiding a real mismatch: a 422 whose problem type is `validation` says the API
refused a value by a rule the document states, so the document and the API disagree.
"""

import schemathesis

VALIDATION = "https://ordexa.io/problems/validation"


@schemathesis.check
def valid_data_passes_validation(ctx, response, case):
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive or response.status_code != 422:
        return None
    # A positive case may still carry one negative part (coverage probes): only wholly valid
    # requests count.
    if any(component.mode.is_negative for component in meta.components.values()):
        return None
    try:
        problem = response.json()
    except ValueError:
        return None
    if isinstance(problem, dict) and problem.get("type") == VALIDATION:
        raise AssertionError(
            "A request valid by the document was refused as invalid "
            f"(the document and the API disagree): {problem.get('detail')}"
        )
    return None
