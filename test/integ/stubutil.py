"""The stub peers (test/stubs/stub.py) as a fixture: start one, point the server at it, steer it between cases.

    stub = Stub().start()
    srv = Server(db, env=stub.server_env()).start()
    stub.control(rate_limit_every=1)
    stub.stats()["llm_calls"]["titles"]
"""

import json
import os
import subprocess
import sys
import urllib.request

from harness import SOURCE_ROOT, _die_with_parent, at_exit, child_env, tap

STUB = os.path.join(SOURCE_ROOT, "test", "stubs", "stub.py")


class Stub:
    def __init__(self, *args):
        self.args = list(args)
        self.proc = None
        self.url = None

    def start(self, timeout=15):
        self.proc = subprocess.Popen([sys.executable, STUB, "--port", "0"] + self.args, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     env=child_env({"PYTHONDONTWRITEBYTECODE": "1"}), text=True,
                                     preexec_fn=_die_with_parent)
        at_exit(self.stop)
        line = self.proc.stdout.readline()
        if not line.startswith("STUB READY "):
            raise RuntimeError("stub did not start: %r" % line)
        self.url = line.split()[2].rstrip("/")
        return self

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def server_env(self, llm=True, search=True):
        """Environment for inkloop pointing its providers at this stub (private addresses allowed: the stub is
        on loopback)."""
        env = {"ALLOW_PRIVATE_URLS": "1"}
        if llm:
            env.update({"LLM_BASE_URL": self.url + "/v1", "LLM_API_KEY": "stub-key", "LLM_MODEL": "stub-model"})
        if search:
            env.update({"SEARCH_PROVIDER": "searxng", "SEARCH_URL": self.url})
        return env

    def _call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            raw = r.read()
            return json.loads(raw) if raw else None

    def control(self, **settings):
        return self._call("POST", "/_control", settings)

    def reset(self):
        self._call("POST", "/_control", {"reset": True})
        self._call("DELETE", "/_stats")

    def stats(self):
        return self._call("GET", "/_stats")

    def hook(self, name, **config):
        """Configures sink `name` and returns its URL."""
        if config:
            self._call("POST", "/hooks/%s/config" % name, config)
        return "%s/hooks/%s" % (self.url, name)

    def received(self, name):
        return self._call("GET", "/hooks/%s/received" % name)
