"""`python -m inspection.health`: exit 0 while a scheduler holds the leader lock, 1 otherwise.

The container health check of the scheduler: it reads PUMPWATCH_API__DATABASE_URL like the scheduler.
"""

from __future__ import annotations

import sys

from sqlalchemy.exc import SQLAlchemyError

from inspection.leader import lock_held
from maintenance.db import make_engine
from pumpwatch.settings import Settings


def main() -> int:
    """0 when the leader lock is held, 1 when it is not or the database cannot be reached."""
    url = Settings().api.database_url
    if url is None:
        print("no PUMPWATCH_API__DATABASE_URL: the leader lock lives in PostgreSQL", file=sys.stderr)
        return 1
    engine = make_engine(url)
    try:
        held = lock_held(engine)
    except SQLAlchemyError as err:
        print(f"database unreachable: {type(err).__name__}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    print("leader lock held" if held else "no scheduler holds the leader lock", file=sys.stderr)
    return 0 if held else 1


if __name__ == "__main__":
    raise SystemExit(main())
