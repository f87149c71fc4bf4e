"""Containers: Sequential (a chain) and ModuleList (a registered list), named "0", "1", ..."""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Iterator
from typing import Any, cast

from autograd.nn.module import Module


class Sequential(Module):
    """Apply modules in order: ``Sequential(a, b, c)(x) == c(b(a(x)))``.

    Takes modules positionally (named "0", "1", ...) or one OrderedDict of name -> module.
    Indexing with an int gives a module, with a slice a new Sequential of the same modules.
    """

    def __init__(self, *args: Module | OrderedDict[str, Module]) -> None:
        super().__init__()
        if len(args) == 1 and isinstance(args[0], OrderedDict):
            for name, child in args[0].items():
                self.add_module(name, child)
        else:
            for i, module in enumerate(args):
                self.add_module(str(i), cast(Module, module))  # (the OrderedDict form is the branch above)

    def forward(self, x: Any) -> Any:
        for module in self._modules.values():
            x = module(x)
        return x

    def __getitem__(self, idx: int | slice) -> Module:
        if isinstance(idx, slice):
            return Sequential(OrderedDict(list(self._modules.items())[idx]))
        return self._modules[_key(self, idx)]

    def __setitem__(self, idx: int, module: Module) -> None:
        setattr(self, _key(self, idx), module)

    def __delitem__(self, idx: int) -> None:
        delattr(self, _key(self, idx))

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def append(self, module: Module) -> Sequential:
        self.add_module(str(len(self)), module)
        return self


class ModuleList(Module):
    """A list of modules whose parameters the parent registers (a plain Python list would
    hide them from ``parameters()``). It has no forward: iterate over it in yours."""

    def __init__(self, modules: Iterable[Module] | None = None) -> None:
        super().__init__()
        if modules is not None:
            self.extend(modules)

    def __getitem__(self, idx: int | slice) -> Module | ModuleList:
        if isinstance(idx, slice):
            return ModuleList(list(self._modules.values())[idx])
        return self._modules[_key(self, idx)]

    def __setitem__(self, idx: int, module: Module) -> None:
        setattr(self, _key(self, idx), module)

    def __delitem__(self, idx: int) -> None:
        # Renumber so the names stay "0".."n-1", as torch does.
        modules = list(self._modules.values())
        del modules[int(idx)]
        self._modules.clear()
        self.extend(modules)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def __iadd__(self, modules: Iterable[Module]) -> ModuleList:
        return self.extend(modules)

    def append(self, module: Module) -> ModuleList:
        self.add_module(str(len(self)), module)
        return self

    def extend(self, modules: Iterable[Module]) -> ModuleList:
        for module in modules:
            self.append(module)
        return self

    def insert(self, index: int, module: Module) -> None:
        modules = list(self._modules.values())
        modules.insert(index, module)
        self._modules.clear()
        self.extend(modules)


def _key(container: Module, idx: int) -> str:
    """The registered name of position ``idx`` (negative counts from the end)."""
    if not isinstance(idx, int):
        raise TypeError(f"{type(container).__name__} indices must be integers or slices, not {type(idx).__name__}")
    n = len(container._modules)
    if not -n <= idx < n:
        raise IndexError(f"index {idx} is out of range for {type(container).__name__} of length {n}")
    return list(container._modules)[idx % n]
