#!/usr/bin/env python3
"""Keelson's db-init Job: create the databases, the user and its grants in MariaDB.

Safe to run again: every statement is idempotent, and the user's password is set on every run, so a
rotated password (a new Job, since the Job's Secret identity changed) reaches MariaDB.
Input comes from the environment only, so no password is on a command line.
"""
import os
import sys
import time

import pymysql

CONNECT_FOR_SECONDS = 300


def env(name):
    value = os.environ.get(name, "")
    if not value:
        sys.exit(f"db-init: {name} is not set")
    return value


def connect(host, port, user, password):
    deadline = time.monotonic() + CONNECT_FOR_SECONDS
    while True:
        try:
            return pymysql.connect(host=host, port=port, user=user, password=password, connect_timeout=10)
        except pymysql.err.OperationalError as error:
            if time.monotonic() > deadline:
                sys.exit(f"db-init: cannot connect to {host}:{port} as {user}: {error}")
            print(f"db-init: waiting for {host}:{port}: {error}", flush=True)
            time.sleep(5)


def main():
    host, port = env("DB_HOST"), int(env("DB_PORT"))
    names = [n for n in env("DB_NAMES").split(",") if n]
    user, password = env("DB_USER"), env("DB_PASSWORD")
    connection = connect(host, port, env("DB_ADMIN_USER"), env("DB_ADMIN_PASSWORD"))
    with connection.cursor() as cursor:
        # Database names are checked by Keelson (letters, digits, `_`): safe to quote with backticks.
        for name in names:
            cursor.execute(f"CREATE DATABASE IF NOT EXISTS `{name}`")
            print(f"db-init: database {name} exists", flush=True)
        cursor.execute("CREATE USER IF NOT EXISTS %s@'%%' IDENTIFIED BY %s", (user, password))
        cursor.execute("ALTER USER %s@'%%' IDENTIFIED BY %s", (user, password))
        for name in names:
            cursor.execute(f"GRANT ALL PRIVILEGES ON `{name}`.* TO %s@'%%'", (user,))
        print(f"db-init: user {user} holds all privileges on {', '.join(names)}", flush=True)
    connection.commit()
    connection.close()


if __name__ == "__main__":
    main()
