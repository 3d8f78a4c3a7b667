"""The order state machine follows PROTOCOL.md "States": the listed moves work, every other one is refused."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from persistence.enums import OrderStatus
from server.domain.order_states import IllegalTransition, OrderAction, next_status

# No example database on disk, and no deadline: these tests do no I/O and must not flake on a busy machine.
pure = settings(database=None, deadline=None)

S = OrderStatus
A = OrderAction

# Written from PROTOCOL.md, not read from the module, so the module is checked against the protocol.
PROTOCOL_MOVES: dict[tuple[OrderStatus, OrderAction], OrderStatus] = {
    (S.AWAITING_PAYMENT, A.PAY): S.PAID,
    (S.PAID, A.START): S.PREPARING,
    (S.PREPARING, A.READY): S.READY,
    (S.READY, A.COMPLETE): S.COMPLETED,
    (S.AWAITING_PAYMENT, A.CANCEL): S.CANCELLED,
    (S.READY, A.RECALL): S.PREPARING,
    (S.PAID, A.REFUND): S.REFUNDED,
}
FINAL = (S.COMPLETED, S.CANCELLED, S.REFUNDED)
ILLEGAL = [pair for pair in itertools.product(OrderStatus, OrderAction) if pair not in PROTOCOL_MOVES]


def reachable_from(start: OrderStatus) -> set[OrderStatus]:
    """The statuses the protocol's moves can lead to from `start`, `start` included."""
    seen = {start}
    frontier = [start]
    while frontier:
        status = frontier.pop()
        for (source, _), target in PROTOCOL_MOVES.items():
            if source == status and target not in seen:
                seen.add(target)
                frontier.append(target)
    return seen


@pytest.mark.parametrize(("move", "target"), list(PROTOCOL_MOVES.items()))
def test_every_protocol_move_works(move: tuple[OrderStatus, OrderAction], target: OrderStatus) -> None:
    """Each transition PROTOCOL.md lists leads to the state it names."""
    status, action = move
    assert next_status(status, action) == target


def test_the_happy_path_runs_from_placed_to_completed() -> None:
    """A paid order goes through the kitchen, is recalled once, and is completed."""
    status = S.AWAITING_PAYMENT
    path = [status]
    for action in (A.PAY, A.START, A.READY, A.RECALL, A.READY, A.COMPLETE):
        status = next_status(status, action)
        path.append(status)
    assert path == [S.AWAITING_PAYMENT, S.PAID, S.PREPARING, S.READY, S.PREPARING, S.READY, S.COMPLETED]


def test_every_pair_is_either_a_move_or_illegal() -> None:
    """The 7 moves and the 42 refused pairs cover every status and action."""
    assert len(PROTOCOL_MOVES) == 7
    assert len(ILLEGAL) == len(OrderStatus) * len(OrderAction) - 7 == 42


@pytest.mark.parametrize(("status", "action"), ILLEGAL)
def test_every_other_move_is_illegal(status: OrderStatus, action: OrderAction) -> None:
    """An action the protocol does not list for a state is refused, naming the action and the state."""
    with pytest.raises(IllegalTransition) as caught:
        next_status(status, action)
    assert (caught.value.status, caught.value.action) == (status, action)
    assert isinstance(caught.value, ValueError)
    message = str(caught.value)
    assert f"cannot {action.value} " in message
    assert status.value in message


@pytest.mark.parametrize("status", [s for s in OrderStatus if s not in FINAL])
def test_a_refusal_lists_the_allowed_actions(status: OrderStatus) -> None:
    """The refusal of a non-final state tells what the state does allow."""
    allowed = {action for (source, action) in PROTOCOL_MOVES if source == status}
    refused = next(action for action in OrderAction if action not in allowed)
    with pytest.raises(IllegalTransition) as caught:
        next_status(status, refused)
    hint = str(caught.value).split("allowed: ", 1)[1]
    assert set(hint.split(", ")) == {action.value for action in allowed}


@pytest.mark.parametrize("status", FINAL)
def test_final_states_allow_nothing(status: OrderStatus) -> None:
    """Completed, cancelled and refunded orders accept no action, and the refusal says the state is final."""
    for action in OrderAction:
        with pytest.raises(IllegalTransition) as caught:
            next_status(status, action)
        assert "final" in str(caught.value)


def test_cash_and_cancel_race_only_one_wins() -> None:
    """Once paid an order cannot be cancelled, and once cancelled it cannot be paid."""
    with pytest.raises(IllegalTransition):
        next_status(next_status(S.AWAITING_PAYMENT, A.PAY), A.CANCEL)
    with pytest.raises(IllegalTransition):
        next_status(next_status(S.AWAITING_PAYMENT, A.CANCEL), A.PAY)


@pure
@given(st.lists(st.sampled_from(list(OrderAction)), max_size=40))
def test_random_actions_follow_the_protocol(actions: list[OrderAction]) -> None:
    """Applying random actions from awaiting_payment, skipping refused ones, stays within the protocol's states."""
    reachable = reachable_from(S.AWAITING_PAYMENT)
    status = S.AWAITING_PAYMENT
    left_awaiting_payment = False
    for action in actions:
        expected = PROTOCOL_MOVES.get((status, action))
        if expected is None:
            with pytest.raises(IllegalTransition):
                next_status(status, action)
            continue
        status = next_status(status, action)
        assert status == expected
        assert status in reachable
        if left_awaiting_payment:
            assert status != S.AWAITING_PAYMENT
        left_awaiting_payment = True
    if status in FINAL:
        assert all((status, action) not in PROTOCOL_MOVES for action in OrderAction)
