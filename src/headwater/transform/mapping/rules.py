"""One small pure function per mapping rule: (argument, input relation) -> query.

Each function receives the rule's argument as plain data, the relation it reads
(a CTE name and its columns, with Arrow types where known) and a :class:`RuleContext`
for locating errors; it returns the sqlglot query of the next stage and that stage's
columns. :mod:`.compile` chains the stages as CTEs. Every column a rule names is
checked against the columns of its input, so a typo is reported at the rule, with the
columns that do exist, before DuckDB runs anything.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import sqlglot
from sqlglot import exp

from headwater.errors import PipelineError, PipelineSyntaxError, choices_hint
from headwater.transform.refs import check_sql, find_ref_spans

__all__ = ["RULES", "Relation", "RuleContext", "Stage"]

Columns = dict[str, pa.DataType | None]
#: path inside ``rules`` (``(2, "derive", "total")``), offset inside a string -> location
Locate = Callable[[tuple[str | int, ...], int | None], str]


@dataclass(frozen=True)
class Relation:
    """What a rule reads: a relation name (CTE or table) and its columns."""

    table: exp.Table
    columns: Columns


@dataclass
class Stage:
    """What a rule produces: the query of the next CTE and its columns."""

    query: exp.Query
    columns: Columns
    reads: list[str] = field(default_factory=list)
    uses_salt: bool = False


@dataclass(frozen=True)
class RuleContext:
    """Where the rule sits and what else it may read."""

    index: int
    kind: str
    locate: Locate
    schemas: Mapping[str, pa.Schema]
    salt_variable: str = "hw_mask_salt"

    @property
    def label(self) -> str:
        return f"map rule {self.index + 1} (`{self.kind}`)"

    def where(self, *path: str | int, offset: int | None = None) -> str:
        return self.locate((self.index, self.kind, *path), offset)

    def unknown_column(
        self, column: str, available: Sequence[str], *path: str | int, what: str = "the input"
    ) -> PipelineError:
        return PipelineError(
            f"{self.label}: unknown column `{column}`; {what} has "
            + ", ".join(f"`{c}`" for c in available),
            location=self.where(*path),
            column=column,
            hint=choices_hint(column, available, "columns"),
        )


# --------------------------------------------------------------------------- helpers


def _col(name: str, table: str | None = None) -> exp.Column:
    return exp.column(name, table=table, quoted=True)


def _alias(expression: exp.Expr, name: str) -> exp.Expr:
    return exp.alias_(expression, exp.to_identifier(name, quoted=True))


def _passthrough(columns: Columns, table: str | None = None) -> list[exp.Expr]:
    return [_col(c, table) for c in columns]


def _select(relation: Relation, projections: list[exp.Expr]) -> exp.Select:
    return exp.select(*projections).from_(relation.table.copy())


def _require(ctx: RuleContext, columns: Columns, name: str, *path: str | int) -> None:
    if name not in columns:
        raise ctx.unknown_column(name, list(columns), *path)


def parse_expression(ctx: RuleContext, text: str, columns: Columns, *path: str | int) -> exp.Expr:
    """Parse a SQL expression of a rule; every bare column must be an input column."""
    spans = find_ref_spans(text) if "{" in text else []
    if spans:
        raise PipelineSyntaxError(
            f"{ctx.label}: ref() is not allowed in a rule expression",
            location=ctx.where(*path, offset=spans[0].start),
            hint="Bring in another dataset with a `lookup` or `union` rule.",
        )
    issue = check_sql(text, expression=True)
    if issue is not None:
        raise PipelineSyntaxError(
            f"{ctx.label}: {issue.message}",
            location=ctx.where(*path, offset=issue.offset),
            hint=issue.hint,
        )
    tree = sqlglot.parse_one(text, read="duckdb")
    for column in _bare_columns(tree):
        if column.table:
            raise PipelineSyntaxError(
                f"{ctx.label}: qualified column `{column.sql('duckdb')}`: rule expressions "
                "name the columns of their input without a table",
                location=ctx.where(*path, offset=_find(text, column.name)),
                column=column.name,
            )
        if column.name not in columns:
            err = ctx.unknown_column(column.name, list(columns), *path)
            err.location = ctx.where(*path, offset=_find(text, column.name))
            raise err
    return tree


def _find(text: str, name: str) -> int | None:
    at = text.find(name)
    return at if at >= 0 else None


def _bare_columns(tree: exp.Expr) -> list[exp.Column]:
    out = []
    for column in tree.find_all(exp.Column):
        if column.find_ancestor(exp.Query) is not None:
            continue  # a subquery binds its own columns
        lam = column.find_ancestor(exp.Lambda)
        if lam is not None and column.name in {e.name for e in lam.expressions}:
            continue  # a lambda parameter (list_transform(xs, x -> x + 1))
        out.append(column)
    return out


def _data_type(ctx: RuleContext, text: str, *path: str | int) -> exp.DataType:
    try:
        return exp.DataType.build(text, dialect="duckdb")
    except (sqlglot.errors.SqlglotError, ValueError):
        raise PipelineSyntaxError(
            f"{ctx.label}: `{text}` is not a DuckDB type",
            location=ctx.where(*path),
            hint="For example BIGINT, DOUBLE, VARCHAR, BOOLEAN, DATE, TIMESTAMP, "
            "DECIMAL(10,2), VARCHAR[].",
        ) from None


def _ordered(
    columns: Columns, replaced: Mapping[str, exp.Expr], table: str | None = None
) -> list[exp.Expr]:
    """Input columns in order, some replaced by an expression, then the new ones."""
    out: list[exp.Expr] = []
    for name in columns:
        out.append(_alias(replaced[name], name) if name in replaced else _col(name, table))
    out += [_alias(e, n) for n, e in replaced.items() if n not in columns]
    return out


# --------------------------------------------------------------------------- rules


def rename(arg: Mapping[str, str], rel: Relation, ctx: RuleContext) -> Stage:
    for old in arg:
        _require(ctx, rel.columns, old, old)
    names = [arg.get(c, c) for c in rel.columns]
    for name in names:
        if names.count(name) > 1:
            raise PipelineError(
                f"{ctx.label}: two columns would be called `{name}`",
                location=ctx.where(),
                column=name,
                hint="Rename or drop the other column first (derive it under another name).",
            )
    projections: list[exp.Expr] = [
        _alias(_col(c), arg[c]) if c in arg else _col(c) for c in rel.columns
    ]
    columns = {arg.get(c, c): t for c, t in rel.columns.items()}
    return Stage(_select(rel, projections), columns)


def cast(arg: Mapping[str, str], rel: Relation, ctx: RuleContext) -> Stage:
    replaced: dict[str, exp.Expr] = {}
    for name, text in arg.items():
        _require(ctx, rel.columns, name, name)
        replaced[name] = exp.cast(_col(name), _data_type(ctx, text, name))
    columns = {c: (None if c in arg else t) for c, t in rel.columns.items()}
    return Stage(_select(rel, _ordered(rel.columns, replaced)), columns)


def derive(arg: Mapping[str, str], rel: Relation, ctx: RuleContext) -> Stage:
    replaced: dict[str, exp.Expr] = {}
    for name, text in arg.items():
        try:
            replaced[name] = parse_expression(ctx, text, rel.columns, name)
        except PipelineError as err:
            if err.column in arg and err.column not in rel.columns:
                err.hint = (
                    f"`{err.column}` is derived in this same rule, and every expression of a "
                    "rule reads the rule's input: derive it in an earlier rule."
                )
            raise
    columns = dict(rel.columns)
    columns.update(dict.fromkeys(replaced))
    return Stage(_select(rel, _ordered(rel.columns, replaced)), columns)


def filter_(arg: str, rel: Relation, ctx: RuleContext) -> Stage:
    predicate = parse_expression(ctx, arg, rel.columns)
    return Stage(_select(rel, _passthrough(rel.columns)).where(predicate), dict(rel.columns))


def lookup(arg: Mapping[str, Any], rel: Relation, ctx: RuleContext) -> Stage:
    dataset = str(arg["dataset"])
    schema = ctx.schemas[dataset]
    ref_columns: Columns = {f.name: f.type for f in schema}
    on: Mapping[str, str] = arg["on"]
    for left, right in on.items():
        _require(ctx, rel.columns, left, "on", left)
        if right not in ref_columns:
            raise ctx.unknown_column(right, list(ref_columns), "on", left, what=f"`{dataset}`")
    wanted = arg["columns"]
    added: dict[str, str] = dict(wanted) if isinstance(wanted, Mapping) else {c: c for c in wanted}
    for source, target in added.items():
        if source not in ref_columns:
            raise ctx.unknown_column(source, list(ref_columns), "columns", what=f"`{dataset}`")
        if target in rel.columns:
            raise PipelineError(
                f"{ctx.label}: the input already has a column `{target}`",
                location=ctx.where("columns"),
                column=target,
                hint=f"Add it under another name: `columns: {{{source}: {dataset.split('.')[1]}_"
                f"{source}}}`.",
            )
    defaults: Mapping[str, Any] = arg.get("default") or {}
    for name in defaults:
        if name not in added.values():
            raise PipelineError(
                f"{ctx.label}: `default` names `{name}`, which the lookup does not add",
                location=ctx.where("default", name),
                column=name,
                hint=choices_hint(name, added.values(), "added columns"),
            )
    zone, _, table = dataset.partition(".")
    keys = list(dict.fromkeys(on.values()))
    inner_columns = keys + [c for c in added if c not in keys]
    # one reference row per key, so that a duplicate key never doubles input rows
    reference = (
        exp.select(*(_col(c) for c in inner_columns))
        .from_(exp.table_(table, db=zone, quoted=True))
        .distinct(*(_col(k) for k in keys))
        .order_by(*(_col(c) for c in inner_columns))
    )
    condition = exp.and_(
        *(exp.EQ(this=_col(a, "_in"), expression=_col(b, "_lk")) for a, b in on.items())
    )
    projections: list[exp.Expr] = _passthrough(rel.columns, "_in")
    for source, target in added.items():
        value: exp.Expr = _col(source, "_lk")
        if target in defaults:
            value = exp.func("coalesce", value, _literal(defaults[target]))
        projections.append(_alias(value, target))
    query = (
        exp.select(*projections)
        .from_(exp.alias_(rel.table.copy(), "_in", table=True))
        .join(
            exp.alias_(exp.Subquery(this=reference), "_lk", table=True),
            on=condition,
            join_type="left",
        )
    )
    columns = dict(rel.columns)
    columns.update({t: ref_columns[s] if t not in defaults else None for s, t in added.items()})
    return Stage(query, columns, reads=[dataset])


def _literal(value: Any) -> exp.Expr:
    if value is None:
        return exp.null()
    if isinstance(value, bool):
        return exp.Boolean(this=value)
    if isinstance(value, int | float):
        return exp.Literal.number(value)
    return exp.Literal.string(str(value))


def aggregate(arg: Mapping[str, Any], rel: Relation, ctx: RuleContext) -> Stage:
    by: list[str] = list(arg.get("by") or [])
    for name in by:
        _require(ctx, rel.columns, name, "by")
    projections: list[exp.Expr] = [_col(c) for c in by]
    for name, text in arg["aggregates"].items():
        projections.append(
            _alias(parse_expression(ctx, text, rel.columns, "aggregates", name), name)
        )
    query = _select(rel, projections)
    if by:
        query = query.group_by(*(_col(c) for c in by))
    columns: Columns = {c: rel.columns[c] for c in by}
    columns.update(dict.fromkeys(arg["aggregates"]))
    return Stage(query, columns)


def dedupe(arg: Mapping[str, Any], rel: Relation, ctx: RuleContext) -> Stage:
    keys: list[str] = list(arg["keys"])
    for name in keys:
        _require(ctx, rel.columns, name, "keys")
    order: list[exp.Expr] = []
    if arg.get("order_by"):
        text = str(arg["order_by"])
        try:
            parsed = sqlglot.parse_one(f"SELECT 1 ORDER BY {text}", read="duckdb")
        except sqlglot.errors.SqlglotError as exc:
            raise PipelineSyntaxError(
                f"{ctx.label}: invalid `order_by` `{text}`: {str(exc).splitlines()[0]}",
                location=ctx.where("order_by"),
                hint="Write a SQL ORDER BY list, e.g. `updated_at desc, id`.",
            ) from None
        ordering = parsed.args.get("order")
        order = list(ordering.expressions) if ordering is not None else []
        for column in _bare_columns(parsed):
            if column.name not in rel.columns:
                raise ctx.unknown_column(column.name, list(rel.columns), "order_by")
    window = exp.Window(
        this=exp.RowNumber(),
        partition_by=[_col(k) for k in keys],
        order=exp.Order(expressions=order) if order else None,
    )
    query = _select(rel, _passthrough(rel.columns)).qualify(
        exp.EQ(this=window, expression=exp.Literal.number(1))
    )
    return Stage(query, dict(rel.columns))


def mask(arg: Mapping[str, Any], rel: Relation, ctx: RuleContext) -> Stage:
    replaced: dict[str, exp.Expr] = {}
    salt = False
    for name, method in arg.items():
        _require(ctx, rel.columns, name, name)
        text = exp.cast(_col(name), exp.DataType.build("VARCHAR"))
        if method == "hash":
            salted = exp.DPipe(
                this=exp.func("getvariable", exp.Literal.string(ctx.salt_variable)), expression=text
            )
            replaced[name] = exp.func("sha256", salted)
            salt = True
            continue
        if method == "redact":
            shown: exp.Expr = exp.Literal.string("****")
        else:
            keep = int(method["keep_last"])
            stars = exp.func(
                "repeat",
                exp.Literal.string("*"),
                exp.func(
                    "greatest",
                    exp.Sub(
                        this=exp.func("length", text.copy()), expression=exp.Literal.number(keep)
                    ),
                    exp.Literal.number(0),
                ),
            )
            shown = exp.DPipe(
                this=stars, expression=exp.func("right", text.copy(), exp.Literal.number(keep))
            )
        replaced[name] = exp.Case(
            ifs=[exp.If(this=exp.Is(this=_col(name), expression=exp.null()), true=exp.null())],
            default=shown,
        )
    columns = {c: (pa.string() if c in arg else t) for c, t in rel.columns.items()}
    return Stage(_select(rel, _ordered(rel.columns, replaced)), columns, uses_salt=salt)


def flatten(arg: str | Mapping[str, Any], rel: Relation, ctx: RuleContext) -> Stage:
    spec: Mapping[str, Any] = {"column": arg} if isinstance(arg, str) else arg
    name = str(spec["column"])
    where: tuple[str | int, ...] = () if isinstance(arg, str) else ("column",)
    _require(ctx, rel.columns, name, *where)
    type_ = rel.columns[name]
    fields = spec.get("fields")
    prefix = spec.get("prefix")
    prefix = f"{name}_" if prefix is None else str(prefix)
    new: dict[str, exp.Expr] = {}
    types: Columns = {}
    if type_ is not None and pa.types.is_struct(type_):
        available = {type_.field(k).name: type_.field(k).type for k in range(type_.num_fields)}
        chosen = list(available) if fields is None else list(fields)
        for f in chosen:
            if f not in available:
                raise ctx.unknown_column(f, list(available), "fields", what=f"the struct `{name}`")
            value: exp.Expr = exp.func("struct_extract", _col(name), exp.Literal.string(f))
            if isinstance(fields, Mapping):
                value = exp.cast(value, _data_type(ctx, str(fields[f]), "fields", f))
            new[prefix + f] = value
            types[prefix + f] = available[f] if not isinstance(fields, Mapping) else None
    elif type_ is None or pa.types.is_string(type_) or pa.types.is_large_string(type_):
        if not isinstance(fields, Mapping):
            raise PipelineError(
                f"{ctx.label}: `{name}` is not a struct, so it is read as JSON text, which "
                "needs `fields` with a type each",
                location=ctx.where(*where),
                column=name,
                hint=f"flatten: {{column: {name}, fields: {{id: BIGINT, label: VARCHAR}}}}",
            )
        for f, text in fields.items():
            path = '$."' + str(f).replace('"', '\\"') + '"'
            extracted = exp.func("json_extract_string", _col(name), exp.Literal.string(path))
            new[prefix + f] = exp.cast(extracted, _data_type(ctx, str(text), "fields", f))
            types[prefix + f] = None
    else:
        raise PipelineError(
            f"{ctx.label}: `{name}` is {type_}, not a struct or JSON text",
            location=ctx.where(*where),
            column=name,
            hint="flatten takes a struct column or a text column holding JSON objects.",
        )
    keep = bool(spec.get("keep", False))
    out: Columns = {}
    projections: list[exp.Expr] = []
    for column, t in rel.columns.items():
        if column == name:
            if keep:
                projections.append(_col(column))
                out[column] = t
            for n, e in new.items():
                if n in rel.columns and n != name:
                    raise PipelineError(
                        f"{ctx.label}: the input already has a column `{n}`",
                        location=ctx.where(*where),
                        column=n,
                        hint="Set `prefix:` to name the new columns differently.",
                    )
                projections.append(_alias(e, n))
                out[n] = types[n]
        else:
            projections.append(_col(column))
            out[column] = t
    return Stage(_select(rel, projections), out)


def explode(arg: str | Mapping[str, Any], rel: Relation, ctx: RuleContext) -> Stage:
    spec: Mapping[str, Any] = {"column": arg} if isinstance(arg, str) else arg
    name = str(spec["column"])
    where: tuple[str | int, ...] = () if isinstance(arg, str) else ("column",)
    _require(ctx, rel.columns, name, *where)
    type_ = rel.columns[name]
    if type_ is not None and not (pa.types.is_list(type_) or pa.types.is_large_list(type_)):
        raise PipelineError(
            f"{ctx.label}: `{name}` is {type_}, not a list",
            location=ctx.where(*where),
            column=name,
            hint="explode takes a list column; split text first, e.g. derive "
            "`string_split(tags, ',')`.",
        )
    target = str(spec.get("as") or name)
    if target != name and target in rel.columns:
        raise PipelineError(
            f"{ctx.label}: the input already has a column `{target}`",
            location=ctx.where("as"),
            column=target,
        )
    element = type_.value_type if type_ is not None else None
    projections: list[exp.Expr] = []
    out: Columns = {}
    for column, t in rel.columns.items():
        if column == name:
            projections.append(_alias(exp.Unnest(expressions=[_col(name)]), target))
            out[target] = element
        else:
            projections.append(_col(column))
            out[column] = t
    return Stage(_select(rel, projections), out)


def union(arg: str | Sequence[str], rel: Relation, ctx: RuleContext) -> Stage:
    datasets = [arg] if isinstance(arg, str) else list(arg)
    columns = dict(rel.columns)
    for dataset in datasets:
        for f in ctx.schemas[dataset]:
            columns.setdefault(f.name, f.type)
    query: exp.Query = _select(
        rel, [_col(c) if c in rel.columns else _alias(exp.null(), c) for c in columns]
    )
    for dataset in datasets:
        names = set(ctx.schemas[dataset].names)
        zone, _, table = dataset.partition(".")
        other = exp.select(
            *(_col(c) if c in names else _alias(exp.null(), c) for c in columns)
        ).from_(exp.table_(table, db=zone, quoted=True))
        query = exp.union(query, other, distinct=False)
    return Stage(query, columns, reads=datasets)


RULES: dict[str, Callable[[Any, Relation, RuleContext], Stage]] = {
    "rename": rename,
    "cast": cast,
    "derive": derive,
    "filter": filter_,
    "lookup": lookup,
    "aggregate": aggregate,
    "dedupe": dedupe,
    "mask": mask,
    "flatten": flatten,
    "explode": explode,
    "union": union,
}
