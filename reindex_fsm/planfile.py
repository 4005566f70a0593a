"""Plan files: ``reindex-fsm apply plan.yaml``, the wanted state of one alias, a list of
aliases or alias patterns, kept in a file under review.

The keys are ``start``'s flags without the ``--`` (``requests-per-second: 200``), read from
the same definitions (:func:`reindex_fsm.options.start_flags`): a key's value is turned
into what the flag's click option would have parsed, and the result goes through the same
readers and rules as the flags (the ``read`` function given to :func:`load`, the CLI's
``start.run_options``). A plan file therefore accepts exactly the options ``start`` does,
refused in the same words, with the file, line and key in front.

The file is parsed with PyYAML's node tree (``yaml.compose``), so every refusal names the
line of the key it is about: a syntax error, an empty file, a duplicate key or alias, an
unknown key (with the nearest known one), a value of the wrong type or refused by the
options' rules. Nothing is written before the whole file has been read and checked.

Credentials are never read from a plan file (the file is meant to be reviewed and kept
in version control): a ``password``, ``api-key`` or ``username`` key, or an ``engine-url``
carrying ``user:password@``, is refused with the flag and variable to use instead.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from .batch import BatchSettings
from .errors import UsageError
from .flags import Flag
from .options import RunOptions, parse_rate, start_flags
from .plankeys import (
    CREDENTIALS,
    SHAPE_KEYS,
    batch_flags,
    connection_flags,
    option_flags,
    top_level_keys,
)
from .steps.planning import check_alias_name


# -- what a parsed file is ------------------------------------------------------------------
@dataclass(frozen=True)
class PlanEntry:
    """One alias the file names, with its options (the file's, then its own overrides)."""

    alias: str
    options: RunOptions
    line: int
    overrides: tuple[str, ...] = ()  # the keys its own entry gives


@dataclass(frozen=True)
class PlanFile:
    path: str  # absolute
    shown: str  # as the operator gave it, for messages
    sha256: str  # of the file's bytes
    shape: str  # "alias" (one run) or "batch" (aliases and/or patterns)
    entries: tuple[PlanEntry, ...]
    patterns: tuple[tuple[str, int], ...]  # (pattern, line)
    defaults: RunOptions  # the options of an alias a pattern matched
    batch: dict[str, Any] = field(default_factory=dict)  # BatchSettings' fields given
    connection: dict[str, Any] = field(default_factory=dict)  # engine_url, engine_kind, ...

    def where(self, line: int) -> str:
        return f"{self.shown}:{line}"

    def resolve(self, matched: Iterable[tuple[str, int]]) -> list[PlanEntry]:
        """Every alias of the file: those it names, then those its patterns matched (given
        in ``matched`` with the pattern's line, by reindex_fsm.batch.resolve_aliases),
        each once; a named alias keeps its own options."""
        named = {e.alias for e in self.entries}
        out = list(self.entries)
        for alias, line in matched:
            if alias not in named:
                named.add(alias)
                out.append(PlanEntry(alias, self.defaults, line))
        return out

    def settings(self) -> BatchSettings:
        return BatchSettings(**self.batch)


class PlanError(UsageError):
    """One line: file, line, key, what is wrong and what to do."""

    def __init__(self, where: str, key: str | None, message: str, hint: str | None = None):
        head = f"{where}: {key}: " if key else f"{where}: "
        super().__init__(head + message, hint=hint or "fix the plan file; nothing was done")


# -- reading the file ---------------------------------------------------------------------
Reader = Callable[[dict[str, Any]], RunOptions]


def load(path: str, read: Reader) -> PlanFile:
    """Read and check the plan file at ``path``; ``read`` turns start's parsed flags into
    RunOptions (the CLI's readers). Raises :class:`PlanError` (a UsageError, exit 2)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(
            f"cannot read plan file {path}: {exc.strerror or exc}",
            hint="fix the path; nothing was done",
        ) from exc
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise PlanError(f"{path}:{line}", None, "the plan file is not UTF-8 text") from exc
    root = _compose(path, text)
    return _Parser(path, hashlib.sha256(data).hexdigest(), read).parse(root)


def _compose(path: str, text: str) -> yaml.MappingNode:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        problem = exc.problem or exc.context or "invalid YAML"
        raise PlanError(f"{path}:{line}", None, f"YAML syntax error: {problem}") from exc
    except yaml.YAMLError as exc:
        raise PlanError(f"{path}:1", None, f"YAML syntax error: {exc}") from exc
    if root is None or (isinstance(root, yaml.ScalarNode) and root.value == ""):
        raise PlanError(
            f"{path}:1",
            None,
            "the plan file is empty",
            hint="give at least `alias: NAME` (see the README's Plan files section)",
        )
    if not isinstance(root, yaml.MappingNode):
        raise PlanError(_at(path, root), None, "the plan file must be a mapping of keys")
    _check_duplicates(path, root)
    return root


def _at(path: str, node: yaml.Node) -> str:
    return f"{path}:{node.start_mark.line + 1}"


def _check_duplicates(
    path: str, node: yaml.Node, done: set[int] | None = None, above: tuple[int, ...] = ()
) -> None:
    """A key given twice in any mapping of the file (YAML would keep the last silently);
    a node that contains itself (``&a [*a]``) is refused too. A node reached again by a
    YAML alias is checked once."""
    done = set() if done is None else done
    if id(node) in above:
        raise PlanError(_at(path, node), None, "a YAML alias refers to a node that holds it")
    if id(node) in done:
        return
    done.add(id(node))
    inside = (*above, id(node))
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key, value in node.value:
            name = str(key.value)
            if name in seen:
                raise PlanError(
                    _at(path, key),
                    name,
                    f"duplicate key (first given at line {seen[name]})",
                    hint="give each key once; nothing was done",
                )
            seen[name] = key.start_mark.line + 1
            _check_duplicates(path, value, done, inside)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _check_duplicates(path, item, done, inside)


def _python(node: yaml.Node) -> Any:
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _type_name(value: Any) -> str:
    if isinstance(value, date):
        return "a date"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, int | float):
        return "a number"
    return "a string"


def _did_you_mean(key: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}? " if close else ""


class _Parser:
    def __init__(self, path: str, sha256: str, read: Reader) -> None:
        self.shown = path
        self.path = str(Path(path).resolve())
        self.base = Path(self.path).parent
        self.sha256 = sha256
        self.read = read
        self.options = option_flags()

    def _python(self, node: yaml.Node) -> Any:
        try:
            return _python(node)
        except yaml.MarkedYAMLError as exc:  # e.g. a tag the safe loader does not make
            mark = exc.problem_mark or node.start_mark
            raise PlanError(
                f"{self.shown}:{mark.line + 1}", None, f"YAML error: {exc.problem or exc}"
            ) from exc

    def fail(self, node: yaml.Node, key: str | None, message: str, hint: str | None = None):
        return PlanError(_at(self.shown, node), key, message, hint)

    # -- the top level --
    def parse(self, root: yaml.MappingNode) -> PlanFile:
        top = self._keys(root, top_level_keys(), "a plan file")
        if "alias" in top and "alias-pattern" in top:
            raise self.fail(
                top["alias-pattern"][0],
                "alias-pattern",
                "alias and alias-pattern exclude each other",
                hint="name the alias under aliases: beside the pattern, or give it alone",
            )
        if "alias" in top and "aliases" in top:
            raise self.fail(
                top["aliases"][0],
                "aliases",
                "alias and aliases exclude each other",
                hint="give one alias as alias: NAME, several as aliases: [...]",
            )
        if not any(name in top for name in SHAPE_KEYS):
            raise self.fail(
                root,
                None,
                "the plan file names no alias",
                hint="give alias: NAME, aliases: [...] or alias-pattern: PATTERN",
            )
        shared = {k: v for k, v in top.items() if k in self.options}
        batch = self._batch(top)
        if "alias" in top and batch:
            key = next(k for k in batch_flags() if k in top)
            raise self.fail(
                top[key][0],
                key,
                "is a setting of a batch of several aliases",
                hint="give aliases: [...] or alias-pattern: PATTERN, or remove it",
            )
        connection = self._connection(top)
        defaults = self._options(shared, {}, None, root)
        entries: list[PlanEntry] = []
        if "alias" in top:
            key_node, value = top["alias"]
            entries.append(self._entry_named(value, shared, key_node))
        if "aliases" in top:
            entries.extend(self._aliases(top["aliases"][1], shared))
        patterns = self._patterns(top["alias-pattern"][1]) if "alias-pattern" in top else ()
        return PlanFile(
            path=self.path,
            shown=self.shown,
            sha256=self.sha256,
            shape="alias" if "alias" in top else "batch",
            entries=tuple(entries),
            patterns=patterns,
            defaults=defaults,
            batch=batch,
            connection=connection,
        )

    def _keys(
        self, node: yaml.MappingNode, known: list[str], what: str
    ) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        out: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for key_node, value in node.value:
            key = str(key_node.value)
            if not isinstance(key_node, yaml.ScalarNode):
                raise self.fail(key_node, None, "a key must be a plain name")
            if key.startswith("--") and key[2:] in known:
                raise self.fail(
                    key_node, key, "plan keys are the flags without --", hint=f"write {key[2:]}:"
                )
            if key in CREDENTIALS:
                raise self.fail(
                    key_node,
                    key,
                    "credentials are never read from a plan file",
                    hint=f"give {CREDENTIALS[key]} when you run apply; nothing was done",
                )
            if key == "defaults" and key not in known:
                raise self.fail(
                    key_node,
                    key,
                    "there is no defaults block: the file's own option keys apply to every alias",
                    hint="move its keys to the top level; an entry of aliases: overrides "
                    "them for its alias",
                )
            if key not in known:
                raise self.fail(
                    key_node,
                    key,
                    f"unknown key in {what}",
                    hint=f"{_did_you_mean(key, known)}the keys are listed in the README's "
                    "Plan files section; nothing was done",
                )
            out[key] = (key_node, value)
        return out

    def _batch(self, top: dict[str, tuple[yaml.Node, yaml.Node]]) -> dict[str, Any]:
        """The batch settings given, checked as the batch checks them (BatchSettings)."""
        out: dict[str, Any] = {}
        nodes: dict[str, yaml.Node] = {}
        for key, flag in batch_flags().items():
            if key in top:
                key_node, node = top[key]
                out[flag.param] = self._value(flag, key, node, key_node)
                nodes[key] = key_node
        try:
            BatchSettings(**out).validate()
        except UsageError as exc:
            named = _key_named(exc.message, list(nodes))
            raise self.fail(nodes[named] if named else _first_key(top), named, exc.message) from exc
        return out

    def _no_credentials_in(self, node: yaml.Node, key: str, url: Any, password: str) -> None:
        """A URL key carrying user:password@ is refused: credentials never come from a file."""
        if _has_credentials(url):
            raise self.fail(
                node,
                key,
                "the URL carries credentials, which are never read from a plan file",
                hint=f"give the URL without user:password@ and the password with "
                f"{CREDENTIALS[password]}; nothing was done",
            )

    def _connection(self, top: dict[str, tuple[yaml.Node, yaml.Node]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, flag in connection_flags().items():
            if key not in top:
                continue
            key_node, node = top[key]
            value = self._value(flag, key, node, key_node)
            if key == "engine-url":
                self._no_credentials_in(node, key, value, "password")
            out[flag.param] = value
        return out

    # -- aliases --
    def _alias_name(self, node: yaml.Node, key: str) -> str:
        value = self._python(node)
        if not isinstance(value, str):
            hint = "several aliases go under aliases: [...]" if isinstance(value, list) else None
            raise self.fail(node, key, f"an alias name is a string, not {_type_name(value)}", hint)
        try:
            return check_alias_name(value, key)
        except UsageError as exc:
            raise self.fail(node, key, exc.message, exc.hint) from exc

    def _entry_named(
        self, node: yaml.Node, shared: dict[str, Any], key_node: yaml.Node
    ) -> PlanEntry:
        alias = self._alias_name(node, "alias")
        return PlanEntry(
            alias, self._options(shared, {}, alias, key_node), node.start_mark.line + 1
        )

    def _aliases(self, node: yaml.Node, shared: dict[str, Any]) -> list[PlanEntry]:
        if isinstance(node, yaml.ScalarNode) and node.tag.endswith(":str"):
            items: list[yaml.Node] = [node]
        elif isinstance(node, yaml.SequenceNode):
            items = list(node.value)
        else:
            raise self.fail(
                node, "aliases", f"must be a list of aliases, not {_type_name(self._python(node))}"
            )
        if not items:
            raise self.fail(node, "aliases", "the list is empty", hint="name at least one alias")
        seen: dict[str, int] = {}
        out = []
        for item in items:
            own: dict[str, tuple[yaml.Node, yaml.Node]] = {}
            if isinstance(item, yaml.MappingNode):
                own = self._keys(item, ["alias", *self.options], "an entry of aliases")
                if "alias" not in own:
                    raise self.fail(
                        item, "aliases", "this entry has no alias key", hint="add alias: NAME"
                    )
                name_node = own.pop("alias")[1]
            else:
                name_node = item
            alias = self._alias_name(name_node, "alias")
            line = name_node.start_mark.line + 1
            if alias in seen:
                raise self.fail(
                    name_node,
                    "alias",
                    f"alias {alias} is named twice (first at line {seen[alias]})",
                    hint="name each alias once, with all its overrides in one entry",
                )
            seen[alias] = line
            options = self._options(shared, own, alias, item)
            out.append(PlanEntry(alias, options, line, tuple(own)))
        return out

    def _patterns(self, node: yaml.Node) -> tuple[tuple[str, int], ...]:
        items = list(node.value) if isinstance(node, yaml.SequenceNode) else [node]
        out: list[tuple[str, int]] = []
        for item in items:
            value = self._python(item)
            if not isinstance(value, str) or not value.strip():
                raise self.fail(
                    item,
                    "alias-pattern",
                    f"a pattern is a non-empty string, not {_type_name(value)}",
                    hint="e.g. alias-pattern: logs-*",
                )
            if any(value == seen for seen, _ in out):
                raise self.fail(item, "alias-pattern", f"pattern {value} is given twice")
            out.append((value, item.start_mark.line + 1))
        if not out:
            raise self.fail(node, "alias-pattern", "the list is empty")
        return tuple(out)

    # -- a run's options --
    def _options(
        self,
        shared: dict[str, tuple[yaml.Node, yaml.Node]],
        own: dict[str, tuple[yaml.Node, yaml.Node]],
        alias: str | None,
        anchor: yaml.Node,
    ) -> RunOptions:
        """The options of one alias: the file's keys, then its entry's own (``set`` and
        ``copy-set`` merge setting by setting, every other key replaces), read as start
        reads its flags; a refusal names the key it is about."""
        given = default_given()
        nodes: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for layer in (shared, own):
            for key, (key_node, node) in layer.items():
                flag = self.options[key]
                value = self._value(flag, key, node, key_node)
                if key == "source-url":
                    self._no_credentials_in(node, key, value, "source-password")
                if flag.multiple and key in ("set", "copy-set") and key in nodes:
                    value = (*given[flag.param], *value)
                given[flag.param] = value
                nodes[key] = (key_node, node)
        try:
            return self.read(given)
        except UsageError as exc:
            named = _key_named(exc.message, list(nodes))
            node = nodes[named][0] if named else anchor
            for_alias = f" (alias {alias})" if alias and own else ""
            raise self.fail(node, named, exc.message + for_alias, exc.hint) from exc

    def _value(self, flag: Flag, key: str, node: yaml.Node, key_node: yaml.Node) -> Any:
        """What the flag's click option would have parsed from the key's value; null is
        the flag not given (an entry's ``pipeline: null`` drops the file's pipeline)."""
        value = self._python(node)
        if value is None:
            return unset(flag)

        def wrong(expected: str) -> PlanError:
            hint = None
            if flag.kind == "path":
                hint = "it names a file (relative to the plan file)" + (
                    "; inline settings go under set:" if key == "settings" else ""
                )
            return self.fail(node, key, f"must be {expected}, not {_type_name(value)}", hint)

        if flag.kind == "bool":
            if not isinstance(value, bool):
                raise wrong("true or false")
            return value
        if flag.multiple:
            return self._multiple(flag, key, node, value)
        if flag.kind == "choice":
            if value is True and flag.flag_value is not None:
                return flag.flag_value
            if not isinstance(value, str) or value not in flag.choices:
                raise self.fail(node, key, f"{value!r} is not one of {', '.join(flag.choices)}")
            return value
        if flag.kind in ("int", "float"):
            number = int if flag.kind == "int" else (int, float)
            if isinstance(value, bool) or not isinstance(value, number):
                raise wrong("an integer" if flag.kind == "int" else "a number")
            _check_bounds(self, flag, key, node, value)
            return value
        if flag.hook == "rate":
            if isinstance(value, bool) or not isinstance(value, int | float | str):
                raise wrong("a number or unlimited")
            try:
                return parse_rate(str(value), flag.flag)
            except UsageError as exc:
                raise self.fail(node, key, exc.message, exc.hint) from exc
        if flag.metavar == "JSON" and isinstance(value, dict):
            return json.dumps(value)
        if not isinstance(node, yaml.ScalarNode):
            raise wrong("a path" if flag.kind == "path" else "a string")
        text = str(node.value)  # as written: 2024-01-01 or 007 are text, as on the command line
        if flag.kind == "path" or flag.metavar == "FILE":
            return str((self.base / text).resolve())  # relative to the plan file
        return text

    def _multiple(self, flag: Flag, key: str, node: yaml.Node, value: Any) -> tuple[Any, ...]:
        """A repeatable flag: a list (or one value); ``set``/``copy-set`` also a mapping of
        setting to value (``key=value`` strings, the flag's own form, are accepted too)."""
        if isinstance(value, dict) and flag.metavar == "KEY=VALUE":
            return tuple(f"{k}={json.dumps(v)}" for k, v in _flat(value).items())
        items = value if isinstance(value, list) else [value]
        out = []
        for item in items:
            if flag.kind == "choice":
                if item not in flag.choices:
                    raise self.fail(node, key, f"{item!r} is not one of {', '.join(flag.choices)}")
            elif not isinstance(item, str):
                what = "a mapping of settings or a list of KEY=VALUE" if flag.metavar else "a list"
                raise self.fail(node, key, f"must be {what}, not {_type_name(item)}")
            out.append(item)
        return tuple(out)


def _check_bounds(parser: _Parser, flag: Flag, key: str, node: yaml.Node, value: float) -> None:
    """The bounds the flag's click type has (IntRange, FloatRange)."""
    if flag.min is not None and (value <= flag.min if flag.min_open else value < flag.min):
        at = "more than" if flag.min_open else "at least"
        raise parser.fail(node, key, f"{value:g} must be {at} {flag.min:g}")
    if flag.max is not None and value > flag.max:
        raise parser.fail(node, key, f"{value:g} must be at most {flag.max:g}")


def _flat(settings: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested mapping of settings as dotted keys (index: {number_of_shards: 3} as
    index.number_of_shards), so each becomes one KEY=VALUE."""
    out: dict[str, Any] = {}
    for k, v in settings.items():
        name = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(_flat(v, name + "."))
        else:
            out[name] = v
    return out


def _key_named(message: str, keys: list[str]) -> str | None:
    """The key a refusal of the options' rules is about: the first flag it names."""
    found = [
        (m.start(), k) for k in keys if (m := re.search(f"--{re.escape(k)}(?![\\w-])", message))
    ]
    return min(found)[1] if found else None


def _first_key(top: dict[str, tuple[yaml.Node, yaml.Node]]) -> yaml.Node:
    return next(iter(top.values()))[0]


def _has_credentials(url: Any) -> bool:
    raw = str(url) if "://" in str(url) else f"http://{url}"
    try:
        parts = urlsplit(raw)
    except ValueError:
        return False
    return parts.password is not None or parts.username is not None


def unset(flag: Flag) -> Any:
    """What click passes for a flag not given."""
    if flag.multiple:
        return ()
    return False if flag.kind == "bool" else flag.default


def default_given() -> dict[str, Any]:
    """start's parsed flags when none is given: what click passes the command."""
    return {flag.param: unset(flag) for flag in start_flags() if flag.expose_value}
