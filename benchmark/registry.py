"""Name -> component registries, so new datasets, methods or presets plug in without if-chains."""

from typing import Callable, Generic, Iterator, TypeVar

from benchmark.errors import choice_error

T = TypeVar("T")


class Registry(Generic[T]):
    """A named table of components of one kind (datasets, methods, ...)."""

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def add(item: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} registered twice")
            self._items[name] = item
            return item

        return add

    def get(self, name: str) -> T:
        if name not in self._items:
            raise choice_error(self.kind, name, self._items)
        return self._items[name]

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: str) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
