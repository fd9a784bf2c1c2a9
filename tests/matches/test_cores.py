"""The core gate (``server/matches/cores.py``): places handed straight to the turn that waited
longest, round robin between users, and a turn cancelled while waiting never keeps one."""

from __future__ import annotations

import anyio
import pytest

from server.matches.cores import CoreGate, usable_cores


async def test_free_places_are_taken_at_once_and_the_rest_wait_in_order() -> None:
    gate = CoreGate(2)
    assert await gate.acquire() == 0.0 and await gate.acquire() == 0.0
    assert gate.busy == 2
    order: list[int] = []

    async def turn(i: int) -> None:
        waited = await gate.acquire()
        assert waited > 0
        order.append(i)

    async with anyio.create_task_group() as tg:
        for i in range(4):
            tg.start_soon(turn, i)
            await anyio.sleep(0.01)  # they queue in this order
        assert gate.waiting == 4
        for _ in range(4):
            gate.release()  # straight to the longest waiting: busy stays 2
            await anyio.sleep(0.01)
            assert gate.busy == 2
    assert order == [0, 1, 2, 3]
    for _ in range(2):  # turns 2 and 3 hold the places now
        gate.release()
    assert gate.busy == 0 and gate.waiting == 0


async def test_a_turn_cancelled_while_waiting_leaves_the_queue() -> None:
    gate = CoreGate(1)
    await gate.acquire()
    with anyio.move_on_after(0.05):
        await gate.acquire()
    assert gate.waiting == 0
    gate.release()
    assert gate.busy == 0
    assert await gate.acquire() == 0.0


async def test_a_place_handed_to_a_turn_cancelled_meanwhile_passes_on() -> None:
    gate = CoreGate(1)
    await gate.acquire()
    got: list[str] = []

    async def turn(name: str, scope: anyio.CancelScope) -> None:
        with scope:
            await gate.acquire()
            try:  # as the runner holds a place: given back however the move ends
                got.append(name)
                await anyio.sleep(0.01)
            finally:
                gate.release()

    second, third = anyio.CancelScope(), anyio.CancelScope()
    async with anyio.create_task_group() as tg:
        tg.start_soon(turn, "second", second)
        await anyio.sleep(0.01)
        tg.start_soon(turn, "third", third)
        await anyio.sleep(0.01)
        second.cancel()  # its match is stopped in the very tick its place comes free
        gate.release()
    assert got == ["third"] and gate.busy == 0 and gate.waiting == 0


async def test_places_go_round_robin_between_users_however_many_turns_each_has_waiting() -> None:
    gate = CoreGate(1)
    await gate.acquire()
    order: list[str] = []

    async def turn(name: str, user: str) -> None:
        await gate.share(user).acquire()
        order.append(name)

    async with anyio.create_task_group() as tg:
        for name, user in [("a1", "a"), ("a2", "a"), ("a3", "a"), ("a4", "a"), ("b1", "b"), ("c1", "c"),
                           ("b2", "b")]:
            tg.start_soon(turn, name, user)
            await anyio.sleep(0.01)  # they queue in this order
        assert gate.waiting == 7
        for _ in range(7):
            gate.release()
            await anyio.sleep(0.01)
    # The flooding user's turns wait behind each other user's next one.
    assert order == ["a1", "b1", "c1", "a2", "b2", "a3", "a4"]
    assert gate.busy == 1 and gate.waiting == 0


async def test_a_user_whose_only_waiting_turn_is_cancelled_leaves_the_round() -> None:
    gate = CoreGate(1)
    await gate.acquire()
    order: list[str] = []

    async def turn(name: str, user: str) -> None:
        await gate.acquire(user)
        order.append(name)

    async with anyio.create_task_group() as tg:
        tg.start_soon(turn, "a1", "a")
        await anyio.sleep(0.01)
        with anyio.move_on_after(0.01):
            await gate.acquire("b")
        tg.start_soon(turn, "a2", "a")
        await anyio.sleep(0.01)
        assert gate.waiting == 2
        for _ in range(2):
            gate.release()
            await anyio.sleep(0.01)
    assert order == ["a1", "a2"] and gate.waiting == 0


def test_a_gate_needs_a_place_and_the_default_is_the_usable_cores() -> None:
    with pytest.raises(ValueError, match="at least one place"):
        CoreGate(0)
    assert usable_cores() >= 1
