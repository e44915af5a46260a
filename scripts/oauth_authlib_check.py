#!/usr/bin/env python3
"""Scope seen by a standard OAuth 2.0 client library (issue 12).

Uses authlib (PyPI) and requests, nothing written for Scope:

- reads the RFC 8414 discovery document and the minimal OpenID one;
- fetches a client-credentials token with client_secret_basic and with
  client_secret_post, from the discovered token endpoint, and uses it;
- validates the token through the discovered JWKS (EdDSA) and issuer;
- checks that a wrong secret is decoded as RFC 6749's ``invalid_client``.

Usage: oauth_authlib_check.py BASE_URL INIT_JSON
  BASE_URL   where ``scope serve`` listens, e.g. http://127.0.0.1:8080
  INIT_JSON  the output of ``scope init --json`` (org id, admin key, secret)

Prints one line per check and exits non-zero on the first failure. Never
prints a secret or a token.
"""

import json
import sys
import warnings

import requests
from authlib.integrations.requests_client import OAuth2Session, OAuthError

# authlib.jose still works and is what authlib ships; its successor is a
# separate package. Keep the output to the checks.
warnings.filterwarnings("ignore", message="authlib.jose module is deprecated")
from authlib.jose import JsonWebKey, JsonWebToken  # noqa: E402


def check(what, condition, detail=""):
    if not condition:
        print(f"FAILED: {what} {detail}".rstrip())
        sys.exit(1)
    print(f"ok: {what}")


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        sys.exit(2)
    base = sys.argv[1].rstrip("/")
    with open(sys.argv[2], encoding="utf-8") as f:
        init = json.load(f)
    client_id = init["api_key"]["key_id"]
    client_secret = init["api_key"]["secret"]

    meta = requests.get(f"{base}/.well-known/oauth-authorization-server", timeout=10).json()
    check("discovery: issuer is the server", meta.get("issuer") == base, meta.get("issuer", ""))
    check("discovery: client_credentials", "client_credentials" in meta.get("grant_types_supported", []))
    methods = meta.get("token_endpoint_auth_methods_supported", [])
    check("discovery: basic and post", {"client_secret_basic", "client_secret_post"} <= set(methods))
    oidc = requests.get(f"{base}/.well-known/openid-configuration", timeout=10).json()
    check("openid-configuration: same issuer and JWKS",
          oidc.get("issuer") == base and oidc.get("jwks_uri") == meta.get("jwks_uri"))
    token_url = meta["token_endpoint"]
    jwks = JsonWebKey.import_key_set(requests.get(meta["jwks_uri"], timeout=10).json())
    jwt = JsonWebToken(["EdDSA"])

    for method in ("client_secret_basic", "client_secret_post"):
        session = OAuth2Session(client_id, client_secret, token_endpoint_auth_method=method)
        token = session.fetch_token(token_url, grant_type="client_credentials")
        check(f"{method}: token issued", token.get("token_type", "").lower() == "bearer"
              and token.get("expires_in", 0) > 0)
        check(f"{method}: scope returned", token.get("scope") == "prompts:read prompts:write keys:admin",
              str(token.get("scope")))
        me = session.get(f"{base}/api/v1/me", timeout=10)
        check(f"{method}: token accepted by the Scope API", me.status_code == 200, str(me.status_code))
        claims = jwt.decode(token["access_token"], jwks,
                            claims_options={"iss": {"essential": True, "value": base}})
        claims.validate()
        check(f"{method}: token valid through the JWKS", claims.get("sub") == client_id)

        narrowed = OAuth2Session(client_id, client_secret, token_endpoint_auth_method=method,
                                 scope="prompts:read").fetch_token(token_url, grant_type="client_credentials")
        check(f"{method}: narrowed scope", narrowed.get("scope") == "prompts:read", str(narrowed.get("scope")))

        wrong = client_secret[:-1] + ("y" if client_secret.endswith("x") else "x")
        try:
            OAuth2Session(client_id, wrong, token_endpoint_auth_method=method).fetch_token(
                token_url, grant_type="client_credentials")
            check(f"{method}: wrong secret refused", False)
        except OAuthError as e:
            check(f"{method}: wrong secret decoded as invalid_client", e.error == "invalid_client", str(e.error))

    print("authlib check: all passed")


if __name__ == "__main__":
    main()
