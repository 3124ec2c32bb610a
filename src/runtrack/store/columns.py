"""The column types every table uses, and the metadata they belong to.

Kept apart from :mod:`runtrack.store.schema` (the tables) so that each stays
one concept; the schema re-exports :class:`ExactString`, which the migrations
import from there.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, DateTime, Integer, MetaData, String, Text
from sqlalchemy.dialects import mysql
from sqlalchemy.ext.compiler import compiles

from runtrack.store import dialects

__all__ = ["NAMING", "ExactString", "Id", "LongText", "Timestamp", "metadata"]

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING)

# Microsecond timestamps everywhere: MySQL/MariaDB DATETIME defaults to whole
# seconds, which would make heartbeats and windows collide. All values are
# naive UTC; the store converts at its edge.
Timestamp = DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
# SQLite only auto-increments an INTEGER PRIMARY KEY.
Id = BigInteger().with_variant(Integer(), "sqlite")
LongText = Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")


class ExactString(String):
    """``VARCHAR`` compared byte for byte on every database, as SQLite and
    PostgreSQL compare it. On MySQL/MariaDB it carries the binary NO PAD
    collation (:func:`dialects.exact_collation`): the server default folds
    case, accents and trailing spaces, so ``x:Cafe``, ``x:café`` and ``x:cafe ``
    would be one job there, one lease, one group. Every VARCHAR column is
    one; TEXT columns hold prose that is never compared, grouped or sorted."""


@compiles(ExactString, "mysql")
@compiles(ExactString, "mariadb")
def _exact_on_mysql(type_: ExactString, compiler: Any, **_kw: Any) -> str:
    return f"VARCHAR({type_.length}) COLLATE {dialects.exact_collation(compiler.dialect)}"
