#!/usr/bin/env python3
"""Keelson's rabbit-init Job: a RabbitMQ user, its vhost and full permissions on it.

Talks to the management API (PUT is idempotent there); sets the password on every run so that a rotated
password reaches RabbitMQ. Input comes from the environment only.
"""
import base64
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

CONNECT_FOR_SECONDS = 300


def env(name):
    value = os.environ.get(name, "")
    if not value:
        sys.exit(f"rabbit-init: {name} is not set")
    return value


def main():
    base = f"http://{env('RABBIT_HOST')}:{env('RABBIT_MANAGEMENT_PORT')}/api"
    token = base64.b64encode(f"{env('RABBIT_ADMIN_USER')}:{env('RABBIT_ADMIN_PASSWORD')}".encode()).decode()
    user, vhost = env("RABBIT_USER"), env("RABBIT_VHOST")
    quoted_user = urllib.parse.quote(user, safe="")
    quoted_vhost = urllib.parse.quote(vhost, safe="")

    def put(path, body):
        request = urllib.request.Request(
            f"{base}{path}",
            data=json.dumps(body).encode(),
            method="PUT",
            headers={"Authorization": f"Basic {token}", "Content-Type": "application/json"},
        )
        deadline = time.monotonic() + CONNECT_FOR_SECONDS
        while True:
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    return response.status
            except urllib.error.HTTPError as error:
                sys.exit(f"rabbit-init: PUT {path}: {error.code} {error.reason}")
            except (urllib.error.URLError, OSError) as error:
                if time.monotonic() > deadline:
                    sys.exit(f"rabbit-init: cannot reach {base}: {error}")
                print(f"rabbit-init: waiting for {base}: {error}", flush=True)
                time.sleep(5)

    put(f"/vhosts/{quoted_vhost}", {})
    put(f"/users/{quoted_user}", {"password": env("RABBIT_PASSWORD"), "tags": ""})
    put(f"/permissions/{quoted_vhost}/{quoted_user}", {"configure": ".*", "write": ".*", "read": ".*"})
    print(f"rabbit-init: user {user} has all permissions on vhost {vhost}", flush=True)


if __name__ == "__main__":
    main()
