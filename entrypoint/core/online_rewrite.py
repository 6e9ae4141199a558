"""Each statement's online form (`online`): an index, a foreign key or CHECK, a NOT NULL, a unique key. Pure.

`rewrite(statement)` turns one candidate statement into what its transaction
sends in its place (NOT VALID added, a helper check, or nothing), the online
steps that follow the commit, what those steps read (for the order rule,
`online_order`) and the decision, in words, with its reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from entrypoint.core import online_sql as sql
from entrypoint.core.online_order import Reads, shown
from entrypoint.core.online_parts import (
    Decision,
    Expect,
    ExpectKind,
    Sent,
    SentForm,
    Source,
    Step,
    StepKind,
    TableName,
    Why,
)  # fmt: skip
from entrypoint.core.online_sql import helper_name


class Planned(NamedTuple):
    """One statement planned: what its transaction sends, its online steps, what they read, its decisions."""

    sent: Sent | None
    steps: tuple[Step, ...] = ()
    reads: Reads | None = None
    decisions: tuple[Decision, ...] = ()
    expects: tuple[Expect, ...] = ()


class Statement(NamedTuple):
    """One statement being planned: where it comes from, its text and tree, its table, and the size's word."""

    source: Source
    piece: bytes
    stmt: Any
    table: TableName
    why: Why

    def sent(self, text: bytes | None = None, form: SentForm = "as-written") -> Sent:
        return Sent(self.source.chunk, (self.source.statement,), self.piece if text is None else text, form)

    def expect(self, kind: ExpectKind, name: str, definition: bytes = b"") -> Expect:
        return Expect(kind, self.table[0], self.table[1], name, definition)

    def step(self, kind: StepKind, name: str, send: tuple[bytes, ...], done: tuple[Expect, ...],
             offending: str | None = None) -> Step:  # fmt: skip
        return Step(kind, self.source, self.table[0], self.table[1], name, send, done, self.why, offending)

    def validate(self, name: str, offending: str | None, note: str = "") -> Step:
        send = (sql.validate(self.stmt.relation, name),)
        return self.step("validate", name, send, (self.expect("validated", name),), offending)._replace(note=note)

    def decision(self, what: str, how: str = "", reason: str = "") -> Decision:
        """Online `how`, or as written (for `reason`, when the size alone said online)."""
        index = what.startswith("CREATE ")
        name = str(self.stmt.idxname or "") if index else ""
        offending = sql.index_duplicates(self.stmt) if index and self.stmt.unique else None
        if how:
            return Decision(self.source, what, how, self.why, name, offending)
        why = self.why._replace(online=False, text=f"{self.why.text}; {reason}") if self.why.online else self.why
        return Decision(self.source, what, "as written", why, name, offending)

    def as_written(self, *decisions: Decision) -> Planned:
        return Planned(self.sent(), decisions=decisions)


def index(one: Statement) -> Planned:
    """CREATE [UNIQUE] INDEX → the same with CONCURRENTLY, after the commit."""
    stmt = one.stmt
    what = f"CREATE {'UNIQUE ' if stmt.unique else ''}INDEX {stmt.idxname or ''}".rstrip()
    if not one.why.online:
        return one.as_written(one.decision(what))
    if not stmt.idxname:
        return one.as_written(one.decision(what, reason="it has no name: PostgreSQL would pick one a resume "
                                                        "could not find"))  # fmt: skip
    if not stmt.relation.inh:
        return one.as_written(one.decision(what, reason="ON ONLY: PostgreSQL has no online form for it"))
    rewritten = sql.with_concurrently(one.piece, stmt)
    if rewritten is None:
        return one.as_written(one.decision(what, reason="CONCURRENTLY could not be placed for sure"))
    name = str(stmt.idxname)
    offending = sql.index_duplicates(stmt) if stmt.unique else None
    build = one.step("create-index", name, (rewritten,), (one.expect("index", name, rewritten),), offending)
    read = sql.columns((stmt.indexParams, stmt.indexIncludingParams, stmt.whereClause))
    unique = one.table if stmt.unique else None
    reads = Reads(((one.table, read),), frozenset({name}), unique, validates=bool(stmt.unique))
    return Planned(None, (build,), reads, (one.decision(what, "built CONCURRENTLY after the commit"),))


