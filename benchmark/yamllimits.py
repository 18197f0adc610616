"""YAML read within bounds. An alias (`*name`) repeats a whole subtree without copying text, so nine
lines of nested aliases stand for 387 million values: harmless as PyYAML builds them (shared objects),
but every later step that walks, copies or prints them (validation, an error message) costs without
bound. So a text larger than a sane size, nested deeper than a hand-written file goes, with more aliases
than one needs, or whose aliases expand to too many values is refused in one line, after parsing and
before anything expands."""

from __future__ import annotations

from typing import Any

import yaml

from benchmark.errors import ConfigError

MAX_BYTES = 1 << 20  # a hand-written config, sweep or profile is a few KB
MAX_ALIASES = 100  # uses of *name (merge keys `<<: *base` included)
MAX_VALUES = 100_000  # scalars, lists and mappings once every alias is expanded
MAX_DEPTH = 100  # lists and mappings inside each other (the parser recurses per level)


class YamlTooLarge(ConfigError):
    """YAML beyond the bounds above; the message says which bound and where."""


class _CountingLoader(yaml.SafeLoader):
    """SafeLoader that counts the aliases it meets and the depth it is at while it composes the document."""

    def __init__(self, text: str):
        super().__init__(text)
        self.aliases = 0
        self.depth = 0

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                raise YamlTooLarge(f"uses more than {MAX_ALIASES} aliases (*name); write the values out")
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise YamlTooLarge(f"nests lists or mappings more than {MAX_DEPTH} deep")
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def expanded_size(node: yaml.Node, limit: int = MAX_VALUES) -> int:
    """How many values the node stands for with every alias expanded (each shared node counted where
    it is used, its size computed once), stopping past `limit`."""
    sizes: dict[int, int] = {}

    def size(current: yaml.Node) -> int:
        known = sizes.get(id(current))
        if known is not None:
            return known
        total = 1
        if isinstance(current, yaml.SequenceNode):
            children = list(current.value)
        elif isinstance(current, yaml.MappingNode):
            children = [part for pair in current.value for part in pair]
        else:
            children = []
        for child in children:
            total += size(child)
            if total > limit:
                break
        sizes[id(current)] = total
        return total

    return size(node)


def load_bounded(text: str, where: str) -> Any:
    """yaml.safe_load of `text` within the bounds above; YamlTooLarge names `where` (a file, a --set)
    and the bound. Malformed YAML raises yaml.YAMLError as safe_load does."""
    if len(text) > MAX_BYTES:
        raise YamlTooLarge(f"{where} holds {len(text):,} characters; at most {MAX_BYTES:,} are read")
    loader = _CountingLoader(text)
    try:
        try:
            node = loader.get_single_node()
        except YamlTooLarge as err:
            raise YamlTooLarge(f"{where} {err}") from None
        if node is None:
            return None
        if expanded_size(node) > MAX_VALUES:
            raise YamlTooLarge(
                f"{where} expands to more than {MAX_VALUES:,} values through its aliases (*name); write the values out"
            )
        return loader.construct_document(node)
    finally:
        loader.dispose()
