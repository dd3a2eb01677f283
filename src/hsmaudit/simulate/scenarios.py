"""Scenarios: named stretches of cluster activity, each declaring the alerts it must produce.

`expected_rules` is the contract with the detections (contracts.md §4 rule ids): a scenario run on
a fresh cluster, after the alert-free `day-to-day` warm-up, triggers exactly those rules. The
detection tests and `hsmaudit demo --headless` check the engine against it.

`run_scenarios` chains scenarios on one cluster; `hsm-silent` is always run last, because a
silent HSM stays silent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final

from hsmaudit.simulate.cluster import CO, CU, MINUTE, SECOND, ClusterSimulator, SimRecord

APP_USERS: Final = ("app_user1", "payments_svc", "signer", "crypto_user")
OFFICERS: Final = ("admin", "officer2")


@dataclass(frozen=True, slots=True)
class Scenario:
    """A named piece of activity and the rule ids it must trigger (empty: it must trigger none)."""

    name: str
    description: str
    expected_rules: frozenset[str]
    run: Callable[[ClusterSimulator], None]
    control_plane_rules: frozenset[str] = frozenset()
    """Rules the scenario's CloudTrail calls (`ClusterSimulator.api_calls`) must trigger."""


def seed_steps(sim: ClusterSimulator) -> None:
    """The AWS blog's walk-through: loginHSM as a CU, `genSymKey -t 31 -s 32 -l aes256`,
    deleteKey, logout."""
    serving = sim.login("crypto_user", CU)
    handle = sim.generate_key(serving)
    sim.advance(20)
    sim.delete_key(serving, handle)
    sim.logout("crypto_user", CU, serving)


def day_to_day(sim: ClusterSimulator, *, sessions: int = 12) -> None:
    """Ordinary work, alert-free: application users log in, make and share keys, log out; an
    officer looks around. Spread over business hours."""
    for _ in range(sessions):
        user = sim.rng.choice(APP_USERS)
        serving = sim.login(user, CU)
        for _ in range(sim.rng.randint(1, 3)):
            roll = sim.rng.random()
            if roll < 0.5:
                sim.generate_key(serving)
            elif roll < 0.7:
                sim.generate_key_pair(serving)
            else:
                sim.share_key(serving)
        sim.logout(user, CU, serving)
        sim.advance(sim.rng.uniform(2 * MINUTE, 9 * MINUTE) / SECOND)
    officer = sim.rng.choice(OFFICERS)
    serving = sim.login(officer, CO)
    sim.logout(officer, CO, serving)
    sim.advance(5 * 60)


def failed_login_burst(sim: ClusterSimulator) -> None:
    """Someone guesses a CU's password: 6 failures in about 3 minutes, then gives up."""
    serving = sim.serving_hsm()
    for _ in range(6):
        sim.failed_login("payments_svc", CU, serving=serving)
        sim.advance(sim.rng.uniform(15, 35))
    sim.advance(10 * 60)


def co_created_at_night(sim: ClusterSimulator) -> None:
    """At 02:17 UTC an officer logs in and creates another crypto officer."""
    sim.advance_to_hour(2, 17)
    serving = sim.login("admin", CO)
    sim.create_user(serving, "backup_officer", CO)
    sim.logout("admin", CO, serving)
    sim.advance(30 * 60)


def key_deleted(sim: ClusterSimulator) -> None:
    """A CU deletes a token key (CN_TOMBSTONE_OBJECT in the current AWS table)."""
    serving = sim.login("signer", CU)
    handle = sim.generate_key(serving)
    sim.advance(90)
    sim.delete_key(serving, handle, token_key=True)
    sim.logout("signer", CU, serving)
    sim.advance(10 * 60)


def key_exported(sim: ClusterSimulator) -> None:
    """A CU wraps a key with a wrapping key: an encrypted copy leaves the cluster."""
    serving = sim.login("app_user1", CU)
    handle = sim.generate_key(serving)
    sim.advance(40)
    sim.wrap_key(serving, handle)
    sim.logout("app_user1", CU, serving)
    sim.advance(10 * 60)


def sequence_gap(sim: ClusterSimulator) -> None:
    """Four records of one HSM's stream go missing (lost or removed), then work goes on."""
    victim = min(1, len(sim.hsms) - 1)
    sim.skip_sequence(victim, 4)
    # Enough activity that the victim logs again (logins are replicated to every HSM).
    for user in ("app_user1", "signer"):
        serving = sim.login(user, CU)
        sim.generate_key(serving)
        sim.logout(user, CU, serving)
        sim.advance(3 * 60)
    sim.advance(10 * 60)


def hsm_silent(sim: ClusterSimulator) -> None:
    """The last HSM stops logging while the rest of the cluster keeps working for 90 minutes; then an
    operator deletes it and adds a replacement (CloudTrail DeleteHsm, CreateHsm): it was quiet long
    before, so this is a removal, not an HSM deleted while in use."""
    silent = len(sim.hsms) - 1
    sim.silence(silent)
    end = sim.clock + 90 * MINUTE
    while sim.clock < end:
        user = sim.rng.choice(APP_USERS)
        serving = sim.login(user, CU)
        sim.generate_key(serving)
        sim.logout(user, CU, serving)
        sim.advance(sim.rng.uniform(8 * MINUTE, 15 * MINUTE) / SECOND)
    sim.api_call("DeleteHsm", {"hsmId": sim.hsms[silent].hsm_id})
    sim.advance(30)
    sim.api_call("CreateHsm", {"availabilityZone": "us-east-1c"})


