import jax
import jax.numpy as jnp
import pytest

from llp_jax.compile_clock import STAGES, compile_clock, compile_stage, union_length


@pytest.mark.parametrize(
    "spans, length",
    [
        ([], 0.0),
        ([(1.0, 3.0)], 2.0),
        ([(1.0, 3.0), (2.0, 5.0)], 4.0),  # overlapping: [1, 5]
        ([(0.0, 10.0), (2.0, 3.0), (4.0, 6.0)], 10.0),  # nested (a jit traced inside another's trace)
        ([(5.0, 6.0), (0.0, 1.0), (0.5, 2.0)], 3.0),  # unsorted, a gap between
    ],
)
def test_the_union_of_spans_counts_each_second_once(spans, length):
    assert union_length(spans) == length


def test_compilation_counts_toward_the_innermost_stage_and_a_cached_program_costs_nothing():
    def fresh(offset):  # a new function: never compiled before in this process
        return jax.jit(lambda x: jnp.sin(x) * offset + jnp.cumsum(x))

    in_bp, in_graph = fresh(2.0), fresh(3.0)
    x = jnp.arange(37.0)
    with compile_clock() as clock:
        with compile_stage("train"), compile_stage("bp"):
            in_bp(x).block_until_ready()
        with compile_stage("graph"):
            in_graph(x).block_until_ready()
        first = clock.seconds()
        with compile_stage("bp"):
            in_bp(x).block_until_ready()  # compiled already
        again = clock.seconds()
    assert set(first) == {*STAGES, "total"}
    assert first["bp"] > 0 and first["graph"] > 0 and first["train"] == 0 and first["evaluate"] == 0
    assert first["total"] == pytest.approx(first["bp"] + first["graph"] + first["other"])
    assert again == first
    in_bp(x + 1).block_until_ready()  # the clock no longer listens
    assert clock.seconds() == first


def test_an_unknown_stage_is_refused():
    with pytest.raises(ValueError, match=r"compile stage 'kNN'; choose one of \['train', 'graph'"):
        with compile_stage("kNN"):
            pass