def _what(cmd: Any) -> str:
    from pglast.enums import ConstrType

    if cmd.def_ is None:
        return f"ALTER COLUMN {cmd.name} SET NOT NULL"
    kind = {
        ConstrType.CONSTR_FOREIGN: "FOREIGN KEY",
        ConstrType.CONSTR_CHECK: "CHECK",
        ConstrType.CONSTR_UNIQUE: "UNIQUE",
        ConstrType.CONSTR_PRIMARY: "PRIMARY KEY",
    }[cmd.def_.contype]
    return f"ADD CONSTRAINT {cmd.def_.conname} {kind}" if cmd.def_.conname else f"ADD {kind}"


def _candidates(stmt: Any) -> tuple[list[int], list[int]]:
    """The subcommands with an online form: (those that take NOT VALID in place, those that need a statement alone).

    FOREIGN KEY and CHECK take NOT VALID in place; SET NOT NULL, UNIQUE and PRIMARY KEY are rewritten into
    other statements, which only a statement of one subcommand allows.
    """
    from pglast.enums import AlterTableType, ConstrType

    in_place, alone = [], []
    for n, cmd in enumerate(stmt.cmds or ()):
        if cmd.subtype == AlterTableType.AT_SetNotNull:
            alone.append(n)
        elif cmd.subtype == AlterTableType.AT_AddConstraint:
            kind = cmd.def_.contype
            if kind in {ConstrType.CONSTR_FOREIGN, ConstrType.CONSTR_CHECK} and not cmd.def_.skip_validation:
                in_place.append(n)
            elif kind in {ConstrType.CONSTR_UNIQUE, ConstrType.CONSTR_PRIMARY} and not cmd.def_.indexname:
                alone.append(n)
    return in_place, alone


def alter_table(one: Statement) -> Planned | None:
    """An ALTER TABLE with a FOREIGN KEY, CHECK, SET NOT NULL, UNIQUE or PRIMARY KEY to rewrite; None without one."""
    in_place, alone = _candidates(one.stmt)
    if not in_place and not alone:
        return None
    if not one.why.online:
        return one.as_written(*(one.decision(_what(one.stmt.cmds[n])) for n in sorted(in_place + alone)))
    if alone and len(one.stmt.cmds) == 1:
        return _set_not_null(one) if one.stmt.cmds[0].def_ is None else _unique(one)
    return _not_valid(one, in_place, alone)


def _not_valid(one: Statement, in_place: Sequence[int], alone: Sequence[int]) -> Planned:
    """FOREIGN KEY and CHECK subcommands get NOT VALID in place, each VALIDATEd after the commit."""
    from pglast.enums import ConstrType

    cmds = one.stmt.cmds
    refused = {n: f"one of {len(cmds)} subcommands of one ALTER TABLE, which PostgreSQL runs by kind, not as "
                  "written: not split" for n in alone}  # fmt: skip
    for n in in_place:
        if not cmds[n].def_.conname:
            refused[n] = "it has no name: PostgreSQL would pick one VALIDATE could not name"
    online = [n for n in in_place if n not in refused]
    rewritten = sql.with_not_valid(one.piece, one.stmt, online) if online else None
    if rewritten is None:
        refused |= dict.fromkeys(online, "NOT VALID could not be placed for sure")
        return one.as_written(*(one.decision(_what(cmds[n]), reason=refused[n]) for n in sorted(refused)))
    steps, expects, tables, decisions = [], [], [], []
    for n in sorted([*online, *refused]):
        if n in refused:
            decisions.append(one.decision(_what(cmds[n]), reason=refused[n]))
            continue
        constraint = cmds[n].def_
        name = str(constraint.conname)
        if constraint.contype == ConstrType.CONSTR_FOREIGN:
            offending = sql.missing_references(one.stmt.relation, constraint)
            tables += [
                (one.table, _names(constraint.fk_attrs)),
                (sql.key(constraint.pktable), _names(constraint.pk_attrs)),
            ]
        else:
            offending = sql.failing_check(one.stmt.relation, constraint)
            tables.append((one.table, sql.columns(constraint.raw_expr)))
        steps.append(one.validate(name, offending))
        expects.append(one.expect("constraint", name))
        decisions.append(one.decision(_what(cmds[n]), "NOT VALID, then VALIDATE CONSTRAINT after the commit"))
    reads = Reads(tuple(tables), frozenset(s.name for s in steps), validates=True)
    return Planned(one.sent(rewritten, "not-valid"), tuple(steps), reads, tuple(decisions), tuple(expects))