def control_plane(sim: ClusterSimulator) -> None:
    """Outside the HSM's own log (CloudTrail): an old backup deleted, another copied to a second
    region; the routine DescribeClusters calls around them alert on nothing."""
    sim.api_call("DescribeClusters")
    sim.advance(40)
    sim.api_call("DeleteBackup", {"backupId": sim.backup_id()})
    sim.advance(5 * 60)
    sim.api_call("CopyBackupToRegion", {"backupId": sim.backup_id(), "destinationRegion": "eu-west-1"})
    sim.advance(60)
    sim.api_call("DescribeBackups")
    sim.advance(10 * 60)


SCENARIOS: Final[dict[str, Scenario]] = {
    scenario.name: scenario
    for scenario in (
        Scenario(
            "day-to-day", "ordinary work: logins, keys made and shared, logouts", frozenset(), day_to_day
        ),
        Scenario(
            "seed", "the blog's steps: CU login, genSymKey, deleteKey", frozenset({"key-deleted"}), seed_steps
        ),
        Scenario(
            "failed-login-burst",
            "6 failed logins for one CU in 3 minutes",
            frozenset({"failed-login", "login-brute-force"}),
            failed_login_burst,
        ),
        Scenario(
            "co-created-at-night",
            "a crypto officer created at 02:17 UTC",
            frozenset({"crypto-officer-created"}),
            co_created_at_night,
        ),
        Scenario("key-deleted", "a token key deleted", frozenset({"key-deleted"}), key_deleted),
        Scenario("key-exported", "a key wrapped out of the HSM", frozenset({"key-exported"}), key_exported),
        Scenario(
            "sequence-gap",
            "4 records missing from one HSM's stream",
            frozenset({"sequence-gap"}),
            sequence_gap,
        ),
        Scenario(
            "control-plane",
            "CloudTrail: a backup deleted, another copied to eu-west-1",
            frozenset(),
            control_plane,
            frozenset({"backup-deleted-or-retention-changed", "backup-restored-or-copied"}),
        ),
        Scenario(
            "hsm-silent",
            "one HSM stops logging for 90 minutes, then is deleted and replaced",
            frozenset({"hsm-silent"}),
            hsm_silent,
            frozenset({"hsm-or-cluster-deleted"}),
        ),
    )
}
"""Every scenario by name, in the order `run_scenarios` plays them."""

DEMO_SCENARIOS: Final[tuple[str, ...]] = tuple(SCENARIOS)


@dataclass(frozen=True, slots=True)
class Simulation:
    """The outcome of a run: the cluster, its records in time order and the rules they must fire."""

    simulator: ClusterSimulator
    records: list[SimRecord]
    expected_rules: frozenset[str]
    scenarios: tuple[str, ...]
    control_plane_rules: frozenset[str] = frozenset()
    """What the CloudTrail calls add, when they are delivered too (`hsmaudit demo` does)."""

    @property
    def api_calls(self) -> list[dict[str, Any]]:
        """The cluster's CloudHSM API calls (CloudTrail records), in time order."""
        return self.simulator.api_calls


def run_scenarios(
    names: Iterable[str] = DEMO_SCENARIOS,
    *,
    seed: int = 1,
    hsms: int = 3,
    start_usecs: int | None = None,
    cluster_id: str | None = None,
) -> Simulation:
    """Play `day-to-day` as a warm-up, then each named scenario once (unknown names raise ValueError)."""
    chosen = list(dict.fromkeys(names))
    unknown = [name for name in chosen if name not in SCENARIOS]
    if unknown:
        raise ValueError(f"unknown scenario(s): {', '.join(unknown)}; known: {', '.join(SCENARIOS)}")
    if "hsm-silent" in chosen:
        chosen.remove("hsm-silent")
        chosen.append("hsm-silent")
    if "hsm-silent" in chosen and hsms < 2:
        raise ValueError("hsm-silent needs a cluster of at least 2 HSMs: give --hsms 2 or more")
    kwargs = {} if start_usecs is None else {"start_usecs": start_usecs}
    sim = ClusterSimulator(seed=seed, hsm_count=hsms, cluster_id=cluster_id, **kwargs)  # type: ignore[arg-type]
    expected: set[str] = set()
    control_plane: set[str] = set()
    if "day-to-day" not in chosen:
        day_to_day(sim, sessions=3)
    for name in chosen:
        scenario = SCENARIOS[name]
        scenario.run(sim)
        expected |= scenario.expected_rules
        control_plane |= scenario.control_plane_rules
    return Simulation(sim, sim.sorted_records(), frozenset(expected), tuple(chosen), frozenset(control_plane))


__all__ = ["APP_USERS", "DEMO_SCENARIOS", "SCENARIOS", "Scenario", "Simulation", "run_scenarios"]
