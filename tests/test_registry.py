"""Registry: decorators, unknown names with the closest match, entry points, suite plugins."""
import pytest

from ssl_bench.errors import UnknownNameError
from ssl_bench.registry import EVALUATIONS, METHODS, Registry


def test_builtins_registered():
    assert {"byol", "random", "supervised"} <= set(METHODS.names())
    assert {"knn", "linear"} <= set(EVALUATIONS.names())


def test_unknown_name_lists_known_and_closest():
    with pytest.raises(UnknownNameError) as exc:
        METHODS.get("byl", where="methods[0].name")
    msg = str(exc.value)
    assert msg.startswith("methods[0].name: unknown method 'byl'")
    assert "did you mean 'byol'" in msg and "random" in msg and "supervised" in msg


def test_register_twice_is_an_error():
    reg = Registry("thing")

    @reg.register("a")
    class A:
        pass

    with pytest.raises(ValueError):
        @reg.register("a")
        class B:
            pass