def _set_not_null(one: Statement) -> Planned:
    """A helper CHECK (c IS NOT NULL) NOT VALID, VALIDATE it, then SET NOT NULL (as written) and its DROP."""
    column = str(one.stmt.cmds[0].name)
    helper = helper_name(one.table[0], one.table[1], (column,))
    relation = one.stmt.relation
    note = f"no NULL in {shown(one.table)}.{column}, for SET NOT NULL"
    steps = (
        one.validate(helper, sql.nulls(relation, (column,)), note),
        one.step("set-not-null", column, (one.piece, sql.drop(relation, helper)),
                 (one.expect("not-null", column), one.expect("absent", helper))),
    )  # fmt: skip
    how = f"CHECK ({column} IS NOT NULL) NOT VALID, VALIDATE, then SET NOT NULL without a scan"
    return Planned(
        one.sent(sql.helper_check(relation, helper, (column,)), "helper-check"),
        steps,
        Reads(((one.table, frozenset({column})),), frozenset({helper}), validates=True),
        (one.decision(_what(one.stmt.cmds[0]), how),),
        (one.expect("constraint", helper),),
    )


def _unique(one: Statement) -> Planned:
    """CREATE UNIQUE INDEX CONCURRENTLY named as the constraint, then ADD CONSTRAINT … USING INDEX.

    Attaching a primary key sets its columns NOT NULL, which scans the table under ACCESS EXCLUSIVE unless a
    validated check proves it needless: a helper check on its columns goes first, dropped when it attaches.
    """
    from pglast.enums import ConstrType

    constraint, relation = one.stmt.cmds[0].def_, one.stmt.relation
    what = _what(one.stmt.cmds[0])
    if not constraint.conname:
        return one.as_written(one.decision(what, reason="it has no name: PostgreSQL would pick one a resume could "
                                                        "not find"))  # fmt: skip
    index = None if constraint.without_overlaps or not relation.inh else sql.unique_index(one.stmt, constraint)
    if index is None:
        reason = "no plain unique index can be written for sure for it (WITHOUT OVERLAPS, ONLY, or its options)"
        return one.as_written(one.decision(what, reason=reason))
    name, keys = str(constraint.conname), [str(k.sval) for k in constraint.keys]
    primary = constraint.contype == ConstrType.CONSTR_PRIMARY
    duplicates = sql.duplicates(relation, [sql.ident(k) for k in keys],
                                nulls_distinct=primary or not constraint.nulls_not_distinct)  # fmt: skip
    steps = [one.step("create-index", name, (index,), (one.expect("index", name, index),), duplicates)]
    attach, done = [sql.using_index(one.stmt)], [one.expect("validated", name)]
    sent, expects, names = None, [], {name}
    if primary:
        helper = helper_name(one.table[0], one.table[1], keys, name)
        sent = one.sent(sql.helper_check(relation, helper, keys), "helper-check")
        note = f"no NULL in {', '.join(keys)}, for the primary key {name}"
        steps.insert(0, one.validate(helper, sql.nulls(relation, keys), note))
        expects.append(one.expect("constraint", helper))
        attach.append(sql.drop(relation, helper))
        done.append(one.expect("absent", helper))
        names.add(helper)
    steps.append(one.step("attach-constraint", name, tuple(attach), tuple(done)))
    reads = Reads(
        ((one.table, frozenset(keys) | _names(constraint.including)),), frozenset(names), one.table, validates=True
    )
    how = "CREATE UNIQUE INDEX CONCURRENTLY, then ADD CONSTRAINT … USING INDEX"
    return Planned(sent, tuple(steps), reads, (one.decision(what, how),), tuple(expects))


def _names(nodes: Sequence[Any] | None) -> frozenset[str]:
    return frozenset(str(node.sval) for node in nodes or ())
