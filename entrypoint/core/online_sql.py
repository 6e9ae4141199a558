"""The SQL of the online forms (`online`): flags put where the scanner says, new statements, offending rows. Pure.

Nothing here looks at SQL as text. A chunk is cut into its statements at the
semicolons PostgreSQL's scanner finds after each statement pglast parsed; a
flag (` CONCURRENTLY`, ` NOT VALID`) goes after the token the scanner names,
every other byte as written, and the result is parsed again: it must be the
very statement it was, plus that flag, or the rewrite is refused (None). New
statements (a helper check, VALIDATE, ADD CONSTRAINT … USING INDEX) are parse
trees printed by pglast, which quotes identifiers where PostgreSQL needs it,
and parsed again where the printer could err.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
from collections.abc import Iterator, Sequence
from typing import Any

from entrypoint.core.sql import parse_chunk as parse_once

TableName = tuple[str | None, str]  # (schema or None for the search_path's, table), as the statement names it

HELPER_PREFIX = "entrypoint_nn_"  # the helper checks' names: this, then a hash of what they hold NOT NULL
_COMMENTS = frozenset({"SQL_COMMENT", "C_COMMENT"})
_OPEN, _CLOSE = frozenset({"ASCII_40", "ASCII_91"}), frozenset({"ASCII_41", "ASCII_93"})  # ( [ and ) ]
_COMMA, _SEMICOLON = "ASCII_44", "ASCII_59"


def fresh(sql: bytes) -> Any | None:
    """The one statement `sql` (a rewrite of ours) holds, freshly parsed (a tree ours to change), or None."""
    found = parse_once(sql).ast()
    return found[0] if found and len(found) == 1 else None


def deparse(node: Any) -> str:
    """`node` printed by pglast."""
    from pglast.stream import RawStream

    return str(RawStream()(node))


def ident(name: str) -> str:
    """`name` as PostgreSQL needs it written: quoted only where needed."""
    from pglast import ast

    return deparse(ast.ColumnRef(fields=(ast.String(sval=name),)))


def regclass(schema: str | None, name: str) -> str:
    """The text `to_regclass` reads as exactly this relation (quoted, so case and odd characters survive)."""
    return ".".join('"' + part.replace('"', '""') + '"' for part in (schema, name) if part is not None)


def key(range_var: Any) -> TableName:
    """(schema as written or None, name) of a RangeVar."""
    return (str(range_var.schemaname) if range_var.schemaname else None, str(range_var.relname))


def walk(node: Any) -> Iterator[Any]:
    """Every node under `node`, itself included."""
    from pglast import ast

    if isinstance(node, ast.Node):
        yield node
        for slot in getattr(type(node), "__slots__", ()):
            yield from walk(getattr(node, slot, None))
    elif isinstance(node, tuple | list):
        for item in node:
            yield from walk(item)


def columns(node: Any) -> frozenset[str]:
    """The columns an expression or index definition reads (the last field of each reference)."""
    from pglast import ast

    found = set()
    for inner in walk(node):
        fields = inner.fields or () if isinstance(inner, ast.ColumnRef) else ()
        if fields and isinstance(fields[-1], ast.String):
            found.add(str(fields[-1].sval))
        elif isinstance(inner, ast.IndexElem) and inner.name:
            found.add(str(inner.name))
    return frozenset(found)


def strings(node: Any) -> frozenset[str]:
    """Every name-like string in the tree (object names, column names, …)."""
    from pglast import ast

    return frozenset(str(n.sval) for n in walk(node) if isinstance(n, ast.String))


def pieces(chunk: bytes, raws: Sequence[Any]) -> list[bytes]:
    """The chunk cut after each statement's own semicolon: one piece a statement, together the chunk, byte for byte.

    A statement's comments go with it; a trailing comment with the last one.
    """
    from pglast import parser

    if len(raws) <= 1:
        return [chunk]
    text = chunk.decode("utf-8")
    semicolons = [token for token in parser.scan(text) if token.name == _SEMICOLON]
    cuts = [0]
    for raw in raws[:-1]:
        end = raw.stmt_location + raw.stmt_len  # pglast's places are characters; the semicolon is not counted
        cuts.append(next((s.end + 1 for s in semicolons if s.start >= end), end))
    cuts.append(len(text))
    return [text[a:b].encode() for a, b in itertools.pairwise(cuts)]


def _tokens(text: str) -> list[Any]:
    from pglast import parser

    return [token for token in parser.scan(text) if token.name not in _COMMENTS]


def _insert(piece: bytes, text: str, places: Sequence[int], flag: bytes) -> bytes:
    """`piece` with `flag` inserted at each character place of its `text`, every other byte as written."""
    out = piece
    for place in sorted(places, reverse=True):
        cut = len(text[:place].encode())
        out = out[:cut] + flag + out[cut:]
    return out


def with_concurrently(piece: bytes, stmt: Any) -> bytes | None:
    """The piece with ` CONCURRENTLY` after its INDEX keyword, or None unless the result is the same index."""
    text = piece.decode("utf-8")
    tokens = _tokens(text)[:3]
    names = [token.name for token in tokens]
    position = 2 if names == ["CREATE", "UNIQUE", "INDEX"] else 1 if names[:2] == ["CREATE", "INDEX"] else 0
    if not position:
        return None
    rewritten = _insert(piece, text, [tokens[position].end + 1], b" CONCURRENTLY")  # the scanner's ends are inclusive
    again, before = fresh(rewritten), copy.deepcopy(stmt)
    if again is None or not getattr(again, "concurrent", False):
        return None
    again.concurrent = before.concurrent = False
    return rewritten if deparse(again) == deparse(before) else None


def _subcommand_ends(text: str) -> list[Any]:
    """The last token of each subcommand of an ALTER TABLE: they end at the commas outside any parentheses."""
    ends: list[Any] = []
    depth, last = 0, None
    for token in _tokens(text):
        if token.name in _OPEN:
            depth += 1
        elif token.name in _CLOSE:
            depth -= 1
        elif depth == 0 and token.name in {_COMMA, _SEMICOLON}:
            ends.append(last)
            if token.name == _SEMICOLON:
                return ends
            continue
        last = token
    return [*ends, last] if last is not None and (not ends or ends[-1] is not last) else ends


def with_not_valid(piece: bytes, stmt: Any, commands: Sequence[int]) -> bytes | None:
    """The ALTER TABLE piece with ` NOT VALID` after each of these subcommands, or None unless that is all it changes.

    The flag goes after the last token of each subcommand, comments and the semicolon left where they are.
    """
    text = piece.decode("utf-8")
    ends = _subcommand_ends(text)
    if len(ends) != len(stmt.cmds) or any(ends[n] is None for n in commands):
        return None
    rewritten = _insert(piece, text, [ends[n].end + 1 for n in commands], b" NOT VALID")
    again, before = fresh(rewritten), copy.deepcopy(stmt)
    if again is None or len(getattr(again, "cmds", None) or ()) != len(stmt.cmds):
        return None
    for n in commands:
        if not again.cmds[n].def_.skip_validation:
            return None
        again.cmds[n].def_.skip_validation = before.cmds[n].def_.skip_validation
        again.cmds[n].def_.initially_valid = before.cmds[n].def_.initially_valid
    return rewritten if deparse(again) == deparse(before) else None


def helper_name(schema: str | None, table: str, held: Sequence[str], purpose: str = "") -> str:
    """The helper check's name: HELPER_PREFIX and a hash of its table, the columns it holds and `purpose`.

    The same statement always gets the same name, so a resume finds the helper an earlier run added; a
    primary key's helper has its constraint as `purpose`, so it never shares a name with a SET NOT NULL's.
    """
    said = "\x00".join([schema or "", table, *held, purpose])
    return HELPER_PREFIX + hashlib.sha256(said.encode()).hexdigest()[:16]


def _alter(relation: Any, command: Any) -> bytes:
    """`ALTER TABLE <relation as written> <command>`, printed by pglast."""
    from pglast import ast
    from pglast.enums import ObjectType

    stmt = ast.AlterTableStmt(relation=copy.deepcopy(relation), cmds=(command,), objtype=ObjectType.OBJECT_TABLE)
    return deparse(stmt).encode()


def _command(subtype: str, **fields: Any) -> Any:
    from pglast import ast
    from pglast.enums import AlterTableType, DropBehavior

    return ast.AlterTableCmd(subtype=getattr(AlterTableType, subtype), behavior=DropBehavior.DROP_RESTRICT, **fields)


def helper_check(relation: Any, name: str, held: Sequence[str]) -> bytes:
    """`ALTER TABLE … ADD CONSTRAINT <name> CHECK (a IS NOT NULL AND …) NOT VALID`."""
    from pglast import ast
    from pglast.enums import BoolExprType, ConstrType, NullTestType

    tests = tuple(
        ast.NullTest(arg=ast.ColumnRef(fields=(ast.String(sval=column),)), nulltesttype=NullTestType.IS_NOT_NULL)
        for column in held
    )
    expr = tests[0] if len(tests) == 1 else ast.BoolExpr(boolop=BoolExprType.AND_EXPR, args=tests)
    check = ast.Constraint(
        contype=ConstrType.CONSTR_CHECK,
        conname=name,
        raw_expr=expr,
        skip_validation=True,
        initially_valid=False,
        is_enforced=True,  # pglast prints NOT ENFORCED unless told
    )
    return _alter(relation, _command("AT_AddConstraint", def_=check))


def validate(relation: Any, name: str) -> bytes:
    """`ALTER TABLE … VALIDATE CONSTRAINT <name>`."""
    return _alter(relation, _command("AT_ValidateConstraint", name=name))


def drop(relation: Any, name: str) -> bytes:
    """`ALTER TABLE … DROP CONSTRAINT <name>`."""
    return _alter(relation, _command("AT_DropConstraint", name=name))


def _options(options: Sequence[Any] | None) -> list[str]:
    return [deparse(option) for option in options or ()]


def unique_index(stmt: Any, constraint: Any) -> bytes | None:
    """The CREATE UNIQUE INDEX CONCURRENTLY a UNIQUE / PRIMARY KEY constraint stands on, named as it; None if unsure.

    The printed statement is parsed again and must say what the constraint does (pglast 8 prints NULLS NOT
    DISTINCT after WITH / TABLESPACE, where PostgreSQL refuses it: such a constraint stays as written).
    """
    from pglast import ast
    from pglast.enums import SortByDir, SortByNulls

    def element(name: str) -> Any:
        return ast.IndexElem(
            name=name, ordering=SortByDir.SORTBY_DEFAULT, nulls_ordering=SortByNulls.SORTBY_NULLS_DEFAULT
        )

    relation = copy.deepcopy(stmt.relation)
    relation.inh = True
    keys = [str(k.sval) for k in constraint.keys]
    including = [str(k.sval) for k in constraint.including or ()]
    index = ast.IndexStmt(
        idxname=constraint.conname,
        relation=relation,
        accessMethod="btree",
        indexParams=tuple(element(k) for k in keys),
        indexIncludingParams=tuple(element(k) for k in including) or None,
        options=constraint.options,
        tableSpace=constraint.indexspace,
        unique=True,
        concurrent=True,
        nulls_not_distinct=bool(constraint.nulls_not_distinct),
    )
    sql = deparse(index).encode()
    again = fresh(sql)
    same = (
        isinstance(again, ast.IndexStmt)
        and again.unique
        and again.concurrent
        and [e.name for e in again.indexParams or ()] == keys
        and [e.name for e in again.indexIncludingParams or ()] == including
        and bool(again.nulls_not_distinct) == bool(constraint.nulls_not_distinct)
        and again.tableSpace == constraint.indexspace
        and _options(again.options) == _options(constraint.options)
    )
    return sql if same else None


def using_index(stmt: Any) -> bytes:
    """The ALTER TABLE as `ADD CONSTRAINT <name> UNIQUE / PRIMARY KEY USING INDEX <name>` (DEFERRABLE kept)."""
    attach = copy.deepcopy(stmt)
    constraint = attach.cmds[0].def_
    constraint.indexname = constraint.conname
    constraint.keys = constraint.including = constraint.options = constraint.indexspace = None
    constraint.nulls_not_distinct = False
    return deparse(attach).encode()


def _table(relation: Any) -> str:
    plain = copy.deepcopy(relation)
    plain.inh = True
    return deparse(plain)


def duplicates(relation: Any, keys: Sequence[str], where: str = "", *, nulls_distinct: bool = True) -> str:
    """The key values more than one row holds, as a unique index compares them.

    NULLs never collide unless NULLS NOT DISTINCT. `keys` are SQL: identifiers quoted, expressions in parentheses.
    """
    conditions = [f"({where})"] if where else []
    if nulls_distinct:
        conditions += [f"{k} IS NOT NULL" for k in keys]
    condition = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    groups = ", ".join(str(n) for n in range(1, len(keys) + 1))
    return (
        f"SELECT {', '.join(keys)}, count(*) FROM {_table(relation)}{condition} GROUP BY {groups} HAVING count(*) > 1"
    )


def index_duplicates(stmt: Any) -> str:
    """`duplicates` for a CREATE UNIQUE INDEX: its keys (expressions too) and its WHERE."""
    keys = [f"({deparse(e.expr)})" if e.expr is not None else ident(str(e.name)) for e in stmt.indexParams]
    where = deparse(stmt.whereClause) if stmt.whereClause is not None else ""
    return duplicates(stmt.relation, keys, where, nulls_distinct=not stmt.nulls_not_distinct)


def missing_references(relation: Any, constraint: Any) -> str | None:
    """The rows whose key has no referenced row, as the foreign key's MATCH decides; None without its columns.

    MATCH SIMPLE (the default): a row with a NULL in its key passes. MATCH FULL: all NULL passes, some NULL
    fails. `REFERENCES t` alone means t's primary key, whose columns the text does not say.
    """
    if not constraint.pk_attrs:
        return None
    fk = [ident(str(a.sval)) for a in constraint.fk_attrs]
    pk = [ident(str(a.sval)) for a in constraint.pk_attrs]
    match = " AND ".join(f"parent.{p} = child.{f}" for p, f in zip(pk, fk, strict=True))
    missing = f"NOT EXISTS (SELECT 1 FROM {_table(constraint.pktable)} AS parent WHERE {match})"
    if constraint.fk_matchtype == "f" and len(fk) > 1:
        some = " OR ".join(f"child.{f} IS NOT NULL" for f in fk)
        condition = f"({some}) AND ({' OR '.join(f'child.{f} IS NULL' for f in fk)} OR {missing})"
    else:
        condition = " AND ".join([*(f"child.{f} IS NOT NULL" for f in fk), missing])
    return f"SELECT child.* FROM {_table(relation)} AS child WHERE {condition}"


def failing_check(relation: Any, constraint: Any) -> str:
    """The rows for which the CHECK is false (NULL passes a CHECK)."""
    return f"SELECT * FROM {_table(relation)} WHERE NOT ({deparse(constraint.raw_expr)})"


def nulls(relation: Any, held: Sequence[str]) -> str:
    """The rows with a NULL in any of these columns."""
    condition = " OR ".join(f"{ident(column)} IS NULL" for column in held)
    return f"SELECT * FROM {_table(relation)} WHERE {condition}"
