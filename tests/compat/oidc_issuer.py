"""A real OpenID Connect issuer for the compat tests, shaped like GitHub Actions' token service.

It listens on 127.0.0.1 (a free port, `http.server` in a thread) and serves
- `/.well-known/openid-configuration`: `issuer` (its base URL, `http://127.0.0.1:PORT`) and `jwks_uri`;
- `/.well-known/jwks`: its public keys, one RSA key (RS256) and one P-256 key (ES256),
generated with `cryptography` when the issuer is made. `mint()` signs GitHub-Actions-shaped ID tokens
(`sub repo:OWNER/REPO:ref:refs/heads/BRANCH`, `aud sts.amazonaws.com`, repository, ref, sha, workflow,
run_id, …) and has knobs for the tokens a verifier must refuse: expired, another audience, signed by a
key the issuer does not publish (under a published `kid`), `alg: none` with an empty signature.

`silent=True` makes an issuer that accepts connections and never answers (a stalled identity provider).
Every request is recorded in `requests` (method, path), so a test can see what the verifier fetched.
"""

from __future__ import annotations

import base64
import http.server
import json
import os
import socket
import threading
import time
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

GITHUB_AUDIENCE = "sts.amazonaws.com"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_json(value: dict) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def _uint(n: int, size: int | None = None) -> bytes:
    size = size or max(1, (n.bit_length() + 7) // 8)
    return n.to_bytes(size, "big")


@dataclass
class SigningKey:
    """A private key with its JWK `kid`; `alg` is RS256 (RSA) or ES256 (P-256)."""

    kid: str
    alg: str
    private: object

    @classmethod
    def rsa(cls, kid: str) -> "SigningKey":
        return cls(kid, "RS256", rsa.generate_private_key(public_exponent=65537, key_size=2048))

    @classmethod
    def p256(cls, kid: str) -> "SigningKey":
        return cls(kid, "ES256", ec.generate_private_key(ec.SECP256R1()))

    def sign(self, signing_input: bytes) -> bytes:
        if self.alg == "RS256":
            return self.private.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        # JWS ES256 is the raw r || s (32 bytes each), not the DER that cryptography returns.
        r, s = decode_dss_signature(self.private.sign(signing_input, ec.ECDSA(hashes.SHA256())))
        return _uint(r, 32) + _uint(s, 32)

    def public_jwk(self) -> dict:
        if self.alg == "RS256":
            numbers = self.private.public_key().public_numbers()
            return {"kty": "RSA", "alg": "RS256", "use": "sig", "kid": self.kid,
                    "n": b64url(_uint(numbers.n)), "e": b64url(_uint(numbers.e))}
        numbers = self.private.public_key().public_numbers()
        return {"kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": self.kid,
                "x": b64url(_uint(numbers.x, 32)), "y": b64url(_uint(numbers.y, 32))}


@dataclass
class OidcIssuer:
    """A GitHub-Actions-like token issuer on 127.0.0.1. Use as a context manager, or start()/stop()."""

    silent: bool = False
    rsa_key: SigningKey = field(default_factory=lambda: SigningKey.rsa(f"rsa-{os.urandom(4).hex()}"))
    ec_key: SigningKey = field(default_factory=lambda: SigningKey.p256(f"ec-{os.urandom(4).hex()}"))
    port: int = 0
    requests: list = field(default_factory=list)
    _server: http.server.ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None
    _stopping: threading.Event = field(default_factory=threading.Event)
    _rogue: SigningKey | None = None

    # -- addresses ----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The issuer URL: a token's `iss`, and the `Url` of its IAM OIDC provider."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def host(self) -> str:
        """The URL without its scheme: what IAM shows, puts in the provider ARN and uses as the
        prefix of the federated condition keys (`127.0.0.1:PORT:sub`)."""
        return f"127.0.0.1:{self.port}"

    @property
    def jwks_uri(self) -> str:
        return f"{self.url}/.well-known/jwks"

    def discovery_document(self) -> dict:
        return {
            "issuer": self.url,
            "jwks_uri": self.jwks_uri,
            "subject_types_supported": ["public", "pairwise"],
            "response_types_supported": ["id_token"],
            "claims_supported": ["sub", "aud", "exp", "iat", "iss", "jti", "nbf", "ref", "sha", "repository",
                                 "repository_owner", "run_id", "workflow", "actor", "event_name",
                                 "job_workflow_ref"],
            "id_token_signing_alg_values_supported": ["RS256", "ES256"],
            "scopes_supported": ["openid"],
        }

    def jwks(self) -> dict:
        return {"keys": [self.rsa_key.public_jwk(), self.ec_key.public_jwk()]}

    # -- server -------------------------------------------------------------------------------

    def start(self) -> "OidcIssuer":
        issuer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                issuer.requests.append(("GET", self.path))
                if issuer.silent:
                    # Hold the connection open without a byte of answer until the issuer stops.
                    issuer._stopping.wait(60)
                    return
                routes = {
                    "/.well-known/openid-configuration": issuer.discovery_document,
                    "/.well-known/jwks": issuer.jwks,
                }
                route = routes.get(self.path.split("?", 1)[0])
                if route is None:
                    self._send(404, {"message": "Not Found"})
                else:
                    self._send(200, route())

            def _send(self, status: int, doc: dict) -> None:
                body = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format, *args) -> None:  # noqa: A002 (http.server's signature)
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"oidc-issuer-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the listening socket: the port then refuses connections."""
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> "OidcIssuer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- tokens -------------------------------------------------------------------------------

    def github_claims(self, repository: str = "acme/shop", ref: str = "refs/heads/main", *,
                      audience: str | list[str] = GITHUB_AUDIENCE, now: int | None = None,
                      lifetime: int = 300) -> dict:
        """The claims GitHub Actions puts in a job's ID token (for a push to `ref`): `nbf` 10 minutes
        before `iat`, `exp` `lifetime` seconds after it."""
        now = int(time.time()) if now is None else now
        owner = repository.split("/", 1)[0]
        run_id = str(int.from_bytes(os.urandom(4), "big"))
        return {
            "jti": os.urandom(16).hex(),
            "sub": f"repo:{repository}:ref:{ref}",
            "aud": audience,
            "ref": ref,
            "sha": os.urandom(20).hex(),
            "repository": repository,
            "repository_owner": owner,
            "repository_visibility": "private",
            "run_id": run_id,
            "run_number": "7",
            "run_attempt": "1",
            "actor": "octocat",
            "workflow": "deploy",
            "event_name": "push",
            "ref_type": "branch",
            "job_workflow_ref": f"{repository}/.github/workflows/deploy.yml@{ref}",
            "runner_environment": "github-hosted",
            "iss": self.url,
            "nbf": now - 600,
            "iat": now,
            "exp": now + lifetime,
        }

    def mint(self, repository: str = "acme/shop", ref: str = "refs/heads/main", *,
             alg: str = "RS256", audience: str | list[str] = GITHUB_AUDIENCE, expired: bool = False,
             other_key: bool = False, alg_none: bool = False, issuer: str | None = None,
             claims: dict | None = None) -> str:
        """A compact JWS ID token.

        - `alg`: "RS256" (the RSA key) or "ES256" (the P-256 key);
        - `audience`: the `aud` claim (a string or a list);
        - `expired`: issued an hour ago, expired 55 minutes ago;
        - `other_key`: signed by an RSA key the issuer does not publish, under the published RSA `kid`;
        - `alg_none`: header `{"alg": "none"}` and an empty signature (`header.claims.`);
        - `issuer`: another `iss`; `claims`: extra or replaced claims.
        """
        now = int(time.time())
        body = self.github_claims(repository, ref, audience=audience, now=now - 3600 if expired else now)
        if issuer is not None:
            body["iss"] = issuer
        body.update(claims or {})
        if alg_none:
            return f"{b64url_json({'alg': 'none', 'typ': 'JWT'})}.{b64url_json(body)}."
        key = {"RS256": self.rsa_key, "ES256": self.ec_key}[alg]
        signer = key
        if other_key:
            if alg != "RS256":
                raise ValueError("other_key is implemented for RS256")
            if self._rogue is None:
                self._rogue = SigningKey.rsa(key.kid)
            signer = self._rogue
        header = {"alg": key.alg, "kid": key.kid, "typ": "JWT", "x5t": b64url(os.urandom(20))}
        signing_input = f"{b64url_json(header)}.{b64url_json(body)}"
        return f"{signing_input}.{b64url(signer.sign(signing_input.encode()))}"


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _decode_part(token: str, index: int) -> dict:
    part = token.split(".")[index]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def decode_header(token: str) -> dict:
    """The JOSE header of a compact JWS, unverified (for assertions)."""
    return _decode_part(token, 0)


def decode_claims(token: str) -> dict:
    """The claims of a compact JWS, unverified (for assertions)."""
    return _decode_part(token, 1)
