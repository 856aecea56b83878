"""Write a new alembic revision holding only what the models add beyond the current heads.

    python scripts/new_migration.py 0101_knowledge "knowledge base tables" [--parent 0001_foundation]

Features branch from 0001_foundation (--parent), so each feature's revision stands on its own.

It migrates a scratch SQLite database to the current heads, autogenerates the
difference against the models (every module in bot.storage.migrate.MODEL_MODULES)
and writes migrations/versions/<rev_id>.py. Read the result before committing.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from alembic import command
from sqlalchemy import create_engine

from bot.storage.migrate import MIGRATIONS_DIR, alembic_config, target_metadata


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("rev_id", help="revision id, also the file name, e.g. 0101_knowledge")
    ap.add_argument("message")
    ap.add_argument("--parent", default=None, help="down revision (default: the single current head)")
    args = ap.parse_args()
    target_metadata()
    with tempfile.TemporaryDirectory() as tmp:
        engine = create_engine(f"sqlite:///{tmp}/scratch.db")
        with engine.begin() as conn:
            command.upgrade(alembic_config(conn), "heads")
        with engine.begin() as conn:
            command.revision(
                alembic_config(conn), message=args.message, autogenerate=True, rev_id=args.rev_id,
                head=args.parent or "head", splice=bool(args.parent),  # a parent may have children already
            )
    versions = MIGRATIONS_DIR / "versions"
    for f in versions.glob(f"{args.rev_id}_*.py"):
        target = versions / f"{args.rev_id}.py"
        text = f.read_text().replace("astext_type=Text()", "astext_type=sa.Text()")
        target.write_text(text)
        f.unlink()
        print(f"wrote {target.relative_to(Path.cwd()) if target.is_relative_to(Path.cwd()) else target}")


if __name__ == "__main__":
    main()
