"""A minimal agentstore REST client: the standard library only, so the examples need no pip.

The worked examples beside this file import it; copy it into a project as it is.

    from agentstore_client import Client, AgentstoreError
    api = Client()                       # AGENTSTORE_URL, AGENTSTORE_API_KEY
    session = api.post("/v1/sessions", {"kind": "task"})
"""

import json
import os
import subprocess
import urllib.error
import urllib.parse
import urllib.request


class AgentstoreError(Exception):
    """A non-2xx answer. `code` is the server's stable error code, e.g. "not_found"."""

    def __init__(self, status, code, message):
        super().__init__(f"HTTP {status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class Client:
    """One server and one API key."""

    def __init__(self, base_url=None, api_key=None, timeout=30):
        self.base_url = (base_url or os.environ.get("AGENTSTORE_URL", "http://127.0.0.1:8080")).rstrip("/")
        self.api_key = api_key if api_key is not None else os.environ.get("AGENTSTORE_API_KEY", "")
        self.timeout = timeout

    def request(self, method, path, body=None, query=None, headers=None):
        """Sends one request; returns the decoded JSON answer (None for 204 No Content)."""
        url = self.base_url + path
        if query:
            pairs = [(k, v) for k, v in query.items() if v is not None]
            url += "?" + urllib.parse.urlencode(pairs, doseq=True)
        all_headers = {"Authorization": f"Bearer {self.api_key}", "Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            # The server refuses a body without this header (415 unsupported_media_type).
            all_headers["Content-Type"] = "application/json"
        all_headers.update(headers or {})
        req = urllib.request.Request(url, data=data, headers=all_headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                err = json.loads(raw)
                code, message = err["code"], err["message"]
            except (ValueError, KeyError, TypeError):
                # Not the server's own error body: a proxy in between, for instance.
                code, message = f"http_{e.code}", raw.decode("utf-8", "replace")[:200]
            raise AgentstoreError(e.code, code, message) from None
        if not raw:
            return None
        text = raw.decode("utf-8")
        try:
            return json.loads(text)
        except ValueError:
            return text  # /metrics answers in the Prometheus text format

    def get(self, path, **query):
        return self.request("GET", path, query=query)

    def post(self, path, body=None, **query):
        return self.request("POST", path, body if body is not None else {}, query=query)

    def put(self, path, body=None, **query):
        return self.request("PUT", path, body if body is not None else {}, query=query)

    def patch(self, path, body=None, **query):
        return self.request("PATCH", path, body if body is not None else {}, query=query)

    def delete(self, path, **query):
        return self.request("DELETE", path, query=query)

    def expect_error(self, code, method, path, body=None, **query):
        """Sends a request that must fail with the stable error `code`; returns the error."""
        try:
            self.request(method, path, body, query=query)
        except AgentstoreError as e:
            assert e.code == code, f"{method} {path}: expected {code}, got {e}"
            return e
        raise AssertionError(f"{method} {path}: expected the error {code}, got a success")


def cli(*args, data_dir=None, check=True, timeout=None):
    """Runs the `agentstore` command line (AGENTSTORE_BIN, else `agentstore` on PATH) with
    `--json`; returns its decoded output. Admin work without a REST route (backup, verify,
    migrate) goes through it, as an operator would. `timeout` (seconds) bounds the run:
    past it, subprocess.TimeoutExpired is raised."""
    binary = os.environ.get("AGENTSTORE_BIN", "agentstore")
    argv = [binary, "--json"]
    data_dir = data_dir or os.environ.get("AGENTSTORE_DATA_DIR")
    if data_dir:
        argv += ["--data-dir", data_dir]
    argv += [str(a) for a in args]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stderr}")
    out = done.stdout.strip()
    try:
        return json.loads(out) if out else None
    except ValueError:
        return out
