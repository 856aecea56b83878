"""member search: an n-gram index of members' names, tags and notes, kept in step by triggers

Revision ID: 0405_member_search
Revises: 0404_report_indexes
Create Date: 2026-12-07 22:20:00

``member_search_gram`` holds, for every position of a member's name, of each of their tags and of
each note on them (A–Z folded to a–z), the characters from that position on, up to three, as one
integer (:func:`bot.tiers.store.gram_code`), with the member and the text it came from
(``source``: ``n`` the name, ``t<tag>`` a tag, ``o<note id>`` a note). Triggers on ``member``,
``member_tag`` and ``member_note`` write it in the same statement as the row (both databases), so
every write path keeps it in step. SQLite allows no ``WITH`` in a trigger: the positions 1…1024
come from ``member_search_position``.

On SQLite a migration that rebuilds one of the three tables (``batch_alter_table`` with a copy)
drops its triggers: it must create them again (``create_triggers``).
"""

# ruff: noqa: S608 - every statement here is made of this file's constants, no input

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0405_member_search'
down_revision: str | Sequence[str] | None = '0404_report_indexes'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

POSITIONS = 1024  # longer than any name (128), tag (64) or note (500) the bot stores
UPPER, LOWER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz"
# (table, its member column, its text column, the source of a row, as SQL on a row alias)
SOURCES = (("member", "id", "name", "'n'"), ("member_tag", "member_id", "tag", "'t' || {r}.tag"),
           ("member_note", "member_id", "text", "'o' || {r}.id"))


def _sqlite_gram(text: str) -> str:
    """The gram of ``text`` at position ``p.n`` (bot.tiers.store.gram_code of its A–Z-folded characters)."""
    f = f"lower({text})"
    return (f"unicode(substr({f}, p.n, 1)) * 4398046511104 + coalesce(unicode(substr({f}, p.n + 1, 1)), 0) * 2097152"
            f" + coalesce(unicode(substr({f}, p.n + 2, 1)), 0)")


def _sqlite_triggers(table: str, member: str, text: str, source: str) -> list[str]:
    def grams(r: str) -> str:
        return f"SELECT {_sqlite_gram(f'{r}.{text}')} FROM member_search_position p WHERE p.n <= length({r}.{text})"

    def delete(r: str) -> str:
        return (f"DELETE FROM member_search_gram WHERE member_id = {r}.{member} AND source = {source.format(r=r)}"
                f" AND gram IN ({grams(r)});")

    def insert(r: str) -> str:
        return (f"INSERT OR IGNORE INTO member_search_gram (gram, member_id, source)"
                f" SELECT {_sqlite_gram(f'{r}.{text}')}, {r}.{member}, {source.format(r=r)}"
                f" FROM member_search_position p WHERE p.n <= length({r}.{text});")

    columns = sorted({member, text, "tag" if table == "member_tag" else "id"})
    changed = " OR ".join(f"old.{c} IS NOT new.{c}" for c in columns)
    return [
        f"CREATE TRIGGER {table}_search_insert AFTER INSERT ON {table} BEGIN {insert('new')} END",
        f"CREATE TRIGGER {table}_search_update AFTER UPDATE OF {', '.join(columns)} ON {table}"
        f" WHEN {changed} BEGIN {delete('old')} {insert('new')} END",
        f"CREATE TRIGGER {table}_search_delete AFTER DELETE ON {table} BEGIN {delete('old')} END",
    ]


PG_GRAMS = f"""
CREATE FUNCTION member_search_grams(t text) RETURNS SETOF bigint LANGUAGE sql STABLE AS $$
  SELECT DISTINCT ascii(substr(f, p.n, 1))::bigint * 4398046511104
       + ascii(substr(f, p.n + 1, 1))::bigint * 2097152 + ascii(substr(f, p.n + 2, 1))
  FROM (SELECT translate(t, '{UPPER}', '{LOWER}') AS f) x
  JOIN member_search_position p ON p.n <= length(x.f)
$$"""


