"""The database_connection_limit fault's hog: opens database sessions until the server refuses one, then holds them
all, so every new connection the backend makes fails with the server's own "too many connections" error.

Run by the lab's supervisord (program ``dbhog``, never started at boot); stopping it releases every session.
"""

from __future__ import annotations

import os
import sys
import time

from lab.layout import DB_NAME, DB_PASSWORD, DB_PORT, DB_USER, MARIADB_PORT
from lab.render import DB_MAX_CONNECTIONS
from lab.topology import get as get_topology

HOLD_S = 3600


def _connect(database: str):
    if database == "mariadb":
        import pymysql

        return pymysql.connect(host="127.0.0.1", port=MARIADB_PORT, user=DB_USER, password=DB_PASSWORD,
                               database=DB_NAME, connect_timeout=2)
    import psycopg

    return psycopg.connect(f"host=127.0.0.1 port={DB_PORT} user=postgres dbname=postgres", connect_timeout=2)


def main() -> None:
    topo = get_topology(os.environ.get("GATEWATCH_LAB_TOPOLOGY"))
    held = []
    for _ in range(DB_MAX_CONNECTIONS + 5):  # MariaDB keeps one spare session for SUPER; bounded either way
        try:
            held.append(_connect(topo.database))
        except Exception as exc:  # noqa: BLE001 - the refusal is what we wait for; print it and hold
            print(f"dbhog: holding {len(held)} sessions; the next was refused: {exc}", flush=True)
            break
    else:
        print(f"dbhog: holding {len(held)} sessions and none was refused", flush=True)
    sys.stdout.flush()
    time.sleep(HOLD_S)


if __name__ == "__main__":
    main()
