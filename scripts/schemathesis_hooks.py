"""Schemathesis hooks for scripts/schemathesis.sh.

The run authenticates with the organization's admin key. Schemathesis reuses
ids it saw in answers (`GET /api/v1/me`, the key list), so without this it
revokes or rotates (with `grace_seconds: 0`) that very key early on and
every later request is a 401 that tests nothing. Cases aimed at the run's
own key are dropped; every other key (those it creates) stays fair game.
"""

import os

import schemathesis

PROTECTED_KEY_ID = os.environ.get("SCOPE_PROTECTED_KEY_ID", "")


@schemathesis.hook
def filter_case(context, case):
    params = case.path_parameters or {}
    return not PROTECTED_KEY_ID or params.get("key_id") != PROTECTED_KEY_ID