def _pg_triggers(table: str, member: str, text: str, source: str) -> list[str]:
    fn = f"{table}_search_sync"
    old, new = source.format(r="OLD"), source.format(r="NEW")
    body = f"""
CREATE FUNCTION {fn}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP <> 'INSERT' THEN
    DELETE FROM member_search_gram WHERE member_id = OLD.{member} AND source = {old}
      AND gram IN (SELECT member_search_grams(OLD.{text}));
  END IF;
  IF TG_OP <> 'DELETE' THEN
    INSERT INTO member_search_gram (gram, member_id, source)
      SELECT g, NEW.{member}, {new} FROM member_search_grams(NEW.{text}) g ON CONFLICT DO NOTHING;
  END IF;
  RETURN NULL;
END $$"""
    columns = sorted({member, text, "tag" if table == "member_tag" else "id"})
    changed = " OR ".join(f"OLD.{c} IS DISTINCT FROM NEW.{c}" for c in columns)
    return [body,
            f"CREATE TRIGGER {table}_search_write AFTER INSERT OR DELETE ON {table} FOR EACH ROW"
            f" EXECUTE FUNCTION {fn}()",
            f"CREATE TRIGGER {table}_search_update AFTER UPDATE ON {table} FOR EACH ROW WHEN ({changed})"
            f" EXECUTE FUNCTION {fn}()"]


def create_triggers(dialect: str) -> None:
    """The triggers that keep member_search_gram in step (again, after a table was rebuilt)."""
    make = _sqlite_triggers if dialect == "sqlite" else _pg_triggers
    for source in SOURCES:
        for statement in make(*source):
            op.execute(statement)


def backfill(dialect: str) -> list[str]:
    """The statements that index the rows already there (on SQLite sorted first: the index is written in order)."""
    if dialect == "sqlite":
        return [f"INSERT OR IGNORE INTO member_search_gram (gram, member_id, source)"
                f" SELECT {_sqlite_gram(f'r.{text}')}, r.{member}, {source.format(r='r')}"
                f" FROM {table} r JOIN member_search_position p ON p.n <= length(r.{text}) ORDER BY 1, 2, 3"
                for table, member, text, source in SOURCES]
    return [f"INSERT INTO member_search_gram (gram, member_id, source)"
            f" SELECT g, r.{member}, {source.format(r='r')} FROM {table} r,"
            f" LATERAL member_search_grams(r.{text}) g ON CONFLICT DO NOTHING"
            for table, member, text, source in SOURCES]


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.create_table('member_search_position',
    sa.Column('n', sa.Integer(), autoincrement=False, nullable=False),
    sa.PrimaryKeyConstraint('n', name=op.f('pk_member_search_position'))
    )
    op.create_table('member_search_gram',
    sa.Column('gram', sa.BigInteger(), nullable=False),
    sa.Column('member_id', sa.String(length=128), nullable=False),
    sa.Column('source', sa.String(length=80), nullable=False),
    sa.PrimaryKeyConstraint('gram', 'member_id', 'source', name=op.f('pk_member_search_gram')),
    sqlite_with_rowid=False
    )
    positions = sa.table('member_search_position', sa.column('n', sa.Integer()))
    op.bulk_insert(positions, [{"n": n} for n in range(1, POSITIONS + 1)])
    if dialect == "postgresql":
        op.execute(PG_GRAMS)
    for statement in backfill(dialect):
        op.execute(statement)
    create_triggers(dialect)
    with op.batch_alter_table('member', schema=None) as batch_op:
        batch_op.create_index('ix_member_activity_order', ['staff', sa.text('last_active_at DESC'), 'id'], unique=False)
        batch_op.create_index('ix_member_search_key', ['id', 'staff', 'last_active_at'], unique=False)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    with op.batch_alter_table('member', schema=None) as batch_op:
        batch_op.drop_index('ix_member_search_key')
        batch_op.drop_index('ix_member_activity_order')
    for table, *_ in SOURCES:
        if dialect == "sqlite":
            for when in ("insert", "update", "delete"):
                op.execute(f"DROP TRIGGER IF EXISTS {table}_search_{when}")
        else:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_search_write ON {table}")
            op.execute(f"DROP TRIGGER IF EXISTS {table}_search_update ON {table}")
            op.execute(f"DROP FUNCTION IF EXISTS {table}_search_sync()")
    if dialect == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS member_search_grams(text)")
    op.drop_table('member_search_gram')
    op.drop_table('member_search_position')
